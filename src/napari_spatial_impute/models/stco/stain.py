"""Stain normalisation and stain augmentation of H&E patches (numpy + PIL; no torch).

**Normalisation (Macenko et al. 2009)**, applied identically at training and prediction time: the two stain
vectors (haematoxylin, eosin) of an image are estimated in optical-density (OD) space from the angular extremes
of its tissue pixels projected on their principal plane, and the 99th percentile of each stain's concentration
gives its intensity. Every pixel's concentrations are then rescaled to the reference intensities and re-coloured
with the reference stain vectors. The reference is Macenko's published one (kept in the model bundle), so a
training section's normalised patches — and their cached backbone features — do not depend on which other
sections it is trained with. Each section (or slide) gets its own estimate, from the pixels of its patches /
tissue tiles: one estimate per image, never per patch, so the biological differences between patches survive.
Background (OD ≈ 0) stays white.

**Augmentation** (training only, after normalisation, so the model also sees what normalisation leaves over):
per-stain scale/shift in the fixed haematoxylin–eosin–DAB space of scikit-image's ``rgb_from_hed`` (Tellez
et al. 2018), brightness/contrast, Gaussian blur, JPEG re-compression and a zoom (scale) jitter.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

#: scikit-image's H, E, DAB optical-density vectors (rows) — ``skimage.color.rgb_from_hed``
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float64)
RGB_FROM_HED /= np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
#: Macenko's published reference (H&E columns of OD, 99th-percentile concentrations), used when a reference
#: cannot be fitted
DEFAULT_STAINS = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
DEFAULT_MAX_CONC = np.array([1.9705, 1.0308])


def _od(values: np.ndarray) -> np.ndarray:
    return -np.log((np.asarray(values, np.float32) + 1.0) / 256.0)


#: OD of every uint8 value (the same float32 numbers as computing it pixel by pixel)
_OD_LUT = _od(np.arange(256, dtype=np.uint8))


def optical_density(rgb_u8: np.ndarray) -> np.ndarray:
    """OD = −ln((I + 1) / 256) per channel, float32, same shape (a table look-up for uint8)."""
    rgb_u8 = np.asarray(rgb_u8)
    return _OD_LUT[rgb_u8] if rgb_u8.dtype == np.uint8 else _od(rgb_u8)


def from_optical_density(od: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """RGB uint8 of optical densities: round(clip(256 · exp(−OD) − 1, 0, 255)), computed in place in one float
    array (``od`` itself with ``overwrite``): half the time of one temporary per step, the same values."""
    v = np.negative(od, out=od if overwrite else None)
    np.exp(v, out=v)
    v *= 256.0
    v -= 1.0
    np.clip(v, 0, 255, out=v)
    return np.rint(v, out=v).astype(np.uint8)


def tissue_pixels(images_u8: np.ndarray, max_pixels: int = 200_000, beta: float = 0.15, seed: int = 0) -> np.ndarray:
    """OD rows (m, 3) of tissue pixels (every channel's OD > ``beta``) of an image stack, at most ``max_pixels``
    (a fixed-seed subsample)."""
    od = optical_density(np.asarray(images_u8).reshape(-1, 3))
    od = od[(od > beta).all(axis=1)]
    if len(od) > max_pixels:
        od = od[np.random.default_rng(seed).choice(len(od), max_pixels, replace=False)]
    return od


@dataclass
class StainEstimate:
    """Stain vectors (3, 2: OD of H and E as columns, unit length) and their 99th-percentile concentrations."""

    stains: np.ndarray
    max_conc: np.ndarray

    def as_dict(self) -> dict:
        return {"stains": np.asarray(self.stains).tolist(), "max_conc": np.asarray(self.max_conc).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> StainEstimate:
        return cls(np.asarray(d["stains"], np.float64), np.asarray(d["max_conc"], np.float64))


DEFAULT_REFERENCE = StainEstimate(DEFAULT_STAINS, DEFAULT_MAX_CONC)


def estimate_stains(images_u8: np.ndarray, alpha: float = 1.0, min_pixels: int = 500) -> StainEstimate | None:
    """Macenko estimate of an image (or a stack of patches of one image); None with too little tissue."""
    od = tissue_pixels(images_u8)
    if len(od) < min_pixels:
        return None
    _, vecs = np.linalg.eigh(np.cov(od.T.astype(np.float64)))
    plane = vecs[:, [2, 1]]  # the two largest principal directions
    plane[:, plane[0] < 0] *= -1  # point into positive OD
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, alpha), np.percentile(phi, 100 - alpha)
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    stains = np.column_stack([v1, v2] if v1[0] > v2[0] else [v2, v1])  # haematoxylin: more red-channel OD
    stains = np.abs(stains) / np.linalg.norm(stains, axis=0, keepdims=True)
    conc = np.linalg.lstsq(stains, od.T.astype(np.float64), rcond=None)[0]
    max_conc = np.percentile(conc, 99, axis=1)
    if not np.all(np.isfinite(max_conc)) or np.any(max_conc <= 1e-3):
        return None
    return StainEstimate(stains, max_conc)


def normalize_stains(images_u8: np.ndarray, source: StainEstimate | None, reference: StainEstimate,
                     chunk: int = 16) -> np.ndarray:
    """Re-colour images (…, 3) uint8 estimated as ``source`` into ``reference``'s stains and intensities
    (unchanged when ``source`` is None)."""
    images_u8 = np.asarray(images_u8)
    if source is None:
        return images_u8
    unmix = np.linalg.pinv(source.stains)  # (2, 3)
    scale = (reference.max_conc / source.max_conc)[:, None]
    mix = (reference.stains @ (scale * unmix)).T.astype(np.float32)  # OD → OD, (3, 3)
    out = np.empty_like(images_u8)
    flat_in = images_u8.reshape(-1, *images_u8.shape[-3:]) if images_u8.ndim >= 3 else images_u8
    flat_out = out.reshape(flat_in.shape)
    for s in range(0, len(flat_in), chunk):  # (pixels, 3) @ (3, 3): one BLAS product per chunk (kept in cache)
        block = flat_in[s:s + chunk]
        od = optical_density(block).reshape(-1, 3) @ mix
        flat_out[s:s + chunk] = from_optical_density(od, overwrite=True).reshape(block.shape)
    return out


# ---- perturbations (augmentation at training time, and the benchmark's re-stained copies) -----------------

def hed_jitter(images_u8: np.ndarray, alpha, beta) -> np.ndarray:
    """Scale (``alpha``) and shift (``beta``, OD units) the H, E, DAB concentrations; ``alpha`` / ``beta``
    are (3,) or broadcastable per image (n, 3)."""
    od = optical_density(images_u8)
    conc = od @ HED_FROM_RGB.astype(np.float32)
    a = np.asarray(alpha, np.float32)
    b = np.asarray(beta, np.float32)
    if a.ndim == 2:  # per image
        a = a.reshape(a.shape[0], *([1] * (conc.ndim - 2)), 3)
        b = b.reshape(b.shape[0], *([1] * (conc.ndim - 2)), 3)
    return from_optical_density((conc * a + b) @ RGB_FROM_HED.astype(np.float32), overwrite=True)


def jpeg(image_u8: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of one RGB uint8 image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image_u8).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def blur(image_u8: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (σ pixels) of one RGB uint8 image."""
    from scipy import ndimage

    if sigma <= 0:
        return image_u8
    out = ndimage.gaussian_filter(image_u8.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect")
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _zoom(image_u8: np.ndarray, factor: float) -> np.ndarray:
    """Zoom in by ``factor`` ≥ 1 about the centre (crop, resize back)."""
    from PIL import Image

    n = image_u8.shape[0]
    side = max(8, int(round(n / factor)))
    o = (n - side) // 2
    crop = image_u8[o:o + side, o:o + side]
    return np.asarray(Image.fromarray(crop).resize((n, n), Image.BILINEAR))


def stain_augment(patches_u8: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A randomly re-stained, re-scanned copy of each patch (n, px, px, 3): HED scale ±20 % / shift ±0.05 OD,
    brightness ±8 %, contrast ±15 %, blur σ ≤ 1 px (p = 0.4), JPEG quality 30–90 (p = 0.4), zoom 1–1.15×
    (p = 0.5); ``strength`` scales every range."""
    n = len(patches_u8)
    s = float(strength)
    alpha = rng.uniform(1 - 0.2 * s, 1 + 0.2 * s, size=(n, 3))
    beta = rng.uniform(-0.05 * s, 0.05 * s, size=(n, 3))
    alpha[:, 2], beta[:, 2] = 1.0, 0.0  # no DAB in H&E
    out = hed_jitter(patches_u8, alpha, beta).astype(np.float32)
    bright = rng.uniform(1 - 0.08 * s, 1 + 0.08 * s, size=(n, 1, 1, 1))
    contrast = rng.uniform(1 - 0.15 * s, 1 + 0.15 * s, size=(n, 1, 1, 1))
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = np.clip((mean + (out - mean) * contrast) * bright, 0, 255).round().astype(np.uint8)
    for i in range(n):
        if rng.random() < 0.5:
            out[i] = _zoom(out[i], rng.uniform(1.0, 1.0 + 0.15 * s))
        if rng.random() < 0.4:
            out[i] = blur(out[i], rng.uniform(0.3, 1.0) * s)
        if rng.random() < 0.4:
            out[i] = jpeg(out[i], int(rng.integers(30, 91)))
    return out
