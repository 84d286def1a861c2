"""Pixels of H&E images: RGB checks, decoding (optionally reduced), patch cropping and resizing. No other module of
this package is imported here (slides, patches and whole-slide prediction all build on it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import InputError
from .defaults import CONTEXT_CUT


def as_rgb(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """RGB uint8 (H, W, 3) from RGB, RGBA (alpha dropped) or greyscale (replicated), each with a warning
    for the conversions; other shapes raise :class:`InputError`."""
    arr = np.asarray(arr)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 2)):
        warnings.warn(f"The {name} is greyscale; it is converted to RGB (grey H&E loses the stain colours the "
                      "model relies on: expect weaker predictions).", stacklevel=3)
        arr = np.repeat(arr[..., :1] if arr.ndim == 3 else arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise InputError(f"The {name} has shape {arr.shape}; expected (height, width, 3) RGB.",
                         "give a 2-D colour H&E image.")
    if arr.shape[-1] == 4:
        alpha = arr[..., 3]
        if alpha.min() < alpha.max() * 0.99 and np.mean(alpha < alpha.max()) > 0.5:
            raise InputError(f"The {name} is RGBA and mostly transparent.", "export the H&E as RGB.")
        warnings.warn(f"The {name} is RGBA; the alpha channel is ignored.", stacklevel=3)
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        a = arr.astype(np.float32)
        hi = 1.0 if a.max() <= 1.0 else (255.0 if a.max() <= 255 else float(a.max()))
        arr = np.clip(a / hi * 255.0, 0, 255).astype(np.uint8)
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
        if im.mode in ("L", "I", "I;16", "F", "1", "LA", "RGBA"):
            grey = im.mode not in ("RGBA",)
            data = np.asarray(im.convert("L") if grey and im.mode != "L" else im)
            arr = as_rgb(data, f"image {path.name}")
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
