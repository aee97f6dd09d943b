# The two set-up commands for a fresh machine (see README):
#   make demo   -- install, then run the end-to-end demo
#   make test   -- install, then run the test suite, mypy (over the module list in
#                  pyproject.toml) and the wheel smoke test (scripts/wheel_smoke.py)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# the CPU build on this machine's disk; the wheel smoke test installs the same into its venv
TORCH ?= torch==2.13.0

.PHONY: install demo test typecheck wheel-smoke bench

$(PY):
	$(PYTHON) -m venv $(VENV)

# The metric tests compare against audioldm-eval and frechet-audio-distance; their declared
# dependencies (torchaudio, numpy<2) would replace torch and numpy, so they go in without them
# (the tests import only the files that need nothing more; docs/evaluation.md).
REFERENCE_METRICS ?= audioldm-eval==0.0.3 frechet-audio-distance==0.3.4

install: $(PY)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps $(REFERENCE_METRICS)

demo: install
	$(PY) -m aar demo --out demo_out

test: install
	$(PY) -m pytest -q tests
	$(MAKE) --no-print-directory typecheck wheel-smoke

typecheck:
	$(PY) -m mypy

wheel-smoke:
	$(PY) scripts/wheel_smoke.py --torch "$(TORCH)"

bench: install
	$(PY) -m aar bench --out benchmarks/results
