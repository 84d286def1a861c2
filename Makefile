# Two commands do all set-up on a fresh machine: `make test` and `make demo`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 1
METHOD ?= knn
export MKL_NUM_THREADS ?= 1

.PHONY: test demo install lint benchmark docs clean xvfb

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# CPU torch first, so no multi-GB CUDA build is pulled in by the project's torch requirement
	$(BIN)/python -m pip install torch==2.13.0

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

install: $(VENV)/.installed

xvfb:
	@if ! command -v Xvfb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
	      libxkbcommon-x11-0 libxcb-xinerama0 libxcb-cursor0 libgl1 libegl1 || \
	     (apt-get update && apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
	      libxcb-render-util0 libxkbcommon-x11-0 libxcb-xinerama0 libxcb-cursor0 libgl1 libegl1)); \
	  else echo "Xvfb missing: install it (apt-get install xvfb) to run the napari tests"; fi; \
	fi

test: install xvfb
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/npe2 validate napari-spatial-impute
	$(BIN)/python -m pytest -q

# With a display: opens napari with the plugin docked. Without one (or HEADLESS=1): writes demo-output/.
demo: install
	@if [ -n "$$DISPLAY" ] && [ "$$HEADLESS" != "1" ]; then \
	  $(BIN)/python scripts/demo.py --method $(METHOD) --out demo-output; \
	else \
	  $(MAKE) --no-print-directory xvfb && \
	  xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python scripts/demo.py --headless --method $(METHOD) --out demo-output; \
	fi

lint: install
	$(BIN)/ruff check src tests benchmarks scripts

benchmark: install
	$(BIN)/python benchmarks/run_all.py

docs: install xvfb
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python scripts/make_screenshots.py
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python scripts/screenshot_formats.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
