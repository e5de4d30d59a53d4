# Two commands on a fresh machine: `make run` and `make test`. Nothing else is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check --quiet

# Page translations are compiled from translations/*/LC_MESSAGES/messages.po by the set-up.
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))

.PHONY: run test migrate bench lint clean translations bytecode

run: $(VENV)/.runtime translations bytecode migrate
	exec $(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

test: $(VENV)/.dev translations bytecode migrate
	scripts/ensure-chromium
	$(BIN)/pytest

migrate: $(VENV)/.runtime
	$(BIN)/flask --app wsgi db upgrade

translations: $(CATALOGUES)

# The project's modules compiled ahead, as pip compiles the libraries it installs: where the
# environment sets PYTHONDONTWRITEBYTECODE, each command would otherwise compile them anew as
# it starts (0.2 s of `flask --app wsgi clean`). compileall skips what is up to date.
bytecode: $(VENV)/.runtime
	$(BIN)/python -m compileall -q suppress wsgi.py

%.mo: %.po $(VENV)/.runtime
	$(BIN)/pybabel -q compile -i $< -o $@

# Every benchmark, on SQLite and on a throwaway PostgreSQL; figures go in bench/README.md.
bench: $(VENV)/.dev bytecode
	-$(BIN)/python bench/bench_addresses.py
	-$(BIN)/python -m bench.bench_suppressions
	-$(BIN)/python -m bench.bench_one_click
	-$(BIN)/python -m bench.bench_webhooks
	-$(BIN)/python -m bench.bench_sync
	-$(BIN)/python -m bench.bench_clean
	scripts/with-postgres bash -c '$(BIN)/python -m bench.bench_suppressions --database-url "$$SUPPRESS_PG_URL"'
	scripts/with-postgres bash -c '$(BIN)/python -m bench.bench_one_click --database-url "$$SUPPRESS_PG_URL"'
	scripts/with-postgres bash -c '$(BIN)/python -m bench.bench_webhooks --database-url "$$SUPPRESS_PG_URL"'
	-scripts/with-postgres bash -c '$(BIN)/python -m bench.bench_sync --database-url "$$SUPPRESS_PG_URL"'
	-scripts/with-postgres bash -c '$(BIN)/python -m bench.bench_clean --database-url "$$SUPPRESS_PG_URL"'

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PIP) install -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage htmlcov
