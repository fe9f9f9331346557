# The README's two commands: `make demo` and `make test`. Both bootstrap .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint format firmware services soak bench bench-100m clean i18n

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# System services the tests talk to (Mosquitto; PostgreSQL where it can be had), loopback only.
services:
	@bash .ci/services.sh

# Deployable firmware bundle (.mpy files + launcher + example config) in build/firmware/.
firmware: $(STAMP)
	$(PY) -m technician.bundle build/firmware

# Lint (ruff), format check and type check (pyright, basic) of the CPython packages.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

# The message catalogue (gateway/i18n.py): extract what the code marks with _()/ngettext()/N_()
# in gateway/, rating/, the CLI modules of simulator/ and technician/ (technician/i18n.py) and
# console/cli.py (the console's pages have their own table, console/i18n.py), and argparse's own words, update the Russian .po (translate what is new there), compile the .mo.
i18n: $(STAMP)
	@mkdir -p build
	$(VENV)/bin/pybabel extract --add-location=never --sort-output --no-wrap --project=rating-terminals \
		-o build/rating.pot gateway rating simulator/cli.py simulator/demo.py technician console/cli.py $$($(PY) -c 'import argparse; print(argparse.__file__)')
	$(VENV)/bin/pybabel update --no-fuzzy-matching --no-wrap --ignore-obsolete -i build/rating.pot \
		-d gateway/locale -D rating -l ru
	$(VENV)/bin/pybabel compile --statistics -d gateway/locale -D rating -l ru

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The suite in TEST_WORKERS processes (pytest-xdist): most tests wait on brokers, databases,
# VMs and browsers, so 4 processes keep 2 cores busy; a module stays in one process (its
# fixtures are set up once). The `realtime` tests (the firmware on a VM holding presses for
# milliseconds of wall clock) run afterwards in one process, away from that load. Both parts
# always run; `make test TEST_WORKERS=0` runs the first in one process too (tests/README.md).
TEST_WORKERS ?= 4
test: lint services
	@rc=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope -m "not realtime" || rc=$$?; \
	$(PY) -m pytest -m realtime || rc=$$?; \
	exit $$rc

# The inner loop: pure and unit tests only (no broker, database server, VM or subprocess).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e and not slow"

demo: $(STAMP)
	$(VENV)/bin/rating demo

soak: $(STAMP) services
	$(PY) -m pytest -m slow --run-slow

bench: $(STAMP) services
	$(PY) bench/ingest.py
	$(PY) bench/shared.py
	$(PY) bench/simspeed.py
	$(PY) bench/load.py
	$(PY) bench/rebuild.py --pg --panels 300 --days 7
	nice $(PY) bench/rollup.py --polls 1000000 --repeat 3
	nice $(PY) bench/rollup.py --polls 1000000 --counts --repeat 1
	nice $(PY) bench/rollup.py --polls 1000000 --pg --repeat 1

# the 100M-poll chain on PostgreSQL (~51 GB, an hour or more of generation; dropped afterwards)
bench-100m: $(STAMP) services
	nice $(PY) bench/rollup.py --pg --polls 100000000 --days 365 --gen-jobs 2 --repeat 2

clean:
	rm -rf build .pytest_cache
