# Two commands do all set-up on a fresh machine: `make test` and `make demo`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
METHOD ?= knn
UNAME := $(shell uname -s)

# PyTorch: which release (TORCH) and from which index (TORCH_INDEX), installed before the project so that
# the project's `torch>=2.13` requirement is already met. Linux default: the CPU build from PyTorch's CPU
# index (no multi-GB CUDA download; this machine's CI takes the same release from its local wheel store).
#   CUDA 12.8 (Linux/Windows):   make test TORCH_INDEX=https://download.pytorch.org/whl/cu128
#   PyPI's default build:        make test TORCH_INDEX=     (CUDA build on Linux x86_64, CPU+MPS on macOS)
#   macOS (Apple silicon):       nothing to set: PyPI's macOS wheels are CPU + MPS (Metal)
TORCH ?= torch==2.13.0
ifeq ($(UNAME),Darwin)
TORCH_INDEX ?=
else
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
endif
# the torch wheel alone from TORCH_INDEX, then its dependencies from PyPI (the CPU index may not mirror them)
define install_torch
	$(1) -m pip install $(PIP_FLAGS) --no-deps --retries 1 --timeout 30 $(if $(strip $(TORCH_INDEX)),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(1) -m pip install $(PIP_FLAGS) "$(TORCH)"
endef
# pip compiles every file of every package it installs (≈ 100 s of the install here: 170 → 67 s without); Python
# compiles what is imported instead, once, on first import (a shell's PYTHONDONTWRITEBYTECODE would make that every
# time, so make's commands write bytecode into the venv); the first import of the main packages is paid at install
PIP_FLAGS ?= --no-compile
unexport PYTHONDONTWRITEBYTECODE
WARM_IMPORTS := import torch, scipy, sklearn, anndata, scanpy, skimage, napari, magicgui, distributed, napari_spatial_impute
export TORCH TORCH_INDEX

XVFB_RUN := xvfb-run -a -s "-screen 0 1600x1000x24"

.PHONY: test demo install lint benchmark docs docs-site wheel-check clean xvfb

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(call install_torch,$(BIN)/python)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[test]"
	$(BIN)/python -c "$(WARM_IMPORTS)"
	touch $@

$(VENV)/.docs-installed: $(VENV)/.installed
	$(BIN)/python -m pip install -e ".[test,docs]"
	touch $@

install: $(VENV)/.installed

# Xvfb (a virtual display) for the napari tests on a Linux server; nothing to do on macOS or with Xvfb present.
xvfb:
	@if [ "$(UNAME)" != "Linux" ]; then exit 0; fi; \
	if ! command -v Xvfb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
	      libxkbcommon-x11-0 libxcb-xinerama0 libxcb-cursor0 libgl1 libegl1 || \
	     (apt-get update && apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
	      libxcb-render-util0 libxkbcommon-x11-0 libxcb-xinerama0 libxcb-cursor0 libgl1 libegl1)); \
	  else echo "Xvfb missing: install it (sudo apt-get install xvfb) to run the napari tests headless"; fi; \
	fi

test: install xvfb
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/npe2 validate napari-spatial-impute
	$(BIN)/python -m pytest -q

# With a display (Linux with DISPLAY, macOS, Windows): opens napari with the plugin docked.
# Headless (HEADLESS=1, or Linux without DISPLAY): writes demo-output/ (screenshot.png, imputed.h5ad,
# metrics.json), under xvfb-run where it exists (Linux), else on Qt's native (macOS) or offscreen platform.
demo: install
	@if [ "$$HEADLESS" != "1" ] && { [ -n "$$DISPLAY" ] || [ "$(UNAME)" != "Linux" ]; }; then \
	  $(BIN)/python scripts/demo.py --method $(METHOD) --out demo-output; \
	elif [ "$(UNAME)" = "Linux" ] && { command -v xvfb-run >/dev/null 2>&1 || $(MAKE) --no-print-directory xvfb; } \
	     && command -v xvfb-run >/dev/null 2>&1; then \
	  $(XVFB_RUN) $(BIN)/python scripts/demo.py --headless --method $(METHOD) --out demo-output; \
	elif [ "$(UNAME)" = "Linux" ]; then \
	  echo "no xvfb-run: trying Qt's offscreen platform"; \
	  QT_QPA_PLATFORM=offscreen $(BIN)/python scripts/demo.py --headless --method $(METHOD) --out demo-output; \
	else \
	  $(BIN)/python scripts/demo.py --headless --method $(METHOD) --out demo-output; \
	fi

lint: install
	$(BIN)/ruff check src tests benchmarks scripts

benchmark: install
	$(BIN)/python benchmarks/run_all.py

# Screenshots in docs/images (bundled / shared data), made by the repo's scripts.
docs: install xvfb
	$(if $(filter Linux,$(UNAME)),$(XVFB_RUN)) $(BIN)/python scripts/make_screenshots.py
	$(if $(filter Linux,$(UNAME)),$(XVFB_RUN)) $(BIN)/python scripts/screenshot_formats.py

# The documentation site (mkdocs + mkdocstrings API reference) in site/, warnings as errors, links checked.
# docs/api.md is regenerated from the package's public names first (commit it when it changes); CI passes
# API_DOCS=--check instead, so a stale committed page fails the build rather than being rewritten there.
API_DOCS ?=
docs-site: $(VENV)/.docs-installed
	$(BIN)/python scripts/gen_api_docs.py $(API_DOCS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/python scripts/check_site_links.py site

# The package as a user installs it: sdist + wheel, fresh venvs without the source tree (see .ci/wheel_job.sh).
wheel-check:
	PY=$(PY) bash .ci/wheel_job.sh

clean:
	rm -rf $(VENV) demo-output .pytest_cache site dist
