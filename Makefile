# Two entry points for people (README): `make demo` and `make test`. Everything the project needs is
# installed from here: Python packages pinned by requirements/lock.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/lock.txt -e '.[test]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/edgezoo convert digits-cnn --target phone --out build --force

test: install
	$(PY) -m pytest

clean:
	rm -rf build .pytest_cache
