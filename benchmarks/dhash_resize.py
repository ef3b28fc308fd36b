#!/usr/bin/env python3
"""What dHash's 9 x 8 Lanczos resize costs per image: Pillow's loop or udfs.resample's BLAS.

    .venv/bin/python benchmarks/dhash_resize.py /tmp/ds2000 [--files 400] [--rounds 3]

In one process, ``image_row`` (decode, features, EXIF: all of a worker's per-image work) runs
on every k-th file of DATASET with the resize done by ``Image.resize`` and by
``udfs.resample.lanczos_resize``, alternated round by round, at ``--max-side 512`` and 0.
Prints CPU ms per image and whether the two give the same hashes; writes the records to
benchmarks/raw/tuning/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from udfs import extract, features, resample  # noqa: E402
from udfs.extract import ExtractOptions  # noqa: E402


def pillow_resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a, "L").resize((width, height), Image.Resampling.LANCZOS))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    paths = sorted(Path(d) / f for d, _, fs in os.walk(args.dataset) for f in fs)
    paths = paths[:: max(1, len(paths) // args.files)][: args.files]
    blobs = [p.read_bytes() for p in paths]
    resizers = {"pillow": pillow_resize, "blas": resample.lanczos_resize}
    records = []
    for max_side in (512, 0):
        opts = ExtractOptions(max_side=max_side)
        hashes = {}
        for rnd in range(args.rounds):
            for name, resize in resizers.items():
                features.lanczos_resize = resize
                resample._weights.cache_clear()  # every round starts cold
                started = time.process_time()
                rows = [extract.image_row(b, opts) for b in blobs]
                ms = (time.process_time() - started) / len(blobs) * 1e3
                hashes[name] = [r["dhash"] for r in rows]
                records.append({"max_side": max_side, "resize": name, "round": rnd, "cpu_ms_per_image": ms})
        features.lanczos_resize = resample.lanczos_resize
        same = hashes["pillow"] == hashes["blas"]
        line = ", ".join(
            f"{name} " + " / ".join(f"{r['cpu_ms_per_image']:.2f}" for r in records
                                    if r["max_side"] == max_side and r["resize"] == name)
            for name in resizers
        )
        print(f"max_side {max_side}: image_row CPU ms per image: {line}; same hashes: {same}")
        records.append({"max_side": max_side, "same_hashes": same, "files": len(blobs)})
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(__file__).resolve().parent / "raw" / "tuning" / f"dhash-resize-{stamp}.jsonl"
    out.write_text("".join(json.dumps({"dataset": str(args.dataset), **r}) + "\n" for r in records))
    print(f"records: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
