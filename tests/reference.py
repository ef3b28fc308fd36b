"""Independent reference computations (Pillow + numpy + ImageHash), written from the feature
definitions without the project's code, to compare the job's output against."""

from __future__ import annotations

import hashlib
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps


def reference_features(path: Path) -> dict:
    """Full-resolution features of an 8-bit image file, by the definitions in README."""
    data = Path(path).read_bytes()
    with Image.open(path) as im:
        fmt, mode = im.format, im.mode
        n_frames = getattr(im, "n_frames", 1)
        im.seek(0)
        oriented = ImageOps.exif_transpose(im)
        if oriented.mode in ("P", "PA"):
            oriented = oriented.convert("RGBA")
        gray = oriented.convert("L")
    a = np.asarray(gray)
    f = a.astype(np.float64)
    hist = np.bincount(a.ravel(), minlength=256)
    p = hist[hist > 0] / a.size
    lap = f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:] - 4 * f[1:-1, 1:-1]
    return {
        "content_sha256": hashlib.sha256(data).hexdigest(),
        "format": fmt,
        "mode": mode,
        "n_frames": n_frames,
        "width": gray.width,
        "height": gray.height,
        "gray_mean": float(f.mean()),
        "gray_std": float(f.std()),
        "gray_hist": hist.tolist(),
        "entropy": float(-(p * np.log2(p)).sum()),
        "sharpness": float(lap.var()) if min(a.shape) >= 3 else 0.0,
        "dhash": str(imagehash.dhash(oriented)),
    }


def assert_matches(row: dict, ref: dict, tol: float = 1e-6) -> None:
    """Histogram, hash and integers exactly; floats to ``tol`` (relative to magnitude)."""
    for key, want in ref.items():
        got = row[key]
        if isinstance(want, float):
            assert abs(got - want) <= tol * max(1.0, abs(want)), (key, got, want)
        else:
            assert got == want, (key, got, want)
