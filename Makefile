# Two commands for a newcomer: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo's ports (UI, simulator, webhook receiver): `make demo PORT=3001` when 3000 is taken.
PORT ?= 3000
SIMULATOR_PORT ?= 8765
WEBHOOK_PORT ?= 8000

.PHONY: demo test lint format bench docs-shots clean

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tds demo --port $(PORT) --simulator-port $(SIMULATOR_PORT) --webhook-port $(WEBHOOK_PORT)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check tds_pipelines tds_pipelines_tests benchmarks docs
	$(BIN)/ruff format --check tds_pipelines tds_pipelines_tests benchmarks docs

format: $(STAMP)
	$(BIN)/ruff format tds_pipelines tds_pipelines_tests benchmarks docs
	$(BIN)/ruff check --fix tds_pipelines tds_pipelines_tests benchmarks docs

docs-shots: $(STAMP)
	$(BIN)/python docs/shots.py --out docs/screenshots

bench: $(STAMP)
	$(BIN)/python benchmarks/upsert_benchmark.py
	$(BIN)/python benchmarks/full_sync_benchmark.py
	$(BIN)/python benchmarks/parallel_budget_benchmark.py
	$(BIN)/python benchmarks/schedule_cost.py
	$(BIN)/python benchmarks/receiver_benchmark.py
	$(BIN)/python benchmarks/drain_benchmark.py
	$(BIN)/python benchmarks/webhook_latency_benchmark.py
	$(BIN)/python benchmarks/schedule_day_benchmark.py
	$(BIN)/python benchmarks/comparison_benchmark.py
	$(BIN)/python benchmarks/alert_latency_benchmark.py

clean:
	rm -rf $(VENV) .tds
