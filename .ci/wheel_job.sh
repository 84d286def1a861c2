#!/usr/bin/env bash
# Wheel job: the package as a user installs it, without the source tree on the path.
#  1. sdist + wheel with `python -m build` (the wheel is built from the sdist, so the sdist is complete);
#  2. core: fresh venv, CPU torch first, the wheel without extras; napari / Qt / magicgui / npe2 / fair-esm absent;
#     the CLI on the bundled samples found through importlib.resources; the FASTA path names the [esm] extra;
#  3. floors: fresh venv, the wheel with .ci/minimum-versions.txt (the core's lower bounds, exactly), core tests;
#  4. [all]: a third fresh venv with the wheel's [all] extra; `npe2 validate`; a headless widget smoke test;
#  5. [spatialdata]: that extra added to the core venv after its checks; the SpatialData tests on the real library.
# Prints sizes (du of site-packages) and package counts of core and [all], and each step's time.
# Phases: `prepare` builds and installs (downloads and unpacking, little CPU: .ci/run runs it beside `make test`),
# `check` runs the checks in the prepared venvs (after the main suite, so timing tests never share the cores);
# no argument = both. The source is copied first (git-tracked and untracked files, no .venv / build output), so
# a `pip install -e .` in the tree at the same time cannot race the build.
# Env: PY (python for the venvs), TORCH / TORCH_INDEX (as in the Makefile), WHEEL_JOB_DIR (work folder, /tmp;
# give the same one to both phases; without it, a new folder, removed at the end of a run of both phases unless
# KEEP_WHEEL_JOB=1).
set -euo pipefail
PHASE=${1:-all}
case "$PHASE" in prepare|check|all) ;; *) echo "usage: $0 [prepare|check]"; exit 2 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-python3}
TORCH=${TORCH:-torch==2.13.0}
if [ -z "${TORCH_INDEX+x}" ]; then
  if [ "$(uname -s)" = "Linux" ]; then TORCH_INDEX=https://download.pytorch.org/whl/cpu; else TORCH_INDEX=; fi
fi
WORK=${WHEEL_JOB_DIR:-}
if [ -z "$WORK" ]; then  # a folder of its own: removed on exit when both phases run here (~6 GB of venvs)
  WORK=$(mktemp -d /tmp/nsi-wheel-job.XXXXXX)
  if [ "$PHASE" = all ] && [ -z "${KEEP_WHEEL_JOB:-}" ]; then trap 'rm -rf "$WORK"' EXIT; fi
fi
mkdir -p "$WORK"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH
T0=$(date +%s); LAST=$T0
step() { local now; now=$(date +%s); echo "--- [wheel job +$((now - T0))s, previous step $((now - LAST))s] $*"; LAST=$now; }
# run quietly; on failure show the log (without pip's warnings about this machine's missing local indexes)
quiet() {
  local log="$WORK/last.log"
  if ! "$@" >"$log" 2>&1; then grep -v "is ignored: it is neither" "$log" | tail -60; echo "FAILED: $*"; return 1; fi
}
install_torch() {  # $1 = venv python; the torch wheel from TORCH_INDEX, then its dependencies from PyPI
  quiet "$1" -m pip install --no-deps --retries 1 --timeout 30 ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH"
  quiet "$1" -m pip install "$TORCH"
}
site_size() {  # $1 = venv python -> "N MB, M packages"
  local sp; sp=$("$1" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$(du -sm "$sp" | cut -f1) MB, $("$1" -m pip list --format=freeze --exclude pip 2>/dev/null | wc -l) packages"
}

C="$WORK/core/bin/python"
F="$WORK/floor/bin/python"
A="$WORK/all/bin/python"

prepare() {
step "1. build sdist + wheel from a copy of $ROOT into $WORK/dist"
rm -rf "$WORK/dist" "$WORK/build-env" "$WORK/src"
mkdir -p "$WORK/src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then  # tracked + untracked, not ignored
  (cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - --ignore-failed-read -cf -) | tar -xf - -C "$WORK/src"
else
  (cd "$ROOT" && tar --exclude=./.venv --exclude=./build --exclude=./dist -cf - .) | tar -xf - -C "$WORK/src"
fi
"$PY" -m venv "$WORK/build-env"
quiet "$WORK/build-env/bin/python" -m pip install "build>=1.2"
quiet "$WORK/build-env/bin/python" -m build --outdir "$WORK/dist" "$WORK/src"
WHEEL=$(ls "$WORK"/dist/napari_spatial_impute-*.whl)
SDIST=$(ls "$WORK"/dist/napari_spatial_impute-*.tar.gz)
ls -l "$WORK/dist"
"$WORK/build-env/bin/python" - "$WHEEL" "$SDIST" <<'PY'
import sys, tarfile, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["napari_spatial_impute/napari.yaml", "napari_spatial_impute/data/osmfish_allenssp/spatial.h5ad",
        "napari_spatial_impute/data/osmfish_allenssp/reference.h5ad"]
missing = [n for n in need if n not in names]
assert not missing, f"wheel lacks {missing}"
assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))], "wheel ships non-package files"
meta = zipfile.ZipFile(sys.argv[1]).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
core = [r for r in requires if "extra ==" not in r]
for banned in ("napari", "magicgui", "qtpy", "npe2", "pyqt6", "torch-geometric", "torch_geometric", "fair-esm"):
    assert not [r for r in core if r.split(":", 1)[1].strip().lower().startswith(banned)], f"core requires {banned}"
sdist = tarfile.open(sys.argv[2]).getnames()
assert any(n.endswith("/tests/conftest.py") or n.endswith("/pyproject.toml") for n in sdist)
print(f"wheel: {len(names)} files, {len(core)} core requirements; sdist: {len(sdist)} files")
PY

step "2. core: fresh venv, $TORCH (index: ${TORCH_INDEX:-PyPI}), then the wheel without extras"
rm -rf "$WORK/core"
"$PY" -m venv "$WORK/core"
quiet "$C" -m pip install --upgrade pip
t=$(date +%s); install_torch "$C"; quiet "$C" -m pip install "$WHEEL"
echo "core install: $(($(date +%s) - t)) s"
quiet "$C" -m pip check
site_size "$C" > "$WORK/core.size"; echo "core: $(cat "$WORK/core.size")"

step "3a. floors: fresh venv, the wheel with the core's lower bounds pinned (.ci/minimum-versions.txt)"
rm -rf "$WORK/floor"
"$PY" -m venv "$WORK/floor"
quiet "$F" -m pip install --upgrade pip
install_torch "$F"
# PIP_CONSTRAINT replaces the machine's constraint file, whose torch cap the floors respect anyway
t=$(date +%s)
PIP_CONSTRAINT="$ROOT/.ci/minimum-versions.txt" quiet "$F" -m pip install "$WHEEL" "pytest>=8"
echo "floors install: $(($(date +%s) - t)) s"

step "4a. [all]: fresh venv, $TORCH, then the wheel's [all] extra"
rm -rf "$WORK/all"
"$PY" -m venv "$WORK/all"
quiet "$A" -m pip install --upgrade pip
install_torch "$A"
t=$(date +%s); quiet "$A" -m pip install "${WHEEL}[all]"; echo "[all] install: $(($(date +%s) - t)) s"
quiet "$A" -m pip check
site_size "$A" > "$WORK/all.size"; echo "[all]: $(cat "$WORK/all.size")"
step "prepared"
}

check() {
step "2b. core: the public API, the CLI on the bundled samples"
cd "$WORK"   # not the source tree: only the installed package is importable
"$C" "$ROOT/.ci/wheel_smoke.py" core
SAMPLES=$("$C" -c "from importlib.resources import files; print(files('napari_spatial_impute') / 'data')")
rm -f "$WORK/osmfish_cv.json" "$WORK/xenium_imputed.h5ad"
"$WORK/core/bin/napari-spatial-impute" --help >/dev/null
"$WORK/core/bin/napari-spatial-impute" impute "$SAMPLES/osmfish_allenssp/spatial.h5ad" \
    "$SAMPLES/osmfish_allenssp/reference.h5ad" --method knn --cv 3 --metrics "$WORK/osmfish_cv.json" --quiet
if [ -f "$SAMPLES/xenium_mouse_brain/spatial.h5ad" ]; then
  rm -f "$WORK/xenium_imputed.h5ad"
  "$WORK/core/bin/napari-spatial-impute" impute "$SAMPLES/xenium_mouse_brain/spatial.h5ad" \
      "$SAMPLES/xenium_mouse_brain/reference.h5ad" --method knn --out "$WORK/xenium_imputed.h5ad" --quiet
fi
"$C" "$ROOT/.ci/wheel_smoke.py" check-outputs "$WORK"

step "3b. floors: the pinned versions, then the core tests"
rm -rf "$WORK/floor-tests"
"$F" -m pip list --format=freeze 2>/dev/null | grep -iE "^(numpy|scipy|pandas|scikit-learn|anndata|scanpy|h5py|pyarrow|matplotlib|scikit-image|tifffile|pillow|igraph|torch)=="
"$F" - "$ROOT/.ci/minimum-versions.txt" <<'PY'
import sys
from importlib.metadata import version
pins = [line.split("==") for line in open(sys.argv[1]) if "==" in line and not line.startswith("#")]
bad = [(n, v.strip(), version(n)) for n, v in pins if version(n).split("+")[0] != v.strip()]
assert not bad, f"floors not installed as pinned: {bad}"
print(f"{len(pins)} floors installed exactly")
PY
mkdir -p "$WORK/floor-tests"
cp -r "$ROOT/tests" "$WORK/floor-tests/tests"
# the real datasets beside the copied tests, where the tests look for them (../shared), when CI has them
rm -f "$WORK/shared"
if [ -d "$ROOT/../shared/datasets" ]; then ln -s "$(cd "$ROOT/../shared" && pwd)" "$WORK/shared"; fi
cd "$WORK/floor-tests"
"$F" -m pytest -q -p no:cacheprovider tests/test_knn.py tests/test_stimpute.py tests/test_metrics.py \
    tests/test_preprocessing.py tests/test_cli.py tests/test_readers_xenium.py tests/test_readers_anndata.py \
    tests/test_reference_layouts.py tests/test_impute_real_references.py tests/test_results_zarr.py \
    --deselect tests/test_stimpute.py::test_unreadable_checkpoint_is_a_clear_error \
    --deselect tests/test_stimpute.py::test_cv_on_osmfish_above_floor \
    --deselect tests/test_stimpute.py::test_expected_r_tracks_true_pcc_on_held_out_genes \
    --deselect tests/test_stimpute.py::test_output_on_the_truth_scale
# deselected: the first needs [esm] (step 2 checks the hint); the other three share one stImpute cross-validation
# on the same torch (the main suite runs them), the floors' slowest fixture
cd "$WORK"

step "4b. [all]: npe2 validate; headless widget smoke test"
"$WORK/all/bin/npe2" validate napari-spatial-impute
if [ "$(uname -s)" = "Linux" ] && [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
  xvfb-run -a -s "-screen 0 1600x1000x24" "$A" "$ROOT/.ci/wheel_smoke.py" widget
else
  "$A" "$ROOT/.ci/wheel_smoke.py" widget
fi
# spatialdata pins dask below the [dask] extra's floor, so it is never in [all]: the core venv (checked above) takes it
step "5. [spatialdata]: the extra added to the core venv; the SpatialData tests against the real library"
t=$(date +%s)
quiet "$C" -m pip install "$(ls "$WORK"/dist/napari_spatial_impute-*.whl)[spatialdata]" "pytest>=8"
echo "[spatialdata] install: $(($(date +%s) - t)) s; $("$C" -m pip list --format=freeze 2>/dev/null | grep -iE '^(spatialdata|dask)==' | tr '\n' ' ')"
cd "$WORK/floor-tests"
"$C" -c "import spatialdata"  # installed: the tests below run instead of skipping
"$C" -m pytest -q -p no:cacheprovider -W ignore::UserWarning tests/test_readers_anndata.py -k spatialdata
cd "$WORK"
step "done"
echo "SIZES core: $(cat "$WORK/core.size") | [all]: $(cat "$WORK/all.size")"
}

if [ "$PHASE" != check ]; then prepare; fi
if [ "$PHASE" != prepare ]; then check; fi
echo "wheel job ($PHASE): $(($(date +%s) - T0)) s"
