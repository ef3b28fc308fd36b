"""Pure feature functions over an 8-bit grayscale image (numpy + Pillow, no Spark).

Every function takes the analysis image (mode ``L``) or its 256-bin histogram and is exact:
integer sums where the definition allows it, so results do not depend on summation order.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from udfs.resample import lanczos_resize

_LEVELS = np.arange(256, dtype=np.float64)
# Rows per block of the Laplacian: small enough that the int16/int32 temporaries stay in cache
# and memory stays bounded on 50 MP images, large enough to amortise numpy call overhead; at
# most 2064 so that a column of squares (<= 1020**2 each) sums in int32.
_BLOCK_ROWS = 64


def histogram(gray: Image.Image) -> np.ndarray:
    """256 pixel counts of a mode-L image (Pillow's C histogram), as int64."""
    if gray.mode != "L":
        raise ValueError(f"histogram needs a mode L image, got {gray.mode}")
    return np.asarray(gray.histogram(), dtype=np.int64)


def mean_std(hist: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0) of the pixels counted in ``hist``."""
    n = int(hist.sum())
    if n == 0:
        raise ValueError("empty histogram")
    mean = float(hist @ _LEVELS) / n
    var = float(hist @ (_LEVELS - mean) ** 2) / n
    return mean, math.sqrt(var)


def entropy(hist: np.ndarray) -> float:
    """Shannon entropy in bits: H = -sum(p * log2 p) over non-empty bins, p = count / total."""
    n = int(hist.sum())
    if n == 0:
        raise ValueError("empty histogram")
    p = hist[hist > 0] / n
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def laplacian_variance(gray: np.ndarray) -> float:
    """Population variance of the 3x3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]] (sharpness).

    Computed over the valid (H-2) x (W-2) region of the image taken as numbers, with exact
    integer sums: var = (sum L**2 - (sum L)**2 / n) / n. Images with a side under 3 pixels
    have no valid region: 0.0. Row blocks keep the temporaries in cache and small on 50 MP
    images; per block L is built in int16 straight from the uint8 rows (|L| <= 1020), its
    square in int32, summed down the columns in int32 (<= 64 * 1020**2, no overflow) and
    only then in int64. sum L needs no pass at all: it telescopes to border sums.
    """
    if gray.ndim != 2:
        raise ValueError("laplacian_variance needs a 2-D array")
    h, w = gray.shape
    if h < 3 or w < 3:
        return 0.0
    total_sq = 0
    for y0 in range(1, h - 1, _BLOCK_ROWS):
        y1 = min(h - 1, y0 + _BLOCK_ROWS)
        b = gray[y0 - 1 : y1 + 1]
        lap = np.add(b[:-2, 1:-1], b[2:, 1:-1], dtype=np.int16)
        lap += b[1:-1, :-2]
        lap += b[1:-1, 2:]
        lap -= np.left_shift(b[1:-1, 1:-1], 2, dtype=np.int16)
        squares = np.square(lap, dtype=np.int32)
        total_sq += int(squares.sum(axis=0, dtype=np.int32).sum(dtype=np.int64))
    total = _laplacian_sum(gray)
    n = (h - 2) * (w - 2)
    return max(0.0, (total_sq - total * total / n) / n)


def _laplacian_sum(a: np.ndarray) -> int:
    """sum of L over the valid region, from the borders: each of the four neighbour sums is
    the centre sum shifted by one row or column, so only first/last rows and columns remain."""
    h, w = a.shape
    r0, r1, r2, r3 = a[[0, 1, h - 2, h - 1], 1 : w - 1].sum(axis=1, dtype=np.int64).tolist()
    c0, c1, c2, c3 = a[1 : h - 1][:, [0, 1, w - 2, w - 1]].sum(axis=0, dtype=np.int64).tolist()
    return r0 + r3 - r1 - r2 + c0 + c3 - c1 - c2


def dhash(gray: np.ndarray) -> str:
    """Difference hash as 16 hex digits, equal to ``str(imagehash.dhash(image))``.

    The image is resized to 9 x 8 with Lanczos (Pillow's, computed by ``udfs.resample``); bit
    (r, c) is set when pixel (r, c + 1) is brighter than pixel (r, c); bits are read
    row-major, the first one most significant.
    (Krawetz, "Kind of like that", 2013; imagehash.dhash.)
    """
    px = lanczos_resize(gray, 9, 8).astype(np.int16)
    bits = (px[:, 1:] > px[:, :-1]).ravel()
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def gray_features(gray: Image.Image) -> dict:
    """Every brightness and texture feature of a mode-L analysis image, as a dict."""
    hist = histogram(gray)
    mean, std = mean_std(hist)
    pixels = np.asarray(gray)
    return {
        "gray_mean": mean,
        "gray_std": std,
        "gray_hist": hist,
        "entropy": entropy(hist),
        "sharpness": laplacian_variance(pixels),
        "dhash": dhash(pixels),
    }
