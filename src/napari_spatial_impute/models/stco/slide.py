"""Region access to H&E slides of any size: numpy arrays, plain images (JPEG / PNG: decoded once, reduced by
PIL's DCT ``draft`` when patches are downsampled anyway) and tiled / pyramidal TIFF (tifffile; only the TIFF
tiles or strips under a requested region are read and decoded, so a 40k × 40k slide never sits in memory).

Every reader answers :meth:`Slide.read` (a region in full-resolution pixels, returned at ≈ 1/``reduce`` scale
from the finest pyramid level that is not finer than needed)
and :meth:`Slide.overview` (a small whole-slide image for the tissue mask). ``regions`` records the regions
requested (full-resolution (x0, y0, x1, y1)), so tests can check that reading stays local.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...errors import InputError
from .defaults import CONTEXT_CUT
from .pixels import as_rgb, block_mean, cut_with_context, full_intensity, image_size, load_rgb, value_range

TIFF_SUFFIXES = (".tif", ".tiff", ".svs", ".btf")
#: the extra that installs imagecodecs (compressed TIFF tiles), named in the error when it is missing
CODECS_EXTRA = "wsi"
#: pixel sizes a file may state that are taken as they are (µm/px); others are ignored with a warning
PIXEL_SIZE_NOTE = (0.05, 20.0)


def _white_window(get, h: int, w: int, sx: int, sy: int, ex: int, ey: int) -> np.ndarray:
    """Window [sy, ey) × [sx, ex) of an (h, w) image read through ``get(y0, y1, x0, x1)`` (in-bounds only),
    white outside."""
    out = np.full((max(0, ey - sy), max(0, ex - sx), 3), 255, np.uint8)
    a, b, c, d = max(0, sy), min(h, ey), max(0, sx), min(w, ex)
    if a < b and c < d:
        out[a - sy:b - sy, c - sx:d - sx] = get(a, b, c, d)
    return out


class Slide:
    """A whole-slide image: ``width`` / ``height`` in full-resolution pixels, ``pixel_size_um`` when the file
    states it. Subclasses give :meth:`factor_for` and :meth:`_window`."""

    width: int
    height: int
    pixel_size_um: float | None = None

    def __init__(self):
        self.regions: list[tuple[int, int, int, int]] = []

    def factor_for(self, reduce: int) -> float:
        """Full-res pixels per pixel of the image :meth:`read` returns for ``reduce``."""
        raise NotImplementedError

    def _window(self, sx: int, sy: int, ex: int, ey: int, reduce: int) -> np.ndarray:
        raise NotImplementedError

    def read(self, x0: float, y0: float, x1: float, y1: float, reduce: int = 1):
        """RGB uint8 covering full-res region [x0, x1) × [y0, y1) (white outside the slide) at ≈ 1/``reduce``
        scale. Returns (array, factor, (ox, oy)): full-res point p lies at array pixel p / factor − (ox, oy)."""
        self.regions.append((int(x0), int(y0), int(math.ceil(x1)), int(math.ceil(y1))))
        f = self.factor_for(reduce)
        sx, sy = int(math.floor(x0 / f)), int(math.floor(y0 / f))
        ex, ey = int(math.ceil(x1 / f)), int(math.ceil(y1 / f))
        return self._window(sx, sy, ex, ey, reduce), f, (sx, sy)

    def overview(self, max_side: int = 2048) -> tuple[np.ndarray, float]:
        """The whole slide reduced to ≤ ~``max_side`` pixels; (array, full-res pixels per array pixel)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (a no-op for slides that hold no file open)."""


class ArraySlide(Slide):
    """An RGB array at full resolution: numpy, or any lazily sliced array (dask, zarr), converted per read."""

    def __init__(self, arr, name: str = "image"):
        super().__init__()
        self.name = name
        self.arr = as_rgb(arr, name) if isinstance(arr, np.ndarray) else arr
        self.height, self.width = int(self.arr.shape[0]), int(self.arr.shape[1])
        self.hi = None  # a lazy array's full intensity, found once (each window alone would stretch differently)
        if np.dtype(self.arr.dtype) != np.uint8:
            step = max(1, math.ceil(max(self.width, self.height) / 2048))
            self.hi = value_range(np.asarray(self.arr[::step, ::step]))

    def factor_for(self, reduce):
        return float(reduce)

    def _window(self, sx, sy, ex, ey, reduce):
        r = int(reduce)
        h, w = math.ceil(self.height / r), math.ceil(self.width / r)
        return _white_window(lambda a, b, c, d: block_mean(as_rgb(np.asarray(self.arr[a * r:b * r, c * r:d * r]),
                                                                  self.name, self.hi), r), h, w, sx, sy, ex, ey)

    def overview(self, max_side=2048):
        step = max(1, math.ceil(max(self.width, self.height) / max_side))
        return as_rgb(np.asarray(self.arr[::step, ::step]), self.name, self.hi), float(step)


class DecodedSlide(Slide):
    """A JPEG / PNG / plain image decoded once, on first use, at ≈ 1/``reduce`` (JPEG DCT scaling)."""

    def __init__(self, path: Path, reduce: int = 1):
        super().__init__()
        self.path, self.reduce = Path(path), int(reduce)
        self.width, self.height = image_size(path)
        self._arr = None

    def set_reduce(self, reduce: int) -> None:
        """Decode at ≈ 1/``reduce`` (only before the first read)."""
        if self._arr is None:
            self.reduce = int(reduce)

    @property
    def arr(self) -> np.ndarray:
        if self._arr is None:
            self._arr, self.factor = load_rgb(self.path, self.reduce)
        return self._arr

    def factor_for(self, reduce):
        return self.width / self.arr.shape[1]

    def _window(self, sx, sy, ex, ey, reduce):
        h, w = self.arr.shape[:2]
        return _white_window(lambda a, b, c, d: self.arr[a:b, c:d], h, w, sx, sy, ex, ey)

    def overview(self, max_side=2048):
        step = max(1, math.ceil(max(self.arr.shape[:2]) / max_side))
        return self.arr[::step, ::step], self.factor * step


class TiffSlide(Slide):
    """A (tiled or stripped, optionally pyramidal) RGB TIFF read segment by segment with tifffile."""

    def __init__(self, path: Path):
        import tifffile

        super().__init__()
        self.path = Path(path)
        self.tif = tifffile.TiffFile(self.path)
        series = self.tif.series[0]
        self.levels = [lvl.keyframe for lvl in series.levels]
        base = self.levels[0]
        if base.samplesperpixel not in (1, 3, 4) or base.imagedepth > 1:
            raise InputError(f"{self.path.name}: TIFF pages of shape {base.shape} are not an RGB H&E.",
                             "give an RGB (brightfield) H&E TIFF.")
        self.height, self.width = base.imagelength, base.imagewidth
        self.pixel_size_um = tiff_pixel_size_um(self.tif)
        self._hi = None
        for page in self.levels:
            missing = missing_codec(page)
            if missing:
                self.tif.close()
                raise InputError(f"{self.path.name}: {missing} (the TIFF's tiles cannot be decoded).",
                                 f'install the TIFF codecs: pip install "napari-spatial-impute[{CODECS_EXTRA}]" '
                                 "(or pip install imagecodecs).")

    def close(self) -> None:
        self.tif.close()

    def _level(self, reduce: int):
        """The coarsest pyramid level at most ``reduce``× smaller than the base, its downsampling, and the
        extra integer step to reach ``reduce``."""
        best, fac = self.levels[0], 1.0
        for page in self.levels[1:]:
            f = self.width / page.imagewidth
            if fac < f <= reduce * 1.01:
                best, fac = page, f
        return best, fac, max(1, int(round(reduce / fac)))

    def factor_for(self, reduce):
        _, fac, step = self._level(reduce)
        return fac * step

    def _read_page(self, page, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Pixels [y0, y1) × [x0, x1) (inside ``page``) decoding only the TIFF tiles / strips under them."""
        out = np.empty((y1 - y0, x1 - x0, page.samplesperpixel), page.dtype)
        if page.is_tiled:
            th, tw = page.tilelength, page.tilewidth
        else:
            th, tw = page.rowsperstrip or page.imagelength, page.imagewidth
        per_row = math.ceil(page.imagewidth / tw)
        # planar-separate pages (PlanarConfiguration 2) store each colour's plane of segments after the other
        planes = page.samplesperpixel if int(page.planarconfig) == 2 else 1
        per_plane = per_row * math.ceil(page.imagelength / th)
        fh = self.tif.filehandle
        # built before seeking: for JPEG tiles, building the decoder reads the file (moves its position)
        decode, tables = page.decode, page.jpegtables
        for plane in range(planes):
            channels = slice(plane, plane + 1) if planes > 1 else slice(None)
            for ty in range(y0 // th, (y1 - 1) // th + 1):
                for tx in range(x0 // tw, (x1 - 1) // tw + 1):
                    index = plane * per_plane + ty * per_row + tx
                    sy, sx = ty * th, tx * tw
                    a, b, c, d = max(y0, sy), min(y1, sy + th), max(x0, sx), min(x1, sx + tw)
                    count = page.databytecounts[index]
                    if not count:
                        out[a - y0:b - y0, c - x0:d - x0, channels] = 255
                        continue
                    fh.seek(page.dataoffsets[index])
                    seg, _, shape = decode(fh.read(count), index, jpegtables=tables)
                    seg = np.asarray(seg).reshape(shape[-3], shape[-2], shape[-1])
                    out[a - y0:b - y0, c - x0:d - x0, channels] = seg[a - sy:b - sy, c - sx:d - sx]
        return out

    @property
    def hi(self) -> float:
        """The slide's full intensity, found once from its coarsest level (windows scaled alone would each be
        stretched by their own brightest pixel)."""
        if self._hi is None:
            page = self.levels[-1]
            if np.dtype(page.dtype) == np.uint8:
                self._hi = 255.0
            else:
                band = 1024
                m = max(float(np.nanmax(self._read_page(page, 0, y, page.imagewidth, min(y + band, page.imagelength))))
                        for y in range(0, page.imagelength, band))
                self._hi = full_intensity(m, np.dtype(page.dtype).kind in "iub")
        return self._hi

    def _window(self, sx, sy, ex, ey, reduce):
        page, _, step = self._level(reduce)
        h, w = math.ceil(page.imagelength / step), math.ceil(page.imagewidth / step)

        def get(a, b, c, d):
            arr = self._read_page(page, c * step, a * step, min(d * step, page.imagewidth),
                                  min(b * step, page.imagelength))
            return block_mean(as_rgb(arr, self.path.name, self.hi), step)

        return _white_window(get, h, w, sx, sy, ex, ey)

    def overview(self, max_side=2048):
        page = self.levels[-1]
        for lvl in self.levels:  # the finest level that fits, else the coarsest, streamed in bands
            if max(lvl.imagewidth, lvl.imagelength) <= max_side * 2:
                page = lvl
                break
        fac = self.width / page.imagewidth
        step = max(1, math.ceil(max(page.imagewidth, page.imagelength) / max_side))
        band = max(step, (2048 // step) * step)
        rows = [as_rgb(self._read_page(page, 0, y, page.imagewidth, min(y + band, page.imagelength)),
                       self.path.name, self.hi)[::step, ::step] for y in range(0, page.imagelength, band)]
        return np.concatenate(rows, axis=0), fac * step


def missing_codec(page) -> str | None:
    """Why tifffile cannot decode ``page``'s compression / predictor here (scanners write JPEG, JPEG 2000 or
    LZW tiles, which need imagecodecs), or None."""
    import tifffile

    try:
        if page.compression != 1:
            tifffile.TIFF.DECOMPRESSORS[page.compression]
        if page.predictor != 1:
            tifffile.TIFF.UNPREDICTORS[page.predictor]
    except KeyError as err:
        return str(err.args[0]) if err.args else repr(err)
    return None


def tiff_pixel_size_um(tif) -> float | None:
    """µm per pixel stated by a TIFF (OME PhysicalSizeX, else XResolution in cm / inch), or None."""
    import re

    page = tif.pages.first
    if tif.is_ome and tif.ome_metadata:
        m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tif.ome_metadata)
        if m:
            unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
            scale = LENGTH_UNITS_UM.get(unit.group(1).strip() if unit else "µm")
            if scale is not None:
                return float(m.group(1)) * scale
    try:
        unit = int(page.resolutionunit)
        xres = page.resolution[0]
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    if not xres:
        return None
    per_unit = {2: 25_400.0, 3: 10_000.0}.get(unit)  # inch, centimetre
    if per_unit is None and tif.is_imagej:  # Fiji: resolution in pixels per its calibration unit
        per_unit = LENGTH_UNITS_UM.get(str((tif.imagej_metadata or {}).get("unit", "")).strip())
    return per_unit / xres if per_unit else None


#: µm per unit of the length units TIFF metadata write (OME PhysicalSizeXUnit, ImageJ's calibration unit)
LENGTH_UNITS_UM = {"pm": 1e-6, "nm": 1e-3, "µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
                   "\\u00B5m": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


def open_slide(image, reduce: int = 1) -> Slide:
    """A :class:`Slide` for an RGB array, a TIFF (read lazily) or another image file (decoded at 1/``reduce``)."""
    if isinstance(image, Slide):
        return image
    if isinstance(image, np.ndarray):
        return ArraySlide(image)
    if type(image).__module__.startswith("PIL."):  # a PIL image: its pixels
        return ArraySlide(np.asarray(image if image.mode in ("L", "RGB", "RGBA") or image.mode.startswith("I")
                                     else image.convert("RGB")))
    if hasattr(image, "shape") and hasattr(image, "dtype") and hasattr(image, "__getitem__"):
        return ArraySlide(image)  # dask / zarr: read window by window
    if not isinstance(image, str | Path):
        raise InputError(f"The image is a {type(image).__name__}; expected an image file or an RGB array.",
                         "give a path (JPEG / PNG / TIFF), a numpy / dask / zarr array (height, width, 3) or a PIL "
                         "image.")
    path = Path(image)
    if not path.is_file():
        raise InputError(f"The image file {path} does not exist.", "check the path.")
    if path.name.lower().endswith(TIFF_SUFFIXES):
        try:
            return TiffSlide(path)
        except InputError:
            raise
        except Exception:  # noqa: BLE001  (a TIFF tifffile cannot read: let PIL try)
            pass
    return DecodedSlide(path, reduce)


def blocks_of(centres_xy: np.ndarray, block_px: float) -> list[np.ndarray]:
    """Indices of ``centres_xy`` grouped by square blocks of ``block_px`` (row-major over blocks)."""
    key = (centres_xy[:, 1] // block_px).astype(np.int64) * 1_000_000 + (centres_xy[:, 0] // block_px).astype(np.int64)
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(order, cuts)


def cut_patches(slide, centres_xy: np.ndarray, size_full: float, out_px: int, reduce: int,
                context: float = 0.0, context_cut: str = CONTEXT_CUT) -> np.ndarray:
    """Patches of ``size_full`` full-res pixels around ``centres_xy`` (one block), from one region read; with
    ``context`` the patches of ``context`` × ``size_full`` follow as channels 3–5 (:func:`~.pixels.cut_with_context`;
    for ``context_cut="box"`` the region has a margin of two reduction blocks plus the resampling support, so they
    equal those cut from the whole image)."""
    wide = size_full * max(1.0, context)
    half = wide / 2 + 1 + (2 * wide / out_px if context and context_cut == "box" else 0.0)
    x0, y0 = int(math.floor(centres_xy[:, 0].min() - half)), int(math.floor(centres_xy[:, 1].min() - half))
    x1, y1 = int(math.ceil(centres_xy[:, 0].max() + half)), int(math.ceil(centres_xy[:, 1].max() + half))
    region, factor, origin = slide.read(x0, y0, x1, y1, reduce)
    return cut_with_context(region, centres_xy / factor, size_full / factor, out_px, origin, context, context_cut)
