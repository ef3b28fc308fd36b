#!/usr/bin/env python3
"""Make a small-files benchmark set: N thumbnail JPEGs (64-160 px a side), fast.

    .venv/bin/python benchmarks/make_thumbnails.py OUT --count 100000 --seed 7 [--folders F] [--jobs J]

Each file i is a pure function of (seed, i): a smooth random gradient plus noise, saved as
JPEG quality 80 in one of F label folders (OUT/label_k/thumb_XXXXXXX.jpg, k = i mod F;
default 10). About 3 KB each.
"""

from __future__ import annotations

import argparse
import os
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

_out = Path(".")
_seed = 0
_folders = 10


def _init(out: Path, seed: int, folders: int) -> None:
    global _out, _seed, _folders
    _out, _seed, _folders = out, seed, folders


def _make(chunk: range) -> int:
    total = 0
    for i in chunk:
        rng = np.random.default_rng([_seed, i])
        w, h = (int(x) for x in rng.integers(64, 161, size=2))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = rng.uniform(0, 255, 3).astype(np.float32)
        slope = rng.uniform(-1.5, 1.5, (2, 3)).astype(np.float32)
        img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
        img += rng.normal(0, 12, (h, w, 3)).astype(np.float32)
        im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
        path = _out / f"label_{i % _folders}" / f"thumb_{i:07d}.jpg"
        im.save(path, "JPEG", quality=80)
        total += path.stat().st_size
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--folders", type=int, default=10)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    for k in range(a.folders):
        (a.out / f"label_{k}").mkdir(parents=True, exist_ok=True)
    step = 1000
    chunks = [range(s, min(s + step, a.count)) for s in range(0, a.count, step)]
    with Pool(a.jobs, initializer=_init, initargs=(a.out, a.seed, a.folders)) as pool:
        total = sum(pool.imap_unordered(_make, chunks))
    print(f"make_thumbnails: {a.count} files, {total} bytes in {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
