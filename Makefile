# The promises: `make figures`, `make test` and `make report` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# `make figures` needs the package and its run-time dependencies (BASE); test, report,
# lab and bench add the notebook, Dask and test tools of '.[dev]' (STAMP)
BASE   := $(VENV)/.installed-base
STAMP  := $(VENV)/.installed
# The installer: UV=auto (default) uses uv when it is on PATH, else pip installs uv (PyPI)
# into the venv first, and falls back to pip if that fails; UV=0 always uses pip.
UV     ?= auto
QUICK  ?=
# JupyterLab refuses to run as root (as in a container) unless told it may
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: figures test unit endtoend lab bench venv clean report anchor kernel-source

# the real-kernel anchor (make anchor, notebook 08, tests/anchor) boots Debian's kernels under QEMU:
# scripts/system-deps --guests installs QEMU and busybox with apt where allowed, else says in one line what to run
ANCHOR_DEPS = @scripts/system-deps --guests

venv: $(STAMP)

# install SPEC into the venv with uv (several times faster than pip on two cores) or pip
define install
	@if [ "$(UV)" != 0 ] && UVBIN=$$(command -v uv || { [ -x $(VENV)/bin/uv ] && echo $(VENV)/bin/uv; } || \
	      { $(PY) -m pip install --quiet --disable-pip-version-check 'uv>=0.4,<1' >/dev/null 2>&1 && \
	        echo $(VENV)/bin/uv; }); then \
	    echo "$$UVBIN pip install $(1)"; $$UVBIN pip install --quiet --python $(PY) $(1); \
	else \
	    echo "$(PY) -m pip install $(1)"; $(PY) -m pip install --quiet --upgrade pip && \
	    $(PY) -m pip install --quiet $(1); \
	fi
endef

$(BASE): pyproject.toml
	@scripts/system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call install,-e .)
	touch $(BASE)

$(STAMP): $(BASE)
	$(call install,-e '.[dev]')
	touch $(STAMP)

figures: $(BASE)
	$(PY) -m workbench figures $(if $(QUICK),--quick,)

# data/report/report.html (report_quick.html with QUICK=1) and the executed notebooks
report: $(STAMP)
	$(ANCHOR_DEPS)
	$(PY) -m workbench report $(if $(QUICK),--quick,)

# Debian's 6.1 kernels booted under QEMU: their ftrace IPIs against the v6.1 plan (the full grid;
# needs qemu-system-x86 and busybox-static; QUICK=1 for the reduced one)
anchor: $(STAMP)
	$(ANCHOR_DEPS)
	$(PY) -m workbench anchor $(if $(QUICK),--quick,)

# The suite in two named parts, both run by `make test` (and so by .ci/run):
#   unit      everything but the end-to-end checks (pytest-xdist, a module per worker, so a module
#             fixture is computed once; JOBS=1: serially)
#   endtoend  the end-to-end checks (E2E markers: headless Chromium, QEMU guests), a module per worker;
#             the browser tests need Chromium: installed with apt where allowed, else one line says what to run
# Each part ends with its 12 slowest steps (--durations), so a log shows where the time went.
# One worker more than CPUs: the Ctrl-C, kill, browser and guest checks spend much of their time
# waiting on processes they started, and the extra worker computes meanwhile.
JOBS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
E2E  := browser or qemu
# the modules marked slow start first (tests/conftest.py), not those with the most tests (xdist's reorder)
XDIST = $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadscope --no-loadscope-reorder)
test: $(STAMP)
	$(PY) -m ruff check --quiet . && scripts/system-deps --browser --guests --kernel-source
	@$(MAKE) --no-print-directory unit endtoend

unit: $(STAMP)
	@scripts/system-deps --kernel-source
	$(PY) -m pytest -q -p no:cacheprovider --durations=12 -m "not ($(E2E))" $(XDIST)

endtoend: $(STAMP)
	@scripts/system-deps --browser --guests
	$(PY) -m pytest -q -p no:cacheprovider --durations=12 -m "$(E2E)" $(XDIST)

# Debian's linux-source-6.1 tree (installed package, else apt-get download) into data/cache/kernel-source/
kernel-source: $(STAMP)
	$(PY) -m workbench kernel-source --series 6.1

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(LAB_ROOT) notebooks/

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# every generated output; the venv stays
clean:
	rm -rf data/cache data/figures data/summary data/sweeps data/report data/screenshots build *.egg-info
