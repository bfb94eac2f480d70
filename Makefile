# The promises: `make figures`, `make test` and `make report` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
QUICK  ?=
# JupyterLab refuses to run as root (as in a container) unless told it may
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: figures test lab bench venv clean report anchor kernel-source

# the real-kernel anchor (make anchor, notebook 08, tests/anchor) boots Debian's kernels under QEMU
ANCHOR_DEPS = @command -v qemu-system-x86_64 >/dev/null 2>&1 && test -x /bin/busybox || { echo "error: qemu-system-x86_64 or /bin/busybox not found; install them: apt-get install qemu-system-x86 busybox-static (and dpkg --add-architecture i386 && apt-get update for the i386 kernel)" >&2; exit 2; }

venv: $(STAMP)

$(STAMP): pyproject.toml
	@scripts/system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

figures: $(STAMP)
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

# the browser tests need Chromium: installed with apt where allowed, else one line says what to run
test: $(STAMP)
	$(ANCHOR_DEPS)
	@scripts/system-deps --browser
	$(PY) -m pytest -q -p no:cacheprovider

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
