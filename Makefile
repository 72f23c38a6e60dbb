# llmops — make targets. `make demo` and `make test` create the environment when needed.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
PIP     := $(BIN)/pip --disable-pip-version-check -q

.PHONY: help venv demo test test-unit test-integration bench airflow-up airflow-down clean

help:
	@echo "make demo      ingest the project's docs into an embedded Chroma and answer a question"
	@echo "make test      run the whole test suite (unit + integration, real Airflow on loopback)"
	@echo "make test-unit fast unit tests only"
	@echo "make bench     benchmarks (results in benchmarks/results/)"
	@echo "make airflow-up / airflow-down   a local Airflow 3 on 127.0.0.1 with the llmops DAGs"

# torch is installed FIRST and pinned: a range admitting newer releases pulls GBs of CUDA wheels.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt -e ".[test,onnx-export]"
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/llmops ingest docs README.md --collection llmops-docs
	$(BIN)/llmops ask "How do I make llmops wait for an Airflow DAG run and fail my CI job when it fails?" --collection llmops-docs

test: venv
	$(BIN)/python -m pytest

test-unit: venv
	$(BIN)/python -m pytest -m "not integration and not airflow"

bench: venv
	$(BIN)/python -m benchmarks

airflow-up: venv
	$(BIN)/python -m tests.support.airflow_local up

airflow-down:
	$(BIN)/python -m tests.support.airflow_local down

clean:
	rm -rf .llmops .pytest_cache benchmarks/results
