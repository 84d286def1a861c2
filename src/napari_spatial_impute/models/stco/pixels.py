"""Pixels of H&E images: RGB checks, decoding (optionally reduced), patch cropping and resizing. No other module of
this package is imported here (slides, patches and whole-slide prediction all build on it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import InputError


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


def check_rgb(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """An image array as RGB uint8 (H, W, 3): RGBA loses its alpha, greyscale is replicated (each with a warning)."""
    return as_rgb(arr, name)


def image_size(image) -> tuple[int, int]:
    """(width, height) of an image path or array, without decoding a file."""
    if isinstance(image, np.ndarray):
        return int(image.shape[1]), int(image.shape[0])
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(image) as im:
        return im.size


def load_rgb(image, reduce: int = 1) -> tuple[np.ndarray, float]:
    """Load an image path / array as RGB uint8, optionally reduced ~``reduce``×; returns (array, factor)
    where ``factor`` = full-resolution pixels per returned pixel."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    if isinstance(image, np.ndarray):
        arr = check_rgb(image)
        if reduce > 1:
            arr = arr[::reduce, ::reduce]
        return arr, float(reduce)
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
            arr = check_rgb(data, f"image {path.name}")
        else:
            arr = np.asarray(im.convert("RGB"))
    factor = full_w / arr.shape[1]
    if reduce > 1 and factor < reduce * 0.75:
        step = max(1, int(round(reduce / factor)))
        arr = arr[::step, ::step]
        factor = full_w / arr.shape[1]
    return np.ascontiguousarray(arr), float(factor)


def _resize(patch: np.ndarray, out_px: int) -> np.ndarray:
    if patch.shape[0] == out_px:
        return patch
    from PIL import Image

    return np.asarray(Image.fromarray(patch).resize((out_px, out_px), Image.BILINEAR))


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
