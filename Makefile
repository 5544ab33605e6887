# The two commands of the README: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-numba lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/digits_mlp.py

test: $(VENV)/.installed
	$(PY) -m ruff check graphc tests examples benchmarks
	$(PY) -m pytest -n 2 -q

test-numba: $(VENV)/.installed
	GRAPHC_TEST_BACKEND=numba $(PY) -m pytest -n 2 -q

lint: $(VENV)/.installed
	$(PY) -m ruff check graphc tests examples benchmarks
	$(PY) -m ruff format --check graphc tests examples benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
