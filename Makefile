# The README's two commands: `make demo` and `make test`. Both bootstrap .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast firmware services soak bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# System services the tests talk to (Mosquitto; PostgreSQL where it can be had), loopback only.
services:
	@bash .ci/services.sh

# Deployable firmware bundle (.mpy files + umqtt.simple from PyPI + example config) in build/firmware/.
firmware: $(STAMP)
	$(PY) -m technician.bundle build/firmware

test: $(STAMP) services
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/rating demo

soak: $(STAMP) services
	$(PY) -m pytest -m slow --run-slow

bench: $(STAMP) services
	$(PY) bench/ingest.py

clean:
	rm -rf build .pytest_cache
