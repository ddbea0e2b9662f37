# Two commands on a fresh machine:
#   make lab    create the environment (.venv) and open JupyterLab on the notebooks
#   make test   create the environment if needed and run the whole test suite
# The environment is reinstalled only when pyproject.toml changes (stamp file).

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.svmkit-installed
CHROMIUM := /usr/bin/chromium
PYTEST_ARGS ?=
# JupyterLab refuses to run as root without this (CI and containers run as root).
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: env lab test chromium voila clean-env

env:
	@if [ ! -x $(PY) ]; then \
	  echo "make: creating $(VENV)"; \
	  $(PYTHON) -m venv $(VENV) || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "make: python3 -m venv failed; installing python3-venv"; \
	      rm -rf $(VENV); \
	      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv && \
	      $(PYTHON) -m venv $(VENV); \
	    else exit 1; fi; }; \
	fi
	@key=$$(sha256sum pyproject.toml | cut -c1-16); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$key" ]; then \
	  echo "make: installing svmkit and its test dependencies into $(VENV)"; \
	  $(PY) -m pip install --upgrade pip >/dev/null && \
	  $(PY) -m pip install -e '.[test]' && \
	  echo "$$key" > $(STAMP); \
	else echo "make: $(VENV) is up to date with pyproject.toml"; fi
	@cd /tmp && $(CURDIR)/$(PY) -c "import svmkit.widgets" 2>/dev/null || { \
	  echo "make: svmkit.widgets does not import from the editable install:"; \
	  echo "      pyproject.toml must list svmkit.widgets (package-dir widgets/) in its packages"; \
	  exit 1; }

# Debian's chromium for the real-browser tests (Playwright's own browser download
# does not work here). Installed only when missing and when we may (root).
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make: installing chromium with apt-get"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
	  echo "make: $(CHROMIUM) is missing and we are not root: browser tests will skip"; \
	fi

lab: env
	$(PY) -m jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=. notebooks/00-start-here.ipynb

# The walk stepper alone, as a Voila app.
voila: env
	$(PY) -m voila notebooks/apps/walk-stepper.ipynb

test: env chromium
	$(PY) -m pytest $(PYTEST_ARGS)

clean-env:
	rm -rf $(VENV)
