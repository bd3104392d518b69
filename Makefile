# Two entry points for people (README): `make demo` and `make test`. Everything the project needs is
# installed from here: Python packages pinned by requirements/lock.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JS_DIR := edgezoo/formats/tfjs/js
JS_STAMP := $(JS_DIR)/node_modules/.installed
CHROMIUM := /usr/bin/chromium
DEVICE_VENV := .venv-device
DEVICE_STAMP := $(DEVICE_VENV)/.ready
MEDIAPIPE_VENV := .venv-mediapipe
MEDIAPIPE_STAMP := $(MEDIAPIPE_VENV)/.ready

.PHONY: demo test fuzz bench install clean

install: $(STAMP) $(JS_STAMP) $(CHROMIUM) $(DEVICE_STAMP) $(MEDIAPIPE_STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/lock.txt -e '.[test,ray,detection,explorer]'
	touch $(STAMP)

# TF.js for the Node and browser runners, exactly as package-lock.json pins it.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

# Debian's Chromium for the browser runner (CI runs as root on a fresh machine); skipped when present.
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation

# A Raspberry Pi-class Python (numpy and tflite-runtime alone) to run device_check/check_parity.py in tests.
# The stamp holds the requirements it was made from; the tests remake the environment when they differ.
$(DEVICE_STAMP): requirements/device.txt
	rm -rf $(DEVICE_VENV)
	$(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/device.txt
	cp requirements/device.txt $(DEVICE_STAMP)

# MediaPipe Tasks, to classify images with edgezoo's .tflite files as an app would (requirements/mediapipe.txt says
# why --no-deps). Like the device environment, the stamp holds the requirements; the tests remake it when they differ.
$(MEDIAPIPE_STAMP): requirements/mediapipe.txt
	rm -rf $(MEDIAPIPE_VENV)
	$(PYTHON) -m venv $(MEDIAPIPE_VENV)
	$(MEDIAPIPE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/mediapipe.txt
	cp requirements/mediapipe.txt $(MEDIAPIPE_STAMP)

demo: install
	$(VENV)/bin/edgezoo convert digits-cnn --target all --out build --force
	$(VENV)/bin/edgezoo convert shapes-detector --target phone --target onnx --target browser --out build --force

# Two test processes (pytest-xdist): most tests wait on converters, runtimes and child processes, so the suite
# takes about two thirds of the time on two cores. Each test file runs whole in one process, and the files that share
# a costly session fixture in the same one (tests/conftest.py), so nothing is built twice.
TEST_WORKERS ?= 2

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The parsers' fuzzers at 10,000 cases each (tens of minutes); prints each parser's count of cases and failures.
fuzz: install
	EDGEZOO_FUZZ_PROFILE=fuzz $(PY) -m pytest tests/fuzz -q -p no:cacheprovider

# Figures for the README: edgezoo against the usual way, side by side in one run (about 20 minutes).
bench: install
	$(PY) bench/run.py
	$(PY) bench/jobs.py

clean:
	rm -rf build .pytest_cache
