"""Minimal WKB (well-known binary) reader for Polygon / MultiPolygon outer rings (no shapely needed)."""

from __future__ import annotations

import struct

import numpy as np


def wkb_outer_ring(blob: bytes) -> np.ndarray:
    """(n, 2) outer ring of a WKB Polygon, or of the largest polygon of a MultiPolygon."""
    rings = _read_geometry(memoryview(blob), 0)[0]
    if not rings:
        return np.zeros((0, 2))
    return max(rings, key=len)


def _read_geometry(buf, off):
    order = "<" if buf[off] == 1 else ">"
    (gtype,) = struct.unpack_from(order + "I", buf, off + 1)
    off += 5
    # ISO WKB: +1000 Z, +2000 M, +3000 ZM; EWKB: high-bit flags for Z and M
    iso, base = divmod(gtype & 0x0FFFFFFF, 1000)
    has_z = bool(gtype & 0x80000000) or iso in (1, 3)
    has_m = bool(gtype & 0x40000000) or iso in (2, 3)
    dim = 2 + int(has_z) + int(has_m)
    if base == 3:  # Polygon: keep the outer ring only
        (nrings,) = struct.unpack_from(order + "I", buf, off)
        off += 4
        outer = None
        for i in range(nrings):
            (npts,) = struct.unpack_from(order + "I", buf, off)
            off += 4
            pts = np.frombuffer(buf, dtype=np.dtype(order + "f8"), count=npts * dim, offset=off).reshape(npts, dim)
            off += npts * dim * 8
            if i == 0:
                outer = pts[:, :2].copy()
        return ([outer] if outer is not None else []), off
    if base == 6:  # MultiPolygon
        (n,) = struct.unpack_from(order + "I", buf, off)
        off += 4
        rings = []
        for _ in range(n):
            sub, off = _read_geometry(buf, off)
            rings.extend(sub)
        return rings, off
    raise ValueError(f"unsupported WKB geometry type {gtype}")
