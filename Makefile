# The two set-up commands for a fresh machine (see README):
#   make demo   -- install, then run the end-to-end demo
#   make test   -- install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test bench

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"

demo: install
	$(PY) -m aar demo --out demo_out

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) -m aar bench --out benchmarks/results
