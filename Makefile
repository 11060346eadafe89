# `make demo` and `make test` each set everything up first (idempotent, see `setup`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch lies on this machine kind's disk; an unpinned torch pulls a CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.pc3d-setup
PLUGINS := $(wildcard plugins/*/pyproject.toml)
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/setup_system.sh $(PLUGINS)
	bash scripts/setup_system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[all,test]" "$(TORCH_SPEC)"
	for p in $(dir $(PLUGINS)); do $(BIN)/python -m pip install -q -e "$$p" "$(TORCH_SPEC)" || exit 1; done
	touch $(STAMP)

demo: setup
	$(BIN)/pc3d demo

# Lint, format and type checks (configured in pyproject.toml); `make test` runs them first.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Rendering tests need a display: run under Xvfb (installed by setup) when there is none, and
# fail rather than skip when rendering does not work (PC3D_REQUIRE_RENDER).
test: export PC3D_REQUIRE_RENDER = 1
test: setup lint
	@if [ -z "$$DISPLAY" ] && command -v xvfb-run >/dev/null; then \
		echo "xvfb-run -a $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)"; \
		xvfb-run -a -s '-screen 0 1920x1080x24' $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS); \
	else \
		$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS); \
	fi

bench: setup
	$(BIN)/python tools/bench.py all

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
