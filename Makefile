# Two entry points for a fresh machine (each installs everything it needs first):
#   make run    the main job
#   make test   the test suite
# Python >= 3.11 is required; PYTHON picks the interpreter used to build the venv.

PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin

.PHONY: install run test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mjx-metamimic train --config cpu

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q --durations=15 --nbmake tests notebooks

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
