# stnet: the two commands of the README, and a few helpers.
#   make report   create .venv, install, regenerate reports/$(PROFILE)/ (default: quick profile, CPU)
#   make test     create .venv, install, run the test suite (without the tests marked slow)
#   make test-all the same with the slow tests (the paper-grid noise criterion)
# Options: PROFILE=smoke|quick|paper  DEVICE=cpu|cuda|auto  WHEELS=DIR (offline install from a folder of wheels)
#          MANIFEST=path/to/data_manifest.csv (report on a cohort of one's own: reports/<profile>-<its folder>/)

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= quick
DEVICE  ?= cpu
WHEELS  ?=
MANIFEST ?=
PYTEST_ARGS ?=

BIN     := $(VENV)/bin
STAMP   := $(VENV)/.stnet-installed
PIP     := $(BIN)/python -m pip --disable-pip-version-check
OFFLINE := $(if $(WHEELS),--no-index --find-links $(abspath $(WHEELS)),)

.PHONY: install report test test-all lab bench wheels clean-venv

install: $(STAMP)

# A Python that already has torch (a GPU machine's) lends it to the venv through
# --system-site-packages, so that its own CUDA build is used as it is. Elsewhere torch is
# installed only where it is missing, as torch==2.13.0 (the CPU build on these machines' disk).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v in ((3, 11), (3, 12)) else "stnet needs Python 3.11 or 3.12, found %d.%d: set PYTHON=python3.11" % v)'
	@if [ ! -x $(BIN)/python ]; then \
	  if $(PYTHON) -c 'import torch' >/dev/null 2>&1; then flags=--system-site-packages; else flags=; fi; \
	  echo "creating $(VENV) $$flags"; $(PYTHON) -m venv $$flags $(VENV); \
	fi
	@$(BIN)/python -c 'import torch' >/dev/null 2>&1 || $(PIP) install $(OFFLINE) torch==2.13.0
	$(PIP) install $(OFFLINE) -e '.[dev]'
	@touch $(STAMP)

report: $(STAMP)
	$(BIN)/stnet report --profile $(PROFILE) --device $(DEVICE) $(if $(MANIFEST),--manifest $(MANIFEST),)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every test, the slow ones too (pyproject's addopts deselect the `slow` marker by default).
test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/python -m jupyter lab --notebook-dir=notebooks

# The speed scripts (bench/tune_*.py are parameter searches, not benchmarks: run them by hand).
bench: $(STAMP)
	@for script in $(filter-out bench/tune_%,$(wildcard bench/*.py)); do echo "== $$script"; $(BIN)/python $$script || exit $$?; done

# Fill a folder with every wheel an offline (air-gapped) install needs: then `make report WHEELS=wheelhouse`.
wheels: $(STAMP)
	$(PIP) download -d wheelhouse setuptools wheel torch==2.13.0 '.[dev]'

clean-venv:
	rm -rf $(VENV)
