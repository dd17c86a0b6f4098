# The two commands a new user runs (see README.md):
#   make demo   set up .venv, then tabulate and compile GoogLeNet
#   make test   set up .venv, then run the linter and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test golden lint gpu-check gpu-check-here gpu-kernels gpu-sim clean

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

# The Triton a lent GPU machine runs (its image's), beside this machine's, for the checks below.
GPU_TRITON := 3.6.0
SIDE_TRITON := $(VENV)/triton-$(GPU_TRITON)
$(SIDE_TRITON)/.installed: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --target $(SIDE_TRITON) triton==$(GPU_TRITON)
	touch $@
# Triton 3.6's interpreter turns 1-element arrays into ints, which NumPy 2.5 refuses.
SIDE_NUMPY := $(VENV)/numpy-2.2
$(SIDE_NUMPY)/.installed: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --target $(SIDE_NUMPY) numpy==2.2.6
	touch $@

# Compile every kernel the bundled networks launch (each fused group, pool projection,
# residual expansion and k×k conv, at batches 1, 32 and 256, in fp16, bf16, TF32 and
# IEEE fp32, with every config the tuner may pick) for sm_90 and sm_80, under this
# machine's Triton and under the GPU machine's; fail on anything outside the targets'
# limits. The tables land in build/gpu-check-*.txt. `make test` runs a subset. Then the
# kernels' interpreter tests again under the GPU machine's Triton, and InceptionNeXt's token
# mixer compiled by it for both targets (`make test` compiles it under this machine's).
gpu-check: gpu-check-here $(SIDE_TRITON)/.installed $(SIDE_NUMPY)/.installed
	PYTHONPATH=$(SIDE_TRITON) $(BIN)/python -m incdsl.compiler.triton.aot \
		--json build/gpu-check-triton-$(GPU_TRITON).json > build/gpu-check-triton-$(GPU_TRITON).txt \
		|| { grep FAIL build/gpu-check-triton-$(GPU_TRITON).txt; tail -n 3 build/gpu-check-triton-$(GPU_TRITON).txt; exit 1; }
	tail -n 3 build/gpu-check-triton-$(GPU_TRITON).txt
	PYTHONPATH=$(SIDE_TRITON):$(SIDE_NUMPY) TRITON_INTERPRET=1 $(BIN)/python -m pytest -q -p no:cacheprovider \
		-W ignore::DeprecationWarning tests/test_triton.py tests/test_token_mixer.py

# The same check under this machine's Triton alone.
gpu-check-here: $(STAMP)
	mkdir -p build
	$(BIN)/python -m incdsl.compiler.triton.aot --json build/gpu-check-triton-here.json > build/gpu-check-triton-here.txt \
		|| { grep FAIL build/gpu-check-triton-here.txt; tail -n 3 build/gpu-check-triton-here.txt; exit 1; }
	tail -n 3 build/gpu-check-triton-here.txt

# The kernels the first GPU benchmark call launches, compiled here for the lent GPU
# (sm_90, its Triton) into .gpu-kernels/, which bench/gpu.sh installs there: the
# GPU's minutes go to measuring, not compiling. Carry .gpu-kernels with .whl.
gpu-kernels: $(STAMP) $(SIDE_TRITON)/.installed
	rm -rf .gpu-kernels
	PYTHONPATH=$(SIDE_TRITON) TRITON_CACHE_DIR=build/triton-cache-$(GPU_TRITON) $(BIN)/python -m incdsl.compiler.triton.aot \
		--quiet --targets sm_90 --precisions fp16 --nets compat/torchvision_googlenet,inception_v4 --export .gpu-kernels
	du -sh .gpu-kernels

# bench/gpu.sh on a stand-in for a lent GPU machine (Python 3.12, torch 2.11, the
# carried wheels), without a GPU, up to its first CUDA call; see BENCHMARKS.md.
# Not part of `make test`: the first run downloads a few GB into ~/.cache.
gpu-sim:
	bash bench/gpu_sim.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
