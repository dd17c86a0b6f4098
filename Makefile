# The two commands a new user runs (see README.md):
#   make demo   set up .venv, then tabulate and compile GoogLeNet
#   make test   set up .venv, then run the linter and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test golden lint gpu-sim clean

$(STAMP): pyproject.toml requirements/constraints-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints-dev.txt -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/incdsl params specs/googlenet.inc
	$(BIN)/incdsl compile specs/googlenet.inc --backend torch -o build/googlenet.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Rewrite the golden files under tests/golden/ from the current code.
golden: $(STAMP)
	$(BIN)/python -m pytest tests --update-golden -q

lint: $(STAMP)
	$(BIN)/ruff check .

# bench/gpu.sh on a stand-in for a lent GPU machine (Python 3.12, torch 2.11, the
# carried wheels), without a GPU, up to its first CUDA call; see BENCHMARKS.md.
# Not part of `make test`: the first run downloads a few GB into ~/.cache.
gpu-sim:
	bash bench/gpu_sim.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
