"""Pure feature functions over an 8-bit grayscale image (numpy + Pillow, no Spark).

Every function takes the analysis image (mode ``L``) or its 256-bin histogram and is exact:
integer sums where the definition allows it, so results do not depend on summation order.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

_LEVELS = np.arange(256, dtype=np.float64)
# Rows per block of the Laplacian: small enough that the int16/int32 temporaries stay in cache
# and memory stays bounded on 50 MP images, large enough to amortise numpy call overhead.
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
    integer sums: var = (sum L**2 - (sum L)**2 / n) / n. |L| <= 1020, so L is built in int16
    (half the memory traffic of int32: 3.3 -> 2.7 ms on a 2.5 MP image) and squared into
    int32 (L**2 <= 1040400). Images with a side under 3 pixels have no valid region: 0.0.
    """
    if gray.ndim != 2:
        raise ValueError("laplacian_variance needs a 2-D array")
    h, w = gray.shape
    if h < 3 or w < 3:
        return 0.0
    total = 0
    total_sq = 0
    for y0 in range(1, h - 1, _BLOCK_ROWS):
        y1 = min(h - 1, y0 + _BLOCK_ROWS)
        b = gray[y0 - 1 : y1 + 1].astype(np.int16)
        lap = b[:-2, 1:-1] + b[2:, 1:-1]
        lap += b[1:-1, :-2]
        lap += b[1:-1, 2:]
        lap -= 4 * b[1:-1, 1:-1]
        total += int(lap.sum(dtype=np.int64))
        total_sq += int(np.square(lap, dtype=np.int32).sum(dtype=np.int64))
    n = (h - 2) * (w - 2)
    return max(0.0, (total_sq - total * total / n) / n)


def dhash(gray: Image.Image) -> str:
    """Difference hash as 16 hex digits, equal to ``str(imagehash.dhash(gray))``.

    The image is resized to 9 x 8 with Lanczos; bit (r, c) is set when pixel (r, c + 1) is
    brighter than pixel (r, c); bits are read row-major, the first one most significant.
    (Krawetz, "Kind of like that", 2013; imagehash.dhash.)
    """
    px = np.asarray(gray.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (px[:, 1:] > px[:, :-1]).ravel()
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def gray_features(gray: Image.Image) -> dict:
    """Every brightness and texture feature of a mode-L analysis image, as a dict."""
    hist = histogram(gray)
    mean, std = mean_std(hist)
    return {
        "gray_mean": mean,
        "gray_std": std,
        "gray_hist": hist,
        "entropy": entropy(hist),
        "sharpness": laplacian_variance(np.asarray(gray)),
        "dhash": dhash(gray),
    }
