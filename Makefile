# llmops — make targets. `make demo` and `make test` create the environment when needed.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
PIP     := $(BIN)/pip --disable-pip-version-check -q

.PHONY: help venv demo lint format test test-unit test-integration bench airflow-up airflow-down dev-up dev-down clean

help:
	@echo "make demo      ingest the project's docs into an embedded Chroma and answer a question"
	@echo "make test      run the whole test suite (unit + integration, real Airflow on loopback)"
	@echo "make test-unit fast unit tests only"
	@echo "make lint      ruff lint + format check (make format rewrites)"
	@echo "make bench     benchmarks (results in benchmarks/results/)"
	@echo "make airflow-up / airflow-down   a local Airflow 3 on 127.0.0.1 with the llmops DAGs"
	@echo "make dev-up / dev-down   the team stack on 127.0.0.1 (PostgreSQL+pgvector, Airflow; STORE=chroma EXECUTOR=celery)"

# torch is installed FIRST and pinned: a range admitting newer releases pulls GBs of CUDA wheels.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt -e ".[test,onnx-export]"
	touch $(STAMP)

venv: $(STAMP)

DEMO_QUESTION ?= How do I make llmops wait for an Airflow DAG run and fail my CI job when it fails?

# Ingest exits 3 when it skipped inputs (listed); that still makes a usable demo. With no LLM configured
# (llm.model / LLMOPS_LLM_MODEL) the demo shows the retrieved sources and how to configure a model.
demo: venv
	$(BIN)/llmops ingest docs README.md || [ $$? -eq 3 ]
	@if [ -n "$$($(BIN)/llmops config get llm.model)" ]; then \
	  $(BIN)/llmops ask "$(DEMO_QUESTION)"; \
	else \
	  $(BIN)/llmops ask "$(DEMO_QUESTION)" --retrieval-only; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: venv lint
	$(BIN)/python -m pytest --timeout=1200 --durations=40

test-unit: venv
	$(BIN)/python -m pytest -m "not integration and not airflow"

# the LangChain reference is installed without constraints.txt: it wants newer certifi/httpx than the test pins
bench: venv
	$(PIP) install -e ".[bench]"
	$(BIN)/python -m benchmarks

airflow-up: venv
	$(BIN)/llmops dev airflow up

airflow-down: venv
	$(BIN)/llmops dev airflow down

# the whole team set-up on loopback: PostgreSQL+pgvector, Airflow (STORE=chroma adds a Chroma server;
# EXECUTOR=celery runs Redis and Celery workers); prints the env lines to use it
STORE    ?= pgvector
EXECUTOR ?= local
dev-up: venv
	$(BIN)/llmops dev up --store $(STORE) --executor $(EXECUTOR)

dev-down: venv
	$(BIN)/llmops dev down

clean:
	rm -rf .llmops .pytest_cache benchmarks/results
