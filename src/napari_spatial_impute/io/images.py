"""Image files of instruments (OME-TIFF pyramids, TIFF, JPEG/PNG) opened lazily where the format allows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError


def ome_pixel_size_um(path: Path) -> float | None:
    """PhysicalSizeX (µm) from an OME-TIFF's metadata, or None."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tf:
            ome = tf.ome_metadata or ""
    except Exception:  # noqa: BLE001 - metadata is optional
        return None
    m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', ome)
    if not m:
        return None
    unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', ome)
    value = float(m.group(1))
    if unit and unit.group(1) in ("nm",):
        value /= 1000.0
    elif unit and unit.group(1) in ("mm",):
        value *= 1000.0
    return value if value > 0 else None


def tiff_axes_and_levels(path: Path) -> tuple[str, list[tuple[int, ...]]]:
    """Axes string (e.g. 'YX', 'CYX', 'YXS') and the shape of each pyramid level of the first series."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            return series.axes, [tuple(lv.shape) for lv in series.levels]
    except Exception as err:  # noqa: BLE001
        raise InputError(f"Could not open the image {path.name}: {type(err).__name__}: {err}",
                         "check that the file is a complete TIFF (copy it again).") from err


def open_tiff(path: Path):
    """Open a TIFF lazily: a zarr array, or a list of zarr arrays (pyramid, finest first).

    Falls back to reading the first series into memory when the zarr view is unavailable. Compressed
    instrument TIFFs (JPEG-2000, JPEG-XR) need ``imagecodecs``: the error says so.
    """
    import tifffile

    axes, shapes = tiff_axes_and_levels(path)
    try:
        import zarr

        store = tifffile.imread(path, aszarr=True)
        node = zarr.open(store, mode="r")
        if hasattr(node, "shape"):
            data = node
        else:
            keys = sorted(node.array_keys(), key=lambda k: int(k) if k.isdigit() else k)
            levels = [node[k] for k in keys]
            data = levels if len(levels) > 1 else levels[0]
        # touch one chunk so a missing codec fails here with a clear message
        first = data[0] if isinstance(data, list) else data
        _ = first[(0,) * (first.ndim - 2) + (slice(0, 1), slice(0, 1))]
    except ImportError:
        data = None
    except Exception as err:  # noqa: BLE001
        if "imagecodecs" in str(err) or "codec" in str(err).lower():
            raise InputError(f"The image {path.name} is compressed with a codec that needs the imagecodecs package.",
                             "pip install imagecodecs.") from err
        data = None
    if data is None:
        try:
            data = tifffile.imread(path)
        except Exception as err:  # noqa: BLE001
            if "imagecodecs" in str(err):
                raise InputError(f"The image {path.name} needs the imagecodecs package to decompress.",
                                 "pip install imagecodecs.") from err
            raise InputError(f"Could not read the image {path.name}: {type(err).__name__}: {err}",
                             "copy the file again.") from err
    return data, axes


def read_plain_image(path: Path) -> np.ndarray:
    """JPEG / PNG (or small TIFF) into memory as (rows, cols[, 3])."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            return tifffile.imread(path)
        except Exception as err:  # noqa: BLE001
            raise InputError(f"Could not read the image {path.name}: {type(err).__name__}: {err}",
                             "copy the file again.") from err
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # instrument mosaics are legitimately huge
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"Could not read the image {path.name}: {type(err).__name__}: {err}",
                         "check that the file is a complete image (copy it again).") from err


def geotiff_origin(path: Path) -> tuple[float, float, float, float] | None:
    """(x0, y0, sx, sy) from GeoTIFF tags (ModelTiepoint / ModelPixelScale) when present: pixel corner (0, 0) is
    at model (x0, y0); model y decreases by ``sy`` per row (GeoTIFF convention)."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tf:
            tags = tf.pages[0].tags
            tie = tags.get("ModelTiepointTag")
            scale = tags.get("ModelPixelScaleTag")
            if tie is None:
                return None
            t = tie.value
            s = scale.value if scale is not None else (1.0, 1.0, 0.0)
            return float(t[3] - t[0] * s[0]), float(t[4] + t[1] * s[1]), float(s[0]), float(s[1])
    except Exception:  # noqa: BLE001 - optional metadata
        return None


def gdal_aux_geotransform(path: Path) -> tuple[float, float, float, float, float, float] | None:
    """GDAL GeoTransform (x0, dx/dcol, dx/drow, y0, dy/dcol, dy/drow) from a ``<image>.aux.xml`` sidecar."""
    aux = path.with_name(path.name + ".aux.xml")
    if not aux.exists():
        return None
    m = re.search(r"<GeoTransform>([^<]+)</GeoTransform>", aux.read_text(errors="replace"))
    if not m:
        return None
    try:
        vals = tuple(float(v) for v in m.group(1).replace(",", " ").split())
    except ValueError:
        return None
    return vals if len(vals) == 6 else None
