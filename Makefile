# The two commands a fresh machine needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install lock run serve test fuzz lint bench clean

# Installs exactly the versions in requirements.lock, each checked against its hashes; the project itself on top.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# Refresh requirements.lock deliberately: the newest versions pyproject.toml's ranges allow, with hashes. Review the
# diff, run `make test`, commit both.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --no-header \
		--no-annotate --upgrade -o requirements.lock

# Runs the whole app: migrate and load the demo data (load_demo: wallet labels, recorded samples, the replay), then
# `serve`.
run: export DEBUG ?= 1
run: export STATIC_COLLECTED ?= 1
run: $(STAMP)
	@mkdir -p var/staticfiles
	$(BIN)/python manage.py load_demo
	@$(MAKE) --no-print-directory serve

# The processes alone, under supervisord (supervisord.conf runs the Procfile's commands): embedded Redis (unless
# REDIS_URL is set), Daphne, Celery worker and beat. One that dies is restarted; the others keep running. Ctrl-C
# stops them all. Email links point at this server unless SITE_URL is set.
serve: export DEBUG ?= 1
serve: export SITE_URL ?= http://127.0.0.1:$(PORT)
serve:
	@mkdir -p var/staticfiles
	@echo ""
	@echo "  PressureWeb is starting on http://127.0.0.1:$(PORT)  (Ctrl-C stops everything)"
	@echo ""
	WEB_PORT=$(PORT) PW_RUN_REDIS=$(if $(REDIS_URL),false,true) exec $(BIN)/supervisord -c supervisord.conf

lint: $(STAMP)
	$(BIN)/ruff check .

# Lint, then every test (unit, integration, browser) in TEST_WORKERS processes (pytest-xdist; a file's tests stay
# in one process; tests/workers.py gives each its own Redis, pytest-django its own test database). Exit code 5 (no
# tests ran) counts as failure.
TEST_WORKERS ?= 2
test: export DEBUG ?= 1
test: export EMBEDDED_REDIS_PORT ?= 6391
test: export CONN_MAX_AGE ?= 0
test: $(STAMP)
	@mkdir -p var/staticfiles
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

# The randomized tests with fresh random examples, many more of them than `make test` draws: the import path's
# property tests (PROPERTY_EXAMPLES each), then schemathesis against /api/v1 (FUZZ_EXAMPLES per operation) from a
# random seed it prints (API_FUZZ_SEED=<seed> replays it). `make test` runs both with fixed seeds.
FUZZ_EXAMPLES ?= 2000
FUZZ_SEED := $(or $(API_FUZZ_SEED),$(shell od -An -N4 -tu4 /dev/urandom | tr -d ' '))
fuzz: export DEBUG ?= 1
fuzz: export EMBEDDED_REDIS_PORT ?= 6391
fuzz: export CONN_MAX_AGE ?= 0
fuzz: export HYPOTHESIS_PROFILE = fuzz
fuzz: export PROPERTY_EXAMPLES ?= 300
fuzz: export API_FUZZ_SEED = $(FUZZ_SEED)
fuzz: $(STAMP)
	@mkdir -p var/staticfiles
	$(BIN)/python -m pytest tests/integration/test_integrity.py tests/unit/test_validation.py tests/unit/test_bars_math.py -p no:logging
	@echo "schemathesis: $(FUZZ_EXAMPLES) examples per operation, seed $(FUZZ_SEED) (replay: make fuzz API_FUZZ_SEED=$(FUZZ_SEED))"
	API_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/integration/test_api_schema.py \
		-k test_api_never_errors -q --hypothesis-show-statistics

bench: export DEBUG ?= 1
bench: $(STAMP)
	@mkdir -p var/staticfiles
	$(BIN)/python -m bench.run

clean:
	rm -rf var/test.sqlite3* .pytest_cache
