# The two commands of this workspace:
#   make demo   set up (first time) and run the demo pipeline
#   make test   set up (first time), lint, build the docs (make docs: mkdocs --strict, so a broken link or
#               anchor fails), and run the test suite
# Set-up makes .venv, installs torch first (TORCH_SPEC, default the local CPU wheel torch==2.13.0;
# override with e.g. `make test TORCH_SPEC="torch==2.5.1"`, or TORCH_SPEC= to keep the torch you have),
# then the three distributions editable with their extras and the dev tools, and (as root with apt-get, when
# it is missing) Debian's chromium and chromium-driver for the browser test of the eval report.

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
	@# Headless Chromium for the browser test of the eval report (tests/core/test_eval_report.py skips without it).
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver (apt-get) for the report's browser test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
	    || (apt-get update -q >/dev/null \
	        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null) \
	    || echo "note: could not install chromium; the report's browser test will be skipped"; \
	else echo "note: chromium or chromedriver not found (make setup installs them as root with apt-get); the report's browser test will be skipped"; fi
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
