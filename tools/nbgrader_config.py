"""nbgrader settings for the Brain Surgery workbook: copy this file into your course directory as
``nbgrader_config.py`` (nbgrader reads it from the directory it runs in).

- ``WORKBOOK_PROFILE=ci`` for every kernel nbgrader starts: the small sizes the checks are built for
  (about 1.5 minutes for all six notebooks idle). The full profile takes minutes per notebook.
- ``WORKBOOK_OUTPUT``: where the notebooks write what they produce (data/, figures/). Without it the
  ci profile writes the workbook's ``.ci_out/`` (and the full profile its committed ``data/`` and
  ``figures/``). Set it per student when autograding (see the README's recipe); if unset, the
  course directory's ``workbook_outputs/`` is used, so the repository is never written.
- a per-cell time limit of 600 s: nbgrader's default (30 s) drops whole notebooks on a busy
  machine, and a dropped notebook scores 0 for every check in it.

nbgrader calls ``alembic`` (its database migrations) by name: run it with the virtual environment's
``bin`` on ``PATH`` (``source .venv-nbgrader/bin/activate``).
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (nbgrader defines get_config when it reads this file)

os.environ["WORKBOOK_PROFILE"] = "ci"  # the kernels inherit nbgrader's environment
os.environ.setdefault("WORKBOOK_OUTPUT", str(Path.cwd() / "workbook_outputs"))

c.Execute.timeout = 600  # seconds per cell
c.Execute.interrupt_on_timeout = True
