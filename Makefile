# The two commands of this workspace:
#   make demo   set up (first time) and run the demo pipeline
#   make test   set up (first time), lint, build the docs (make docs: mkdocs --strict, so a broken link or
#               anchor fails), and run the test suite
# Set-up makes .venv, installs torch first (TORCH_SPEC, default the local CPU wheel torch==2.13.0;
# override with e.g. `make test TORCH_SPEC="torch==2.5.1"`, or TORCH_SPEC= to keep the torch you have),
# then the three distributions editable with their extras and the dev tools.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test lint docs

$(STAMP): core/pyproject.toml packages/langchain_rerank/pyproject.toml packages/llamaindex_rerank/pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install -q -e "core[all]" -e packages/langchain_rerank -e packages/llamaindex_rerank -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python examples/demo.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

test: lint docs
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)
