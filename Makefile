# The two commands a newcomer needs: `make demo` and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,sandbox]'
	touch $@

demo: $(BIN)/.installed  ## run the main job on the embedded default
	$(BIN)/segsync demo

test: $(BIN)/.installed lint  ## lint, type-check and run the whole test suite
	$(BIN)/pytest -n 2

lint: $(BIN)/.installed
	$(BIN)/ruff check connector segsync_sandbox tests bench
	$(BIN)/ruff format --check connector segsync_sandbox tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(BIN)/.installed
	$(BIN)/python bench/engine_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
