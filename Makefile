# The two promises: `make figures` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
QUICK  ?=

.PHONY: figures test lab bench venv clean demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v as >/dev/null || { echo "error: GNU binutils (as, ld) not found; install binutils" >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

figures: $(STAMP)
	$(PY) -m workbench figures $(if $(QUICK),--quick,)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf data/cache data/figures build *.egg-info
