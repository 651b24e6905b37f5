PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/multiscale demo

test: $(STAMP)
	$(BIN)/python -m ruff check multiscale tests benchmarks example_datasets
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo_output example_datasets/generated
