"""Pixels of H&E images: RGB checks, decoding (optionally reduced), patch cropping and resizing. No other module of
this package is imported here (slides, patches and whole-slide prediction all build on it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import InputError
from .defaults import CONTEXT_CUT


def value_range(arr) -> float:
    """The value that stands for full intensity in ``arr``: 255 for uint8; for other integers the smallest usual
    bit depth holding its maximum (8, 10, 12, 14, 16 bits: a 12-bit scan stored as uint16 is not stretched by
    its brightest pixel); for floats 1 when the maximum is at most 1.5 (values in [0, 1], a little overshoot
    from colour correction clipped), else 255 when at most 1.5 × 255, else the maximum."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8 or arr.size == 0:
        return 255.0
    return full_intensity(float(np.nanmax(arr)), arr.dtype.kind in "iub")


def full_intensity(m: float, integer: bool) -> float:
    """:func:`value_range` from an image's maximum ``m`` (and whether its values are integers)."""
    if integer:
        return float(next((2 ** b - 1 for b in (8, 10, 12, 14, 16) if m <= 2 ** b - 1), max(m, 1.0)))
    return 1.0 if m <= 1.5 else (255.0 if m <= 1.5 * 255 else m)


def as_rgb(arr: np.ndarray, name: str = "image", hi: float | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) from RGB, RGBA (composited onto white: transparent = background) or greyscale
    (replicated), each with a warning for the conversions; values scaled from ``hi`` (full intensity; default
    :func:`value_range` of ``arr``). Other shapes raise :class:`InputError`."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (1, 2, 3, 4):
        raise InputError(f"The {name} has shape {arr.shape}: channels first.",
                         "give it as (height, width, 3): np.moveaxis(image, 0, -1).")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 2)):
        warnings.warn(f"The {name} is greyscale; it is converted to RGB (grey H&E loses the stain colours the "
                      "model relies on: expect weaker predictions).", stacklevel=3)
        arr = np.repeat(arr[..., :1] if arr.ndim == 3 else arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise InputError(f"The {name} has shape {arr.shape}; expected (height, width, 3) RGB.",
                         "give a 2-D colour H&E image.")
    if arr.dtype != np.uint8:
        a = np.nan_to_num(arr.astype(np.float32), nan=0.0)
        arr = np.clip(a * (255.0 / (value_range(arr) if hi is None else hi)), 0, 255).round().astype(np.uint8)
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:].astype(np.float32) / 255.0
        if alpha.max() == 0:
            raise InputError(f"The {name} is RGBA and fully transparent.", "export the H&E as RGB.")
        if alpha.min() < 1.0:
            warnings.warn(f"The {name} is RGBA; its transparent pixels are read as white background.",
                          stacklevel=3)
            arr = (arr[..., :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
        else:
            arr = arr[..., :3]
    return arr


def image_size(image) -> tuple[int, int]:
    """(width, height) of an image path or array, without decoding a file."""
    if isinstance(image, np.ndarray):
        return int(image.shape[1]), int(image.shape[0])
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(image) as im:
            return im.size
    except Exception as err:  # noqa: BLE001
        raise InputError(f"Could not open {Path(image).name} as an image: {err}",
                         "give a JPEG/PNG/TIFF H&E image.") from err


def block_mean(arr: np.ndarray, k: int) -> np.ndarray:
    """RGB uint8 ``arr`` reduced ``k``× by averaging k × k blocks (edge blocks: the pixels they hold), as a JPEG's
    DCT ``draft`` reduces: every reader hands the model the same kind of pixels (taking every k-th pixel
    instead would alias fine texture)."""
    if k <= 1:
        return arr
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).reduce(int(k)))


def load_rgb(image, reduce: int = 1) -> tuple[np.ndarray, float]:
    """Load an image path / array as RGB uint8, optionally reduced ~``reduce``×; returns (array, factor)
    where ``factor`` = full-resolution pixels per returned pixel."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    if isinstance(image, np.ndarray):
        return block_mean(as_rgb(image), reduce), float(reduce)
    path = Path(image)
    if not path.is_file():
        raise InputError(f"The image file {path} does not exist.", "check the path.")
    try:
        im = Image.open(path)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"Could not open {path} as an image: {err}", "give a JPEG/PNG/TIFF H&E image.") from err
    with im:
        full_w = im.size[0]
        if reduce > 1 and im.format == "JPEG":
            im.draft(im.mode if im.mode in ("L", "RGB") else "RGB", (im.size[0] // reduce, im.size[1] // reduce))
        if im.mode in ("L", "I", "F", "LA", "RGBA") or im.mode.startswith("I;16"):
            arr = as_rgb(np.asarray(im), f"image {path.name}")  # 16-bit / float values scaled by their range
        elif im.mode == "1":
            arr = as_rgb(np.asarray(im.convert("L")), f"image {path.name}")
        else:
            arr = np.asarray(im.convert("RGB"))
    factor = full_w / arr.shape[1]
    if reduce > 1 and factor < reduce * 0.75:
        arr = block_mean(arr, max(1, int(round(reduce / factor))))  # a PNG / TIFF: no DCT scaling
        factor = full_w / arr.shape[1]
    return np.ascontiguousarray(arr), float(factor)


def _resize(patch: np.ndarray, out_px: int) -> np.ndarray:
    if patch.shape[0] == out_px:
        return patch
    from PIL import Image

    return np.asarray(Image.fromarray(patch).resize((out_px, out_px), Image.BILINEAR))


def reduce_for(size_px: float, out_px: int) -> int:
    """The largest power of 2 by which a crop of ``size_px`` pixels can be reduced and keep ≥ ``out_px``."""
    reduce = 1
    while reduce * 2 <= size_px / out_px:
        reduce *= 2
    return reduce


def box_reduce(arr: np.ndarray, k: int, origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, tuple[int, int]]:
    """``arr`` (a window of an image starting at integer pixel ``origin`` (x, y)) averaged over k × k blocks
    aligned with the whole image's (blocks at multiples of ``k``; their parts outside the window white), and the
    reduced window's origin. Windows of one image give the reduced image's pixels wherever they hold whole blocks."""
    if k == 1:
        return arr, (int(origin[0]), int(origin[1]))
    from PIL import Image

    ox, oy = int(origin[0]), int(origin[1])
    px, py = ox % k, oy % k
    h, w = arr.shape[:2]
    hh, ww = -(-(h + py) // k) * k, -(-(w + px) // k) * k
    if (px, py, hh, ww) != (0, 0, h, w):
        canvas = np.full((hh, ww, 3), 255, np.uint8)
        canvas[py:py + h, px:px + w] = arr
        arr = canvas
    return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).reduce(k)), ((ox - px) // k, (oy - py) // k)


def cut_with_context(arr: np.ndarray, centres_xy: np.ndarray, size_px: float, out_px: int,
                     origin: tuple[int, int] = (0, 0), context: float = 0.0,
                     context_cut: str = CONTEXT_CUT) -> np.ndarray:
    """:func:`crop_patches`; with ``context`` the crops of ``context`` × ``size_px`` around the same points follow
    as channels 3–5. ``context_cut="box"``: those are resampled from ``arr`` box-reduced by the largest power of 2
    that keeps them ≥ ``CONTEXT_GAP`` × ``out_px`` (:func:`box_reduce`), over the same full-resolution square
    (sub-pixel exact); neighbouring context crops overlap many times, so one reduction of the window replaces
    most of the work of resizing each large crop. "resize": each crop resized alone (bundles from before)."""
    out = crop_patches(arr, centres_xy, size_px, out_px, origin)
    if not context:
        return out
    wide_px = size_px * context
    if context_cut != "box":
        return np.concatenate([out, crop_patches(arr, centres_xy, wide_px, out_px, origin)], axis=-1)
    return np.concatenate([out, _crop_reduced(arr, centres_xy, wide_px, out_px, origin)], axis=-1)


#: box reduction of context crops leaves them ≥ this × the output size (then resampled bilinearly): PIL's own
#: ``reducing_gap`` idea. 1 (reduce down to ≥ out_px) gives contexts 1.1 grey levels from each crop resized alone,
#: 2 gives 0.35 at ≈ twice its cost; both −0.002 within her2st C2–C5 (histology_generalisation.md §0000000)
CONTEXT_GAP = 2


def _crop_reduced(arr: np.ndarray, centres_xy: np.ndarray, size_px: float, out_px: int,
                  origin: tuple[int, int]) -> np.ndarray:
    """:func:`crop_patches`' squares (same full-resolution corners, white outside ``arr``), resampled from ``arr``
    box-reduced by k (a power of 2 keeping ≥ ``CONTEXT_GAP`` × ``out_px`` pixels per square; bilinear with PIL's
    ``box``)."""
    from PIL import Image

    k = reduce_for(size_px, CONTEXT_GAP * out_px)
    n = max(1, int(round(size_px)))
    small, (sx, sy) = box_reduce(arr, k, origin)
    pad = int(np.ceil(n / k)) + 2  # white around: squares leaving the window read white, as crop_patches' do
    canvas = np.full((small.shape[0] + 2 * pad, small.shape[1] + 2 * pad, 3), 255, np.uint8)
    canvas[pad:pad + small.shape[0], pad:pad + small.shape[1]] = small
    im = Image.fromarray(canvas)
    ax, ay = sx - pad, sy - pad  # the canvas's origin in reduced pixels of the whole image
    out = np.empty((len(centres_xy), out_px, out_px, 3), np.uint8)
    for i, (x, y) in enumerate(np.asarray(centres_xy, dtype=np.float64)):
        x0, y0 = int(round(x - size_px / 2.0)), int(round(y - size_px / 2.0))  # full-res corner, as crop_patches
        box = (x0 / k - ax, y0 / k - ay, (x0 + n) / k - ax, (y0 + n) / k - ay)
        out[i] = np.asarray(im.resize((out_px, out_px), Image.BILINEAR, box=box))
    return out


def crop_patches(arr: np.ndarray, centres_xy: np.ndarray, size_px: float, out_px: int,
                 origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Square crops of ``size_px`` pixels centred on (x, y) points, resized to ``out_px``; parts outside
    ``arr`` are white. ``arr`` is the window of an image starting at integer pixel ``origin`` (x, y), the
    points are in that image's pixels, so a crop from a window equals the crop from the whole image."""
    h, w = arr.shape[:2]
    half = size_px / 2.0
    n_side = max(1, int(round(size_px)))
    out = np.empty((len(centres_xy), out_px, out_px, 3), np.uint8)
    ox, oy = int(origin[0]), int(origin[1])
    for i, (x, y) in enumerate(np.asarray(centres_xy, dtype=np.float64)):
        x0, y0 = int(round(x - half)) - ox, int(round(y - half)) - oy
        if x0 >= 0 and y0 >= 0 and x0 + n_side <= w and y0 + n_side <= h:  # inside: no white canvas needed
            out[i] = _resize(arr[y0:y0 + n_side, x0:x0 + n_side], out_px)
            continue
        patch = np.full((n_side, n_side, 3), 255, np.uint8)
        sx0, sy0 = max(0, x0), max(0, y0)
        sx1, sy1 = min(w, x0 + n_side), min(h, y0 + n_side)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = arr[sy0:sy1, sx0:sx1]
        out[i] = _resize(patch, out_px)
    return out
