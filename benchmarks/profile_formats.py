#!/usr/bin/env python3
"""Per-image cost of the pure image functions, by format, in one process (no Spark).

    .venv/bin/python benchmarks/profile_formats.py /tmp/ds2000 [--max-side 512]

Reads every file of the dataset into memory first, then times, per image: the SHA-256 of
the bytes, decoding to the analysis image (udfs.decode), the features (udfs.features) and
the EXIF facts; and the whole of udfs.extract.image_row next to the reference's
image_features (../shared/bench/peers/features.py), which does the same work.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from udfs import decode, exif, features  # noqa: E402
from udfs.extract import ExtractOptions, image_row  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("--max-side", type=int, default=512)
    a = p.parse_args()
    datas = [f.read_bytes() for f in sorted(Path(a.dataset).rglob("*")) if f.is_file()]
    parts = collections.defaultdict(lambda: collections.Counter())
    for data in datas:
        t0 = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        t1 = time.perf_counter()
        d = decode.decode(data, a.max_side)
        t2 = time.perf_counter()
        features.gray_features(d.gray)
        t3 = time.perf_counter()
        exif.exif_facts(d.exif, False)
        t4 = time.perf_counter()
        c = parts[d.format]
        c.update(n=1, sha256=t1 - t0, decode=t2 - t1, features=t3 - t2, exif=t4 - t3)
    total = sum(c["sha256"] + c["decode"] + c["features"] + c["exif"] for c in parts.values())
    print(f"{len(datas)} files, --max-side {a.max_side}: ms per image (share of all time)")
    for fmt, c in sorted(parts.items(), key=lambda kv: -kv[1]["n"]):
        own = c["sha256"] + c["decode"] + c["features"] + c["exif"]
        cols = "  ".join(f"{k} {c[k] / c['n'] * 1e3:6.2f}" for k in ("sha256", "decode", "features", "exif"))
        print(f"  {fmt:<5} {c['n']:5d} files ({c['n'] / len(datas):5.1%})  {cols}  ({own / total:.0%} of the time)")

    sys.path.insert(0, str(ROOT.parent / "shared" / "bench" / "peers"))
    import features as peer  # the reference workload

    opts = ExtractOptions(max_side=a.max_side, time_budget_s=0)
    variant = "reduced" if a.max_side else "full"
    for _ in range(2):  # the second round is warm
        t = time.process_time()
        for data in datas:
            image_row(data, opts)
        ours = time.process_time() - t
        t = time.process_time()
        for data in datas:
            peer.image_features(data, variant)
        ref = time.process_time() - t
    print(f"whole row, CPU per image: image_row {ours / len(datas) * 1e3:.2f} ms, "
          f"reference image_features {ref / len(datas) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
