# PRISM: make run (server with every dashboard and the API), make test (the whole suite), make lab.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5006
# PyTorch, pinned. Which build you get depends on the index it comes from: TORCH_INDEX_URL empty
# means pip's configured index (on this project's machines it serves the CPU build,
# torch==2.13.0+cpu); PyPI itself serves the multi-GB CUDA build on Linux. Elsewhere, for the CPU
# build: make install TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_PIN ?= torch==2.13.0
TORCH_INDEX_URL ?=
PYTEST_ARGS ?=

.PHONY: install run test test-fast lab lint bench gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL) )"$(TORCH_PIN)"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/prism serve --port $(PORT)

# The shared set-up on this machine: Redis and PostgreSQL from Debian's packages (apt-get install
# redis-server postgresql) and `prism serve --workers $(WORKERS)` sharing them; Ctrl-C stops all.
WORKERS ?= 2
.PHONY: run-cluster
run-cluster: install
	WORKERS=$(WORKERS) PORT=$(PORT) PRISM=$(BIN)/prism bash deployment/local/run-cluster.sh

lab: install
	$(BIN)/python -m pip install -e ".[lab]"
	$(BIN)/jupyter lab notebooks/

# pytest exits 5 when it collects nothing; treat that as a failure of the suite's wiring, not as "passed".
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check prism_kernels widgets tests benchmarks
	$(BIN)/ruff format --check prism_kernels widgets tests benchmarks

bench: install
	$(BIN)/python -m benchmarks

# On a machine with an NVIDIA GPU: the gpu-marked tests and the GPU benchmark, < 8 minutes.
gpu-check: install
	PYTHON=$(BIN)/python bash benchmarks/gpu_check.sh $(OUT)

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
