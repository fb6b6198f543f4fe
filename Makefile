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
# torch sets TORCHINDUCTOR_CACHE_DIR in the test processes when it first looks for its cache: set it
# up front, so the kernels they start see the environment the kernel server started with.
# Python writes each module's byte-code on its first import: the set-up skips compiling (below),
# so an environment that turned that off (PYTHONDONTWRITEBYTECODE) would compile torch's 2,000
# modules from source again in every process (~8 s of CPU each).
unexport PYTHONDONTWRITEBYTECODE
TEST_ENV := STEPWISE_HOME=$(CURDIR)/build/stepwise-home NBTIMES=$(CURDIR)/build/nbtimes.tsv \
            NBTIMES_PREVIOUS=$(CURDIR)/build/nbtimes.previous.tsv OMP_NUM_THREADS=1 \
            TORCHINDUCTOR_CACHE_DIR=$(CURDIR)/build/torchinductor
PYTEST := $(TEST_ENV) $(BIN)/python -m pytest
NBVAL_CELLS := --nbval-cell-timeout=120 --nbval-sanitize-with tools/nbval_sanitize.cfg
NBVAL_OPTIONS := --nbval-current-env $(NBVAL_CELLS)
NBVAL := $(PYTEST) -n 2 --dist loadfile $(NBVAL_OPTIONS)
# Kernels forked from one process that has imported torch & co. (tools/kernel_server.py):
# $(call with-kernels,DIR,ENV) starts it with ENV, the environment of the pytest that follows.
KERNELS := --nbval-kernel-name stepwise-forked $(NBVAL_CELLS)
with-kernels = rm -f $(1)/kernels.sock; $(2) JUPYTER_PATH=$(1) $(BIN)/python tools/kernel_server.py serve $(1) & \
	kernels=$$!; trap 'kill $$kernels 2>/dev/null; wait $$kernels' EXIT; \
	for i in $$(seq 50); do [ -S $(1)/kernels.sock ] && break; sleep 0.1; done;
# A stand-in for another CPU: torch's non-vectorized kernels and two threads (make test-portable).
# Idle threads sleep instead of spinning: the same split of the work, so the same numbers, but a
# spinning thread on a busy 2-core machine made a small float64 step ~30 times slower.
PORTABLE_ENV := ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
PORTABLE_TEST_ENV := $(TEST_ENV) $(PORTABLE_ENV) NBTIMES=$(CURDIR)/build/nbtimes-portable.tsv

.PHONY: setup lab test lint test-unit test-solutions test-notebooks test-portable notebooks check-sync \
        execute clean

setup: $(STAMP)

$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# The lock pins every package: nothing to resolve (--no-deps), so the packages go in
	@# independently, by three pips side by side (every third line each); pip check proves the lock whole.
	@# --no-compile: Python compiles a module when it is first imported (once, into __pycache__),
	@# instead of pip compiling all 10,000 files of the environment up front (~60 s of CPU).
	@grep -v '^#' requirements/lock.txt | awk '{ print > ("$(VENV)/lock-part" NR % 3) }'
	printf '%s\n' $(VENV)/lock-part0 $(VENV)/lock-part1 $(VENV)/lock-part2 | xargs -P 3 -I{} \
	    $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-compile -r {}
	$(BIN)/python -m pip check
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

# One pytest session runs solutions/ (strict), notebooks/ (lax) and tests/ on two workers, the files
# that took longest last time first (notebooks first on a first run), with kernels forked from a
# server that has imported torch; check-sync and ruff run beside it. Any failure fails make test.
test: setup
	@start=$$(date +%s); rm -rf build/stepwise-home; mkdir -p build/stepwise-home; \
	if [ -f build/nbtimes.tsv ]; then mv build/nbtimes.tsv build/nbtimes.previous.tsv; fi; \
	{ s=0; $(BIN)/python tools/pipeline.py check-sync || s=1; $(BIN)/ruff check . || s=1; \
	  exit $$s; } > build/static.log 2>&1 & static=$$!; \
	$(call with-kernels,$(CURDIR)/build/kernels,$(TEST_ENV)) status=0; \
	$(TEST_ENV) JUPYTER_PATH=$(CURDIR)/build/kernels $(BIN)/python -m pytest -q -n 2 --dist loadfile \
	    --no-loadscope-reorder --stepwise-notebooks $(KERNELS) solutions notebooks tests || status=1; \
	wait $$static || status=1; cat build/static.log; \
	$(BIN)/python tools/nbtimes.py report build/nbtimes.tsv; \
	took="in $$(( $$(date +%s) - start )) s"; \
	if [ $$status = 0 ]; then echo "make test: all passed $$took"; else echo "make test: FAILED $$took"; fi; \
	exit $$status

test-unit: setup
	$(PYTEST) -q -n 2 tests

test-solutions: setup
	$(NBVAL) -q --nbval solutions

test-notebooks: setup
	$(NBVAL) -q --nbval-lax notebooks

# Strict nbval on solutions/ as on another CPU: not one stored output may differ.
# NB="03 05" for some notebooks.
test-portable: setup
	@mkdir -p build/stepwise-home; rm -f build/nbtimes-portable.tsv; \
	$(call with-kernels,$(CURDIR)/build/kernels-portable,$(PORTABLE_TEST_ENV)) \
	$(PORTABLE_TEST_ENV) JUPYTER_PATH=$(CURDIR)/build/kernels-portable $(BIN)/python -m pytest \
	    -q -n 2 --dist loadfile $(KERNELS) --nbval \
	    $(if $(NB),$(foreach n,$(NB),$(wildcard solutions/$(n)_*.ipynb)),solutions); status=$$?; \
	$(BIN)/python tools/nbtimes.py report build/nbtimes-portable.tsv; \
	if [ $$status = 0 ]; then echo "make test-portable: every stored output holds with $(PORTABLE_ENV)"; \
	else echo "make test-portable: FAILED: the cells listed above print other outputs with $(PORTABLE_ENV)"; fi; \
	exit $$status

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
