"""Pillow's Lanczos downscale of an 8-bit image, bit for bit, as two matrix products.

dHash resizes the whole analysis image to 9 x 8. Pillow does that with a scalar loop over
every tap (~6 multiply-adds per pixel): 4.9 ms per full-resolution photo of the benchmark set.
Here each pass is one float64 matrix product (BLAS) with Pillow's own fixed-point weights:
2.9 ms, and the same pixels (``tests/test_resample.py`` compares with ``Image.resize``).

Why the result is exact: Pillow's weights are integers scaled by 2**22 (``Resample.c``,
``PRECISION_BITS``) and pixels are integers <= 255, so every product is an integer and the
products' absolute values add up to less than 2**31 (255 x 2**22 x the weights' absolute sum,
~1.3; Pillow sums them in a C int). Every partial sum, in whatever order BLAS adds, is then an
integer float64 holds exactly. Each pass rounds as Pillow's ``clip8`` does: add 2**21, shift
right by 22, clamp to 0..255.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

_PRECISION_BITS = 22  # Resample.c: 32 - 8 - 2
_HALF = float(1 << (_PRECISION_BITS - 1))
_SCALE = float(1 << _PRECISION_BITS)
_LANCZOS_SUPPORT = 3.0
# Pixels converted to float64 per block: the block and its product stay in the L2 cache
# (256 KB: 2.9 ms per photo; 32 KB: 6.1 ms, 1 MB: 4.0 ms).
_BLOCK_BYTES = 1 << 18
# Pillow 13 runs the vertical pass first when the height shrinks more than twice as much as
# the width; earlier versions always ran the horizontal pass first. The passes round in
# between, so the order shows in the last bit: follow the Pillow that is installed.
_VERTICAL_FIRST_WHEN_TALL = int(Image.__version__.split(".")[0]) >= 13


def lanczos_resize(
    a: np.ndarray, width: int, height: int, vertical_first_when_tall: bool | None = None
) -> np.ndarray:
    """``Image.fromarray(a).resize((width, height), LANCZOS)`` of a 2-D uint8 array, as uint8.

    Meant for small outputs such as dHash's: the weights are dense (in x out) matrices.
    """
    if vertical_first_when_tall is None:
        vertical_first_when_tall = _VERTICAL_FIRST_WHEN_TALL
    h, w = a.shape
    vertical_first = vertical_first_when_tall and 0 < h - height and (w - width) * 2 < h - height
    if vertical_first:
        if h != height:
            a = _vertical(a, _weights(h, height))
        if w != width:
            a = _horizontal(a, _weights(w, width))
    else:
        weights_v = _weights(h, height)
        if w != width:  # only the rows the vertical pass reads, as Pillow does
            rows = np.flatnonzero(weights_v.any(axis=1))
            first, last = (rows[0], rows[-1] + 1) if rows.size else (0, h)
            a = _horizontal(a[first:last], _weights(w, width))
            weights_v = weights_v[first:last]
        if h != height:
            a = _vertical(a, weights_v)
    return np.asarray(a, dtype=np.uint8)


def _horizontal(a: np.ndarray, weights: np.ndarray) -> np.ndarray:
    rows = max(1, _BLOCK_BYTES // (8 * a.shape[1]))
    out = np.empty((a.shape[0], weights.shape[1]))
    for r in range(0, a.shape[0], rows):
        np.matmul(a[r : r + rows].astype(np.float64), weights, out=out[r : r + rows])
    return _round(out)


def _vertical(a: np.ndarray, weights: np.ndarray) -> np.ndarray:
    # Row blocks (contiguous), their products added up: still exact integer sums.
    rows = max(1, _BLOCK_BYTES // (8 * a.shape[1]))
    out = np.zeros((weights.shape[1], a.shape[1]))
    for r in range(0, a.shape[0], rows):
        out += weights[r : r + rows].T @ a[r : r + rows].astype(np.float64)
    return _round(out)


def _round(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8: (sum + 2**21) >> 22, clamped to 0..255 (exact: 2**-22 is a power of 2)."""
    return np.clip(np.floor((sums + _HALF) * (1.0 / _SCALE)), 0.0, 255.0)


@lru_cache(maxsize=64)
def _weights(in_size: int, out_size: int) -> np.ndarray:
    """(in_size, out_size) matrix of Pillow's fixed-point Lanczos weights (``precompute_coeffs``
    then ``normalize_coeffs_8bpc``), zero outside each output's window. Cached: photos from
    the same camera share their sizes."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    centers = (np.arange(out_size) + 0.5) * scale
    # Window bounds, rounded as C's (int) cast does (toward zero), clamped to the image.
    first = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    stop = np.minimum((centers + support + 0.5).astype(np.int64), in_size)
    index = np.arange(in_size)[:, None]
    x = (index - centers + 0.5) * (1.0 / filterscale)
    w = _sinc(x)
    w *= _sinc(x / 3)
    w *= (index >= first) & (index < stop) & (x >= -3.0) & (x < 3.0)  # Lanczos-3, the window
    total = np.cumsum(w, axis=0)[-1]  # summed in order, as Pillow does (np.sum pairs terms)
    np.divide(w, total, out=w, where=total != 0.0)
    # (int)(w * 2**22 + 0.5) for w >= 0, (int)(w * 2**22 - 0.5) below: truncated toward zero.
    w *= _SCALE
    w += np.copysign(0.5, w)
    return np.trunc(w, out=w)


def _sinc(x: np.ndarray) -> np.ndarray:
    """sin(pi x) / (pi x), 1 at 0 (Resample.c ``sinc_filter``)."""
    px = x * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sin(px)
        s /= px
    s[x == 0.0] = 1.0
    return s
