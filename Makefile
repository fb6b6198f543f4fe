# Stepwise: `make lab` to learn, `make test` to prove it works.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The environment is rebuilt when the pinned requirements or the project metadata change.
STAMP := $(VENV)/.stamp-$(shell cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-16)
LAB_ARGS ?=
# Jupyter refuses to run as root unless told to (containers, CI machines).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# Learner state (progress, grading records) of test runs goes to a throwaway directory.
# One torch thread per process: the tests run two processes side by side on two cores, and
# solutions are executed (make execute) with the same setting that nbval later compares under.
TEST_ENV := STEPWISE_HOME=$(CURDIR)/build/stepwise-home NBTIMES=$(CURDIR)/build/nbtimes.tsv OMP_NUM_THREADS=1
PYTEST := $(TEST_ENV) $(BIN)/python -m pytest
NBVAL := $(PYTEST) -n 2 --dist loadfile --nbval-current-env --nbval-cell-timeout=120 \
         --nbval-sanitize-with tools/nbval_sanitize.cfg

.PHONY: setup lab test lint test-unit test-solutions test-notebooks notebooks check-sync execute clean

setup: $(STAMP)

$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(BIN)/python -m pip install -qq --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	@# nbgrader is here for instructors' tests only: keep its menus and server out of the learner's Lab,
	@# and the news pop-up too.
	@$(BIN)/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader \
	    @jupyterlab/apputils-extension:announcements >/dev/null 2>&1
	@$(BIN)/jupyter server extension disable --sys-prefix $(addprefix nbgrader.server_extensions.,\
	    formgrader validate_assignment assignment_list course_list) >/dev/null 2>&1
	@rm -f $(VENV)/.stamp-*
	@touch $@

lab: setup
	JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter lab $(ROOT_FLAG) notebooks/00_welcome.ipynb $(LAB_ARGS)

test: setup
	@rm -rf build/stepwise-home build/nbtimes.tsv; mkdir -p build/stepwise-home
	@status=0; \
	$(MAKE) --no-print-directory test-unit || status=1; \
	$(MAKE) --no-print-directory test-solutions || status=1; \
	$(MAKE) --no-print-directory test-notebooks || status=1; \
	$(MAKE) --no-print-directory check-sync || status=1; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(BIN)/python tools/nbtimes.py report build/nbtimes.tsv; \
	if [ $$status = 0 ]; then echo "make test: all passed"; else echo "make test: FAILED"; fi; \
	exit $$status

test-unit: setup
	$(PYTEST) -q -n 2 tests

test-solutions: setup
	$(NBVAL) -q --nbval solutions

test-notebooks: setup
	$(NBVAL) -q --nbval-lax notebooks

lint: setup
	$(BIN)/ruff check .

notebooks: setup
	$(BIN)/python tools/pipeline.py generate

check-sync: setup
	$(BIN)/python tools/pipeline.py check-sync

# Re-run solutions/ in place to refresh their stored outputs (NB=03 for one notebook).
execute: setup
	OMP_NUM_THREADS=1 $(BIN)/python tools/pipeline.py execute $(NB)

# Grade a class (README, "For instructors"): make grade SUBMISSIONS=path/to/submitted [NB=03]
.PHONY: grade
grade: setup
	$(BIN)/python -m helpers.grade $(SUBMISSIONS) --out $(or $(OUT),grades.csv) \
	    --feedback $(or $(FEEDBACK),feedback) $(if $(NB),--notebook $(NB)) $(GRADE_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
