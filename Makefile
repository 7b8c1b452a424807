# Two entry points for a fresh machine (each installs everything it needs first):
#   make run    the main job
#   make test   the test suite
# Python >= 3.11 is required; PYTHON picks the interpreter used to build the venv.

PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin

# Offline install on a GPU host (Python 3.12, CUDA JAX preinstalled): `make wheelhouse` here,
# copy wheelhouse/ there, then `pip install --no-index --find-links wheelhouse mjx-metamimic`.
WHEEL_PYTHON ?= 3.12
WHEEL_PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	--platform manylinux2014_x86_64 --platform linux_x86_64 --platform any

.PHONY: install run test lint clean wheelhouse

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mjx-metamimic train --config cpu

# Notebooks run at their smoke sizes (MJX_METAMIMIC_SMOKE=1; the tests ignore the variable).
test: $(STAMP)
	MJX_METAMIMIC_SMOKE=1 $(BIN)/python -m pytest -n 2 --dist loadfile -q --durations=15 --nbmake tests notebooks

wheelhouse: $(STAMP)
	rm -rf wheelhouse
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir wheelhouse .
	$(BIN)/python -m pip download --quiet --dest wheelhouse --only-binary=:all: \
		--python-version $(WHEEL_PYTHON) $(WHEEL_PLATFORMS) wheelhouse/mjx_metamimic-*.whl
# The optional Warp physics engine (env.impl = "warp"), for NVIDIA GPUs:
	$(BIN)/python -m pip download --quiet --dest wheelhouse --only-binary=:all: \
		--python-version $(WHEEL_PYTHON) $(WHEEL_PLATFORMS) "warp-lang>=1.19,<1.20"
	@ls wheelhouse | wc -l | xargs echo "wheels in wheelhouse/:"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
