# The two commands of the README: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed-stamp
# dbt must be on PATH for Cosmos to render the dbt task group.
export PATH := $(BIN):$(PATH)

.PHONY: install run test lint bench clean-warehouse airflow chromium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip uv
	@# --compile-bytecode: .pyc files are written at install time, so every process (Airflow, dbt, GX)
	@# starts from bytecode even where PYTHONDONTWRITEBYTECODE is set (imports were half of a no-op night).
	@$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]' \
		|| $(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The browser tests (tests/test_dashboard.py) open the dashboard and the run report in Debian's
# headless Chromium; installed here when missing (as root, as on CI and a fresh machine).
chromium:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

run: install
	$(BIN)/reform-etl warehouse start
	$(BIN)/reform-etl sample --out landing
	$(BIN)/reform-etl run --landing landing
	$(BIN)/reform-etl docs

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python scripts/bench.py

clean-warehouse:
	-$(BIN)/reform-etl warehouse stop
	rm -rf .warehouse .airflow landing archive reports

airflow: install  ## Airflow standalone on the embedded warehouse: the nightly runs by itself at 01:00
	$(BIN)/reform-etl warehouse start
	$(BIN)/reform-etl airflow
