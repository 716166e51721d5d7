# rnnscope: the two commands of the README.
#   make demo   set up .venv (pinned, requirements.lock) and run the main job
#   make test   set up the same .venv and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/rnnscope demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/profile.py

clean:
	rm -rf $(VENV) rnnscope-report .pytest_cache .hypothesis
