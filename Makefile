# One set-up for every command: `make install` creates .venv with torch==2.13.0 first
# (a CPU wheel; an unpinned torch would make pip download a CUDA build of several GB).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export EDGEGAN_DATA ?= $(abspath ../shared/datasets)

.PHONY: install demo test test-fast bench bench-mnist clean

install: $(STAMP)

$(STAMP): pyproject.toml runtime/pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e "./runtime[onnx,litert]" -e ".[export,bench,dev]"
	touch $(STAMP)

demo: install
	$(BIN)/edgegan demo --out runs/demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# Benchmarks: each writes JSON + markdown (with machine and versions) under bench/results/.
bench: install
	$(BIN)/python bench/scripts/bench_distill.py
	$(BIN)/python bench/scripts/bench_export.py
	$(BIN)/python bench/scripts/bench_runtime.py
	$(BIN)/python bench/scripts/bench_ratio.py

bench-mnist: install
	bash bench/scripts/mnist.sh

clean:
	rm -rf runs .pytest_cache
