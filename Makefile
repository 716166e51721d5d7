# rnnscope: the two commands of the README.
#   make demo   set up .venv (pinned, requirements.lock) and run the main job
#   make test   set up the same .venv and run the whole test suite (browser tests included: they drive
#               Debian's chromium, installed here with apt-get when /usr/bin/chromium is missing)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: setup chromium demo test bench clean notebook

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/rnnscope demo

# Playwright cannot download its own browser here: the browser tests launch Debian's chromium (sudo only when not root).
chromium:
	@test -x $(CHROMIUM) || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

test: setup chromium
	$(PY) -m pytest -q

# The lessons in notebooks/ (each runs in well under a minute on a CPU), in JupyterLab from the same .venv.
notebook: setup
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" -eq 0 ] && echo --allow-root)

bench: setup
	$(PY) benchmarks/profile.py
	$(PY) benchmarks/lyapunov.py
	$(PY) benchmarks/sweep.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/diagnose.py
	$(PY) benchmarks/monitor.py
	$(PY) benchmarks/modern.py
	$(PY) benchmarks/train.py --modern
	$(PY) -P benchmarks/flossing.py --task delayed-copy --delays 40,60 --seeds 0,1,2 --cell pal --init normal --hidden 80 --k 75 --pre 500 --steps 3000

clean:
	rm -rf $(VENV) rnnscope-report .pytest_cache .hypothesis
