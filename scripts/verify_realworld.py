"""Verify the job on a few thousand real-world files of every format Pillow can write.

    .venv/bin/python scripts/verify_realworld.py [--files 2500] [--seed 1] [--photos DIR] [--keep DIR]

Builds the set into a temporary folder from the bundled photos (samples/, plus the JPEG and
PNG photos of --photos DIR when given): every writable format in the modes it stores, EXIF
orientations, progressive/subsampled/compressed variants, multi-frame files, misleading and
missing extensions, odd file names, and broken variants (truncated, bit-flipped, zeroed,
garbage, empty, bombs). Runs the job on it as a subprocess (--glob '*' --max-side 0), then
checks: exit code 0; exactly one row per file; every file Pillow decodes has the features of
the independent reference in tests/corpus.py (histogram and dhash exactly, floats to 1e-6,
format, mode, frame count); every file Pillow cannot decode has an error row. Prints a summary
and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from tests import corpus  # noqa: E402

# format -> (modes it stores, file extension). Write-only formats (PALM, PDF) and EPS (needs
# Ghostscript to decode) are included on purpose: Pillow cannot decode them -> error rows.
FORMATS = {
    "JPEG": (["RGB", "L", "CMYK"], "jpg"),
    "PNG": (["1", "L", "LA", "P", "RGB", "RGBA", "I;16"], "png"),
    "GIF": (["P", "L", "RGB"], "gif"),
    "WEBP": (["RGB", "RGBA"], "webp"),
    "TIFF": (["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "I;16", "I;16B",
              "I", "F"], "tif"),  # fmt: skip
    "BMP": (["1", "L", "P", "RGB", "RGBA"], "bmp"),
    "HEIF": (["RGB", "RGBA", "L"], "heic"),
    "AVIF": (["RGB", "RGBA", "L"], "avif"),
    "MPO": (["RGB"], "mpo"),
    "JPEG2000": (["L", "RGB", "RGBA", "I;16"], "jp2"),
    "ICO": (["RGBA", "RGB", "P"], "ico"),
    "ICNS": (["RGBA"], "icns"),
    "IM": (["L", "P", "RGB", "RGBA", "CMYK", "I", "F", "I;16"], "im"),
    "PCX": (["1", "L", "P", "RGB"], "pcx"),
    "PPM": (["1", "L", "RGB", "I;16", "F"], "ppm"),
    "QOI": (["RGB", "RGBA"], "qoi"),
    "SGI": (["L", "RGB", "RGBA"], "sgi"),
    "SPIDER": (["F", "L"], "spi"),
    "TGA": (["L", "LA", "P", "RGB", "RGBA"], "tga"),
    "XBM": (["1"], "xbm"),
    "DDS": (["RGB", "RGBA", "L", "LA"], "dds"),
    "BLP": (["P"], "blp"),
    "MSP": (["1"], "msp"),
    "DIB": (["RGB", "L"], "dib"),
    "PALM": (["L", "1"], "palm"),
    "PDF": (["RGB"], "pdf"),
    "EPS": (["RGB", "L"], "eps"),
}
# Rough shares of a real photo folder: mostly JPEG, then PNG, HEIC, WebP...; the rest even.
WEIGHTS = {"JPEG": 30, "PNG": 14, "HEIF": 6, "WEBP": 6, "GIF": 5, "TIFF": 10, "AVIF": 3,
           "MPO": 2, "BMP": 3, "JPEG2000": 2}  # fmt: skip
MULTI_FRAME = {"GIF", "PNG", "WEBP", "TIFF", "MPO", "HEIF", "AVIF"}
EXIF_FORMATS = {"JPEG", "PNG", "WEBP", "HEIF", "AVIF"}
ODD_NAMES = ["a b", "hash#1", "per%20cent", "café", "_DSC", "UPPER", "x,y", "semi;colon"]


def source_photos(more: Path | None) -> list[Image.Image]:
    """The photos, decoded once (RGB): samples/ and those in ``more``."""
    paths = list(corpus.SAMPLE_PHOTOS)
    if more is not None:
        paths += sorted(p for p in more.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.convert("RGB"))
    return out


def crop(rng: random.Random, photos: list[Image.Image], size: tuple[int, int]) -> Image.Image:
    """A random crop of a random photo, resized to ``size``."""
    im = rng.choice(photos)
    w, h = im.size
    cw, ch = rng.randint(max(1, w // 4), w), rng.randint(max(1, h // 4), h)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    resample = rng.choice([Image.Resampling.BILINEAR, Image.Resampling.LANCZOS])
    return im.crop((x, y, x + cw, y + ch)).resize(size, resample)


def random_size(rng: random.Random, cap: int = 2400) -> tuple[int, int]:
    """Mostly web and thumbnail sizes, some camera-sized; the long side at most ``cap``."""
    r = rng.random()
    long = rng.randint(1, 24) if r < 0.05 else rng.randint(24, 400) if r < 0.75 else \
        rng.randint(400, 1000) if r < 0.97 else rng.randint(1000, 2400)  # fmt: skip
    aspect = rng.choice([1.0, 4 / 3, 3 / 2, 16 / 9, 1 / 3, 3.0, rng.uniform(0.2, 5)])
    long = min(long, cap)
    w, h = (long, max(1, round(long / aspect))) if aspect >= 1 else (max(1, round(long * aspect)), long)
    return w, h


def in_mode(im: Image.Image, mode: str, rng: random.Random) -> Image.Image:
    if mode in ("I;16", "I;16B", "I", "F", "LAB", "PA", "P", "LA", "RGBA"):
        return corpus.mode_image(mode, im)
    if mode == "1" and rng.random() < 0.5:
        return im.convert("L").convert("1", dither=Image.Dither.NONE)
    return im.convert(mode)


def save_kwargs(fmt: str, rng: random.Random, im: Image.Image) -> dict:
    kw: dict = {}
    if fmt == "JPEG":
        kw = {"quality": rng.choice([30, 75, 90, 100]), "progressive": rng.random() < 0.3,
              "subsampling": rng.choice([0, 1, 2]), "optimize": rng.random() < 0.3}  # fmt: skip
    elif fmt == "WEBP":
        kw = {"lossless": rng.random() < 0.4, "quality": rng.choice([50, 80, 95])}
    elif fmt == "TIFF":
        comps = ["raw", "tiff_lzw", "tiff_deflate", "packbits", "tiff_adobe_deflate"]
        if im.mode in ("RGB", "L"):
            comps.append("jpeg")
        kw = {"compression": rng.choice(comps)}
        if rng.random() < 0.3:
            kw["tiffinfo"] = {0x0112: rng.randint(1, 8)}
    elif fmt == "PNG":
        kw = {"optimize": rng.random() < 0.2, "compress_level": rng.choice([0, 6, 9])}
        if im.mode == "P" and rng.random() < 0.4:
            kw["transparency"] = rng.randrange(16)
    elif fmt == "TGA":
        kw = {"compression": rng.choice([None, "tga_rle"])}
    elif fmt in ("HEIF", "AVIF"):
        kw = {"quality": rng.choice([50, 80, 95])}
    if fmt in EXIF_FORMATS and rng.random() < 0.35:
        exif = Image.Exif()
        exif[0x0112] = rng.randint(1, 8)
        if rng.random() < 0.3:
            exif[0x010F] = "VerifyCam"
        kw["exif"] = exif
    return kw


def fit(fmt: str, im: Image.Image) -> Image.Image:
    """Size limits of some formats."""
    if fmt in ("ICO", "ICNS", "DDS", "BLP"):
        side = min(256, max(im.size))
        im = im.resize((side, side)) if fmt in ("ICNS", "DDS", "BLP") else im
        im.thumbnail((256, 256))
        if fmt in ("DDS", "BLP"):  # block formats: multiples of 4
            im = im.resize((max(4, im.width // 4 * 4), max(4, im.height // 4 * 4)))
    return im


def make_image_file(rng: random.Random, photos: list[Image.Image], cap: int = 2400) -> tuple[str, bytes]:
    """One encoded image: (format, bytes). Retries other choices when Pillow refuses."""
    for _ in range(10):
        fmt = rng.choices(list(FORMATS), [WEIGHTS.get(f, 1) for f in FORMATS])[0]
        mode = rng.choice(FORMATS[fmt][0])
        base = crop(rng, photos, random_size(rng, cap))
        try:
            im = fit(fmt, in_mode(base, mode, rng))
            kw = save_kwargs(fmt, rng, im)
            if fmt in MULTI_FRAME and rng.random() < 0.15:
                n = rng.randint(2, 4)
                frames = [fit(fmt, in_mode(base.rotate(90 * i, expand=False), mode, rng))
                          for i in range(1, n)]  # fmt: skip
                kw.update(save_all=True, append_images=frames)
                if fmt == "AVIF":  # Pillow 13 segfaults writing an animated AVIF with EXIF
                    kw.pop("exif", None)  # orientation (its writer; decoding is unaffected)
            return fmt, corpus.encode(im, fmt, **kw)
        except Exception:  # noqa: BLE001 - this combination is not writable: choose again
            continue
    return "JPEG", corpus.encode(crop(rng, photos, (32, 32)), "JPEG")


def break_file(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    how = rng.choice(["truncate", "truncate", "flip", "zero", "garbage-tail", "garbage-head",
                      "header-only"])  # fmt: skip
    b = bytearray(data)
    if how == "truncate":
        b = b[: rng.randint(1, max(1, len(b) - 1))]
    elif how == "flip":
        for _ in range(rng.randint(1, 16)):
            p = rng.randrange(len(b))
            b[p] ^= 1 << rng.randrange(8)
    elif how == "zero":
        p, n = rng.randrange(len(b)), rng.randint(16, 4096)
        b[p : p + n] = bytes(len(b[p : p + n]))
    elif how == "garbage-tail":
        b += rng.randbytes(rng.randint(1, 2048))
    elif how == "garbage-head":
        b = bytearray(rng.randbytes(rng.randint(1, 64))) + b
    else:
        b = b[: rng.randint(8, 64)]
    return how, bytes(b)


def build_set(folder: Path, n: int, seed: int = 1, more_photos: Path | None = None,
              cap: int = 2400) -> list[Path]:  # fmt: skip
    """Write ``n`` files under ``folder`` (in a dozen sub-folders); returns their paths.
    ``cap`` bounds the long side of the generated images (small sets for tests)."""
    rng = random.Random(seed)
    photos = source_photos(more_photos)
    extras = [("empty", b""), ("html", b"<!DOCTYPE html><html>404 Not Found</html>\n"),
              ("bomb", corpus.png_bomb(20000, 20000)), ("gigapixel", corpus.png_bomb(100000, 90000)),
              ("gif-bomb", corpus.gif_bomb()), ("random", rng.randbytes(3000)),
              ("gps", corpus.gps_jpeg())]  # fmt: skip
    paths = []
    for i in range(n):
        if i < len(extras):
            desc, data, ext = extras[i][0], extras[i][1], rng.choice(["jpg", "png", "gif"])
        else:
            fmt, data = make_image_file(rng, photos, cap)
            desc, ext = fmt.lower(), FORMATS[fmt][1]
            if rng.random() < 0.12:
                how, data = break_file(rng, data)
                desc += "-" + how
        r = rng.random()
        if r < 0.08:  # content decides, never the name
            ext = rng.choice(["jpg", "png", "JPG", "heic", "txt"])
        elif r < 0.12:
            ext = ""
        elif r < 0.2:
            ext = ext.upper()
        stem = f"{i:05d}-{desc}"
        if rng.random() < 0.04:
            stem = f"{rng.choice(ODD_NAMES)} {stem}"
        name = stem + ("." + ext if ext else "")
        path = folder / f"set{i % 12:02d}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def reference(path: Path) -> dict | None:
    """The independent expectation for one file (None: Pillow cannot decode it)."""
    data = path.read_bytes()
    want = corpus.expected(data)
    if want is not None:
        try:
            with Image.open(io.BytesIO(data)) as im:
                want["n_frames"] = int(getattr(im, "n_frames", 1))
        except Exception:  # noqa: BLE001 - damaged after frame 0: the count may be unknown
            pass
    return want


def compare(paths: list[Path], rows: list[dict], workers: int = 2) -> tuple[dict, list[str]]:
    """Summary counts and a list of mismatch descriptions (empty when all agree)."""
    bad: list[str] = []
    by_path: dict[str, dict] = {}
    for r in rows:
        p = str(Path(r["path"].removeprefix("file:")))
        if p in by_path:
            bad.append(f"{p}: more than one row")
        by_path[p] = r
    expected_paths = {str(p) for p in paths}
    for p in sorted(set(by_path) - expected_paths):
        bad.append(f"{p}: row for a file not in the set")
    for p in sorted(expected_paths - set(by_path)):
        bad.append(f"{p}: no row")
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            wants = list(pool.map(reference, paths, chunksize=16))
    else:  # in-process (e.g. when this file is loaded by path, not importable by name)
        wants = [reference(p) for p in paths]
    formats, kinds = Counter(), Counter()
    for path, want in zip(paths, wants, strict=True):
        row = by_path.get(str(path))
        if row is None:
            continue
        if want is None:
            kinds[row["error_kind"]] += 1
            if row["error_kind"] is None:
                bad.append(f"{path.name}: features, but Pillow cannot decode it")
            elif not row["error"] or "\n" in row["error"]:
                bad.append(f"{path.name}: error row without a one-line reason")
            continue
        formats[want["format"]] += 1
        kinds[row["error_kind"]] += 1
        if row["error_kind"] is not None:
            bad.append(f"{path.name}: {row['error_kind']} ({row['error']}), Pillow decodes it")
            continue
        diffs = corpus.mismatches(row, want)
        if row["n_frames"] is None and "n_frames" in want:  # unknown count: allowed if damaged
            diffs = [d for d in diffs if not d.startswith("n_frames")]
        if diffs:
            bad.append(f"{path.name}: {'; '.join(diffs[:3])}")
    summary = {
        "files": len(paths),
        "rows": len(rows),
        "decoded": sum(formats.values()),
        "errors": {str(k): v for k, v in sorted(kinds.items(), key=str) if k is not None},
        "formats": dict(formats.most_common()),
        "mismatches": len(bad),
    }
    return summary, bad


def run_job(inp: Path, out: Path) -> tuple[int, float]:
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "spark_jobs.image_features", "--input", str(inp), "--output",
           str(out), "--glob", "*", "--max-side", "0", "--run-id", "verify", "--log-level", "WARNING"]  # fmt: skip
    code = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode
    return code, time.perf_counter() - t


def read_rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(out / "images" / "run_id=verify")
    return table.to_pylist()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it")
    ap.add_argument("--photos", type=Path, help="a folder of more photos to derive files from")
    a = ap.parse_args(argv)
    tmp = None if a.keep else tempfile.TemporaryDirectory(prefix="verify-realworld-")
    base = a.keep or Path(tmp.name)
    try:
        t = time.perf_counter()
        paths = build_set(base / "in", a.files, a.seed, a.photos)
        size = sum(p.stat().st_size for p in paths)
        print(f"built {len(paths)} files ({size / 2**20:.1f} MiB) in {time.perf_counter() - t:.0f} s")
        code, seconds = run_job(base / "in", base / "out")
        print(f"job exit code {code} in {seconds:.0f} s")
        if code != 0:
            return 1
        summary, bad = compare(paths, read_rows(base / "out"), workers=os.cpu_count() or 2)
        for key, value in summary.items():
            print(f"{key}: {value}")
        for line in bad[:30]:
            print("MISMATCH", line)
        return 1 if bad else 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
