# One set-up for every command: `make install` creates .venv with torch==2.13.0 first
# (a CPU wheel; an unpinned torch would make pip download a CUDA build of several GB).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export EDGEGAN_DATA ?= $(abspath ../shared/datasets)

# tflite-runtime (the interpreter of boards that cannot take numpy 2) in a venv of its own: its last
# release, 2.14, needs numpy < 2 and Python <= 3.11. Where it cannot be made, the reason goes to
# $(TFLITE_VENV)/SKIP and the tflite-runtime parity test skips with it; `make test` never fails on it.
TFLITE_PY ?= $(shell command -v python3.11 2>/dev/null || echo $(PY))
TFLITE_VENV := .venv-tflite
TFLITE_STAMP := $(TFLITE_VENV)/.installed

.PHONY: install tflite-venv web-deps demo test test-fast docs bench bench-mnist bench-recipes clean

install: $(STAMP)

$(STAMP): pyproject.toml runtime/pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e "./runtime[onnx,litert]" -e ".[export,bench,dev]"
	touch $(STAMP)

tflite-venv: $(TFLITE_STAMP)

$(TFLITE_STAMP): runtime/pyproject.toml
	rm -rf $(TFLITE_VENV)
	@if ! $(TFLITE_PY) -V > /dev/null 2>&1; then \
	  mkdir -p $(TFLITE_VENV); echo "no Python interpreter $(TFLITE_PY) to make it with" > $(TFLITE_VENV)/SKIP; \
	elif ! $(TFLITE_PY) -c 'import sys; sys.exit(sys.version_info[:2] > (3, 11))'; then \
	  mkdir -p $(TFLITE_VENV); \
	  echo "tflite-runtime has no wheels for $$($(TFLITE_PY) -V 2>&1) (it needs Python <= 3.11)" > $(TFLITE_VENV)/SKIP; \
	elif ! { $(TFLITE_PY) -m venv $(TFLITE_VENV) && \
	         $(TFLITE_VENV)/bin/python -m pip install -q -e "./runtime[tflite]" > $(TFLITE_VENV)/install.log 2>&1; }; then \
	  mkdir -p $(TFLITE_VENV); \
	  echo "pip could not install edgegan-runtime[tflite]: $$(tail -n 1 $(TFLITE_VENV)/install.log 2>/dev/null)" > $(TFLITE_VENV)/SKIP; \
	fi
	@test ! -f $(TFLITE_VENV)/SKIP || echo "tflite-runtime venv skipped: $$(cat $(TFLITE_VENV)/SKIP)"
	touch $(TFLITE_STAMP)

# The web target (issue 23): onnxruntime-web for the site and playwright-core for the browser test, by
# npm ci against edgegan/web/package-lock.json, and Debian's chromium (apt-get, as root) where it is missing.
# Where either cannot be had, the reason goes to edgegan/web/SKIP and the browser test skips with it.
WEB := edgegan/web
web-deps: $(WEB)/node_modules/.installed

$(WEB)/node_modules/.installed: $(WEB)/package-lock.json
	@rm -f $(WEB)/SKIP
	@if ! test -x /usr/bin/chromium && ! command -v chromium > /dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } > $(WEB)/apt.log 2>&1 \
	      || echo "apt-get could not install chromium: $$(tail -n 1 $(WEB)/apt.log)" > $(WEB)/SKIP; \
	  else echo "no chromium, and no root apt-get to install it" > $(WEB)/SKIP; fi; \
	fi
	@if ! command -v npm > /dev/null 2>&1; then echo "no npm (Node.js) to install onnxruntime-web and playwright-core" >> $(WEB)/SKIP; \
	elif ! (cd $(WEB) && npm ci --no-audit --no-fund > npm.log 2>&1); then echo "npm ci failed: $$(tail -n 1 $(WEB)/npm.log)" >> $(WEB)/SKIP; fi
	@test ! -f $(WEB)/SKIP || echo "web test set-up skipped: $$(cat $(WEB)/SKIP)"
	@mkdir -p $(WEB)/node_modules && touch $@

demo: install
	$(BIN)/edgegan demo --out runs/demo

# Two pytest workers (pytest-xdist), one test file each at a time (--dist loadfile: a file's module fixtures
# are built once, in one worker); the 20 slowest tests are listed at the end (issue 18).
TEST_JOBS ?= 2
test: install tflite-venv web-deps
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --durations=20

test-fast: install
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile -m "not slow"

# The documentation site (mkdocs.yml, docs/) into site-docs/; --strict fails on any warning (a broken link or
# anchor). NO_MKDOCS_2_WARNING silences Material's end-of-life banner, a notice and not a build warning.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -f mkdocs.yml

# Benchmarks: each writes JSON + markdown (with machine and versions) under bench/results/.
bench: install
	$(BIN)/python bench/scripts/bench_distill.py
	$(BIN)/python bench/scripts/bench_export.py
	$(BIN)/python bench/scripts/bench_runtime.py
	$(BIN)/python bench/scripts/bench_ratio.py
	$(BIN)/python bench/scripts/bench_threads.py

bench-mnist: install
	bash bench/scripts/mnist.sh

# The distillation recipes on MNIST at equal wall-clock time (reuses runs/mnist/teacher64 if present).
bench-recipes: install
	test -f runs/mnist/teacher64/manifest.json || $(BIN)/edgegan train-teacher --dataset mnist --d 64 --steps 1500 \
	  --sample-every 500 --checkpoint-every 250 --out runs/mnist/teacher64
	$(BIN)/python bench/scripts/distill_recipes.py --teacher runs/mnist/teacher64

clean:
	rm -rf runs .pytest_cache
