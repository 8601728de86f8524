# Everything runs inside .venv, created on first use by the .venv target.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch is installed first, so that the package's wide `torch>=2.3` is already met
# and pip does not pull a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test lint type check format docs clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[tests]"
	touch $@

$(VENV): $(VENV)/.installed

install: $(VENV)

demo: $(VENV)
	$(BIN)/python -m sb3_reinforce.demo

test: $(VENV)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)
	$(BIN)/ruff check sb3_reinforce tests benchmarks docs
	$(BIN)/ruff format --check sb3_reinforce tests benchmarks docs

format: $(VENV)
	$(BIN)/ruff format sb3_reinforce tests benchmarks docs
	$(BIN)/ruff check --fix sb3_reinforce tests benchmarks docs

type: $(VENV)
	$(BIN)/mypy

check: lint type test

# The `docs` extra of pyproject.toml (Sphinx, MyST, the theme), installed once next to the rest.
$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

# HTML in docs/_build/html; every warning is an error.
docs: $(VENV) $(VENV)/.docs-installed
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info docs/_build
