import subprocess
import sys

import pytest

from helpers import malloc


def test_the_opt_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv("WORKBOOK_MALLOC", "system")
    assert malloc.keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_tensors_stop_faulting_pages_in_again():
    """A fresh process freeing and making a 64 MB array 20 times: each new array faults its pages in again
    with the system's allocator (~300 faults each here, with transparent huge pages), none once freed memory
    is kept."""
    code = (
        "import resource, numpy as np\n"
        "import helpers\n"
        "a = np.ones(16_000_000, dtype=np.float32)\n"
        "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20):\n"
        "    del a\n"
        "    a = np.ones(16_000_000, dtype=np.float32)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)\n"
    )
    faults = {}
    for mode in ("system", ""):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"WORKBOOK_MALLOC": mode, "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        )
        faults[mode or "kept"] = int(out.stdout.split()[-1])
    assert faults["system"] > 20 * 100 and faults["kept"] * 10 < faults["system"], faults
