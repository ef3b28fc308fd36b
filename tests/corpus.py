"""A corpus of odd, broken and hostile image files, built by the tests themselves.

Everything is generated from the bundled photos in ``samples/`` (so a clean clone suffices):
every Pillow mode, all 8 EXIF orientations, multi-frame files of every kind, HEIF/AVIF,
one file per error kind, decompression bombs made of a few hundred bytes, seeded mutations.

``expected(data)`` is the independent reference: Pillow opens and decodes the first frame,
``ImageOps.exif_transpose`` orients it, the documented mode rules (docs/image-semantics.md)
make it 8-bit gray with Pillow and numpy, and numpy + ImageHash compute the features. It
shares no code with ``udfs``.
"""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps

try:
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover
    pass
Image.init()

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SAMPLE_PHOTOS = sorted(
    p for p in SAMPLES.rglob("*") if p.suffix in (".jpg", ".png") and p.parent.name != "broken"
)
ERROR_KINDS = ("empty", "unsupported_format", "corrupt", "decompression_bomb", "too_large",
               "timeout", "unreadable")  # fmt: skip

# Every mode the issue names; the ones no file format stores are tested in memory only.
ALL_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
             "LAB", "HSV", "I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # fmt: skip

# EXIF orientation -> how the stored pixels must be transposed to show the scene upright.
# Written out here, not imported from udfs.decode: the reference must not share the code it checks.
ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {  # the transpose undoing each of ORIENT's (rotations swap, the rest self-inverse)
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}


# --- source pictures ----------------------------------------------------------------------


def photo(index: int = 0, size: tuple[int, int] = (64, 48), photos=None) -> Image.Image:
    """An RGB crop of a real photo, resized to ``size`` (deterministic for an index)."""
    photos = photos or SAMPLE_PHOTOS
    with Image.open(photos[index % len(photos)]) as im:
        im = im.convert("RGB")
    rng = random.Random(index)
    w, h = im.size
    cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return im.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BILINEAR)


def mode_image(mode: str, base: Image.Image | None = None) -> Image.Image:
    """``base`` (a photo) in ``mode``, with content exercising the mode's conversion rule."""
    base = base or photo(0)
    rgba = base.convert("RGBA")
    rgba.putalpha(base.convert("L").point(lambda v: 40 + v // 2))
    gray16 = np.asarray(base.convert("L"), dtype=np.uint16) * 257 + np.arange(base.width, dtype=np.uint16)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        src = {"RGBA": rgba, "LA": rgba.convert("LA"), "La": rgba.convert("LA").convert("La"),
               "RGBa": rgba.convert("RGBa")}.get(mode)  # fmt: skip
        if mode == "PA":  # palette + alpha: the palette of a quantised copy, alpha kept
            p = base.quantize(64)
            src = p.convert("PA")
            src.putalpha(rgba.getchannel("A"))
        return src
    if mode == "P":
        return base.quantize(64)
    if mode == "LAB":  # the photo's RGB bytes read as L*a*b*: any bytes are valid LAB
        return Image.frombytes("LAB", base.size, base.convert("RGB").tobytes())
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        dtype = {"I;16B": ">u2"}.get(mode, "<u2")
        return Image.frombuffer(mode, base.size, gray16.astype(dtype).tobytes(), "raw", mode, 0, 1)
    if mode == "I":  # values outside 0..65535: the min..max rule
        a = gray16.astype(np.int32) * 3 - 70000
        return Image.fromarray(a, "I")
    if mode == "F":
        a = np.asarray(base.convert("L"), dtype=np.float32) / 7.5 - 3.0
        a[0, 0], a[0, 1], a[1, 0] = np.nan, np.inf, -np.inf
        return Image.fromarray(a, "F")
    return base.convert(mode)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


# --- files of every mode, orientation and frame count ---------------------------------------


def mode_files(base: Image.Image | None = None) -> dict[str, bytes]:
    """name -> bytes of files whose decoded mode covers every mode a file can carry."""
    m = lambda mode: mode_image(mode, base)  # noqa: E731
    i_small = Image.fromarray(np.asarray(m("I;16")).astype(np.int32), "I")  # fits 0..65535
    p_trans = m("P")
    p_trans.info["transparency"] = 3
    files = {
        "1.png": encode(m("1"), "PNG"),
        "1.tif": encode(m("1"), "TIFF"),
        "L.png": encode(m("L"), "PNG"),
        "L.jpg": encode(m("L"), "JPEG"),
        "LA.png": encode(m("LA"), "PNG"),
        "P.png": encode(m("P"), "PNG"),
        "P-transparency.png": encode(p_trans, "PNG"),
        "P-transparency.gif": encode(p_trans, "GIF"),
        "P.bmp": encode(m("P"), "BMP"),
        "PA.tif": encode(m("PA"), "TIFF"),
        "RGB.png": encode(m("RGB"), "PNG"),
        "RGB.jpg": encode(m("RGB"), "JPEG", quality=90),
        "RGB.webp": encode(m("RGB"), "WEBP", lossless=True),
        "RGBA.png": encode(m("RGBA"), "PNG"),
        "RGBA.webp": encode(m("RGBA"), "WEBP", quality=80),
        "RGBa.heic": encode(m("RGBa"), "HEIF"),  # pillow-heif opens premultiplied alpha as RGBa
        "RGBX.jpg": encode(m("RGBX"), "JPEG"),
        "CMYK.jpg": encode(m("CMYK"), "JPEG"),
        "CMYK.tif": encode(m("CMYK"), "TIFF"),
        "YCbCr.tif": encode(m("YCbCr"), "TIFF"),
        "LAB.tif": encode(m("LAB"), "TIFF"),
        "I16.png": encode(m("I;16"), "PNG"),
        "I16.jp2": encode(m("I;16"), "JPEG2000"),
        "I16B.tif": encode(m("I;16B"), "TIFF"),
        "I16L.tif": encode(m("I;16L"), "TIFF"),
        "I16.ppm": encode(m("I;16"), "PPM"),  # 16-bit PGM opens as mode I, values 0..65535
        "I-small.tif": encode(i_small, "TIFF"),
        "I-wide.tif": encode(m("I"), "TIFF"),
        "F.tif": encode(m("F"), "TIFF"),
        "F.pfm": encode(m("F"), "PPM"),
        "RGB.heic": encode(m("RGB"), "HEIF"),
        "RGB.avif": encode(m("RGB"), "AVIF"),
        "RGB.qoi": encode(m("RGB"), "QOI"),
        "RGB.tga": encode(m("RGB"), "TGA"),
    }
    return files


def oriented_files(scene: Image.Image | None = None) -> dict[str, tuple[int, bytes]]:
    """name -> (orientation, bytes): the upright ``scene`` stored as a camera would store it."""
    scene = scene or photo(1, (48, 32))
    out = {}
    for k in range(1, 9):
        stored = scene if k == 1 else scene.transpose(_INVERSE.get(ORIENT[k], ORIENT[k]))
        exif = Image.Exif()
        exif[0x0112] = k
        out[f"orient{k}.jpg"] = (k, encode(stored, "JPEG", quality=95, exif=exif))
        out[f"orient{k}.png"] = (k, encode(stored, "PNG", exif=exif))
        out[f"orient{k}.webp"] = (k, encode(stored, "WEBP", lossless=True, exif=exif))
        out[f"orient{k}.tif"] = (k, encode(stored, "TIFF", tiffinfo={0x0112: k}))
    return out


def multi_frame_files(base: Image.Image | None = None) -> dict[str, tuple[int, bytes]]:
    """name -> (frame count, bytes) of animated and multi-page files; frames differ."""
    base = base or photo(2)
    frames = [base, base.rotate(90), base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    rest = frames[1:]
    return {
        "anim.gif": (3, encode(frames[0], "GIF", save_all=True, append_images=rest, duration=50)),
        "anim.png": (3, encode(frames[0], "PNG", save_all=True, append_images=rest)),
        "anim.webp": (3, encode(frames[0], "WEBP", save_all=True, append_images=rest, lossless=True)),
        "pages.tif": (3, encode(frames[0], "TIFF", save_all=True, append_images=rest)),
        "stereo.mpo": (2, encode(frames[0], "MPO", save_all=True, append_images=rest[:1])),
        "burst.heic": (2, encode(frames[0], "HEIF", save_all=True, append_images=rest[:1])),
        "anim.avif": (3, encode(frames[0], "AVIF", save_all=True, append_images=rest)),
    }


def gps_jpeg() -> bytes:
    """A JPEG whose EXIF has a GPS IFD (52.5 N, 13.4 E) and a camera make."""
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 30.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    return encode(photo(3), "JPEG", exif=exif)


# --- broken and hostile files ----------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid-looking gray PNG declaring width x height with a tiny IDAT (a few rows):
    a few hundred bytes that would need width*height bytes to decode."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def gif_bomb() -> bytes:
    """A GIF whose logical screen and first frame are 65535 x 65535 (4.3 gigapixels)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x08\x02\x4c\x01\x00"
    return screen + frame + b";"


def error_files() -> dict[str, tuple[str, bytes]]:
    """name -> (expected error_kind, bytes), for every kind a file's content can cause."""
    jpg = encode(photo(4), "JPEG")
    png = encode(photo(4), "PNG")
    heic = encode(photo(4), "HEIF")
    bmp = encode(photo(4), "BMP")
    files = {
        "empty.jpg": ("empty", b""),
        "error-page.jpg": ("unsupported_format", b"<!DOCTYPE html><html><body>404</body></html>"),
        "notes.png": ("unsupported_format", b"just some text\n" * 10),
        "archive.tif": ("unsupported_format", b"PK\x03\x04" + bytes(60)),
        "doc.pdf": ("unsupported_format", encode(photo(4), "PDF")),  # Pillow writes, not reads
        "weather.grib": ("unsupported_format", b"GRIB\x00\x00\x00\x01" + bytes(100)),  # a stub
        # videos beside photos (a Live Photo's MOV): MP4 and MOV share HEIF's container
        "clip.mp4": ("unsupported_format", b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
                     + bytes(200)),
        "live.mov": ("unsupported_format", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + bytes(200)),
        "clip.mpg": ("unsupported_format", b"\x00\x00\x01\xb3\x14\x00\xf0\x13\xff\xff\xe0\x18"
                     + bytes(200)),  # Pillow reads the size of MPEG video, nothing more
        "table.bmp": ("unsupported_format", b"BMI table\n18.5 24.9\n" * 20),  # not a bitmap's header
        "header-only.heic": ("corrupt", heic[:200]),
        "header-only.bmp": ("corrupt", bmp[:30]),
        "truncated.jpg": ("corrupt", jpg[: len(jpg) // 2]),
        "truncated.png": ("corrupt", png[: len(png) // 2]),
        "header-only.png": ("corrupt", png[:20]),
        "magic-only.gif": ("corrupt", b"GIF89a"),
        "bad-idat.png": ("corrupt", png[:60] + bytes(200) + png[260:]),
        "bomb-20000.png": ("decompression_bomb", png_bomb(20000, 20000)),
        "bomb-gigapixel.png": ("decompression_bomb", png_bomb(200000, 100000)),
        "bomb-screen.gif": ("decompression_bomb", gif_bomb()),
    }
    # EPS is never read: Pillow would hand it to Ghostscript (where installed)
    files["vector.eps"] = ("unsupported_format", encode(photo(4), "EPS"))
    return files


# --- mutations ---------------------------------------------------------------------------------


def fuzz_seeds(base: Image.Image | None = None) -> dict[str, bytes]:
    """Small real files of the mutated formats (with EXIF where the format has it)."""
    base = base or photo(5, (40, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    anim = [base, base.rotate(180)]
    return {
        "jpg": encode(base, "JPEG", exif=exif, quality=85),
        "png": encode(base, "PNG", exif=exif),
        "gif": encode(base, "GIF", save_all=True, append_images=anim[1:]),
        "tif": encode(base, "TIFF", tiffinfo={0x0112: 3}, compression="tiff_lzw"),
        "webp": encode(base, "WEBP", exif=exif, quality=70),
    }


def mutations(seed: int, n: int, seeds: dict[str, bytes] | None = None) -> Iterator[tuple[str, bytes]]:
    """``n`` seeded (name, bytes) variants: bit flips, truncations, both, overwritten runs."""
    seeds = seeds or fuzz_seeds()
    rng = random.Random(seed)
    exts = sorted(seeds)
    for i in range(n):
        ext = exts[i % len(exts)]
        data = bytearray(seeds[ext])
        how = rng.choice(("flip", "flip", "truncate", "flip+truncate", "splat"))
        if "flip" in how:
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(len(data))
                data[pos] ^= 1 << rng.randrange(8)
        if "truncate" in how:
            data = data[: rng.randrange(1, len(data))]
        if how == "splat":  # a run of random bytes over a header or a chunk table
            pos = rng.randrange(len(data))
            data[pos : pos + 16] = rng.randbytes(16)
        yield f"fuzz-{i:04d}-{how}.{ext}", bytes(data)


# --- the independent reference -----------------------------------------------------------------


def reference_gray(im: Image.Image) -> np.ndarray:
    """8-bit gray of a decoded, oriented image by the documented mode rules (uint8 array)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        if mode != "I" or (a.size and a.min() >= 0 and a.max() <= 65535):
            return np.floor(a / 257 + 0.5).astype(np.uint8)
        return _stretch(a)
    if mode == "F":
        a = np.asarray(im).astype(np.float64)
        return _stretch(a)
    if mode == "LAB":
        return np.asarray(im)[:, :, 0].copy()
    if mode == "La":
        return np.asarray(im.convert("LA").convert("L"))
    if mode in ("P", "PA"):
        return np.asarray(im.convert("RGBA").convert("L"))
    return np.asarray(im.convert("L"))


def _stretch(a: np.ndarray) -> np.ndarray:
    """Finite min..max -> 0..255, rounded half to even; non-finite and constant -> 0."""
    ok = np.isfinite(a)
    out = np.zeros(a.shape, dtype=np.uint8)
    if ok.any():
        lo, hi = a[ok].min(), a[ok].max()
        if hi > lo:
            # the documented formula: (v - lo) * 255 / (hi - lo), product first (exact)
            out[ok] = np.clip(np.round((a[ok] - lo) * 255 / (hi - lo)), 0, 255).astype(np.uint8)
    return out


def open_reference(data: bytes) -> Image.Image:
    """Pillow's first frame, decoded and oriented (raises when Pillow cannot decode it)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - unreadable EXIF counts as absent (documented)
        return im


def features_of(g: np.ndarray) -> dict:
    """Features of an 8-bit gray array with numpy and ImageHash, from their definitions."""
    f = g.astype(np.float64)
    hist = np.bincount(g.ravel(), minlength=256)
    p = hist[hist > 0] / g.size
    if min(g.shape) >= 3:
        lap = f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:] - 4 * f[1:-1, 1:-1]
        sharp = float(lap.var())
    else:
        sharp = 0.0
    return {
        "width": g.shape[1],
        "height": g.shape[0],
        "gray_mean": float(f.mean()),
        "gray_std": float(f.std()),
        "gray_hist": hist.tolist(),
        "entropy": float(-(p * np.log2(p)).sum()) + 0.0,
        "sharpness": sharp,
        "dhash": str(imagehash.dhash(Image.fromarray(g, "L"))),
    }


def expected(data: bytes) -> dict | None:
    """Full-resolution features of the file by the reference, or None if Pillow can't decode
    it, or if the job must not (EPS: Pillow would hand it to Ghostscript)."""
    if not data:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = open_reference(data)
            if im.format == "EPS":
                return None
            return {"format": im.format or Image.open(io.BytesIO(data)).format,
                    "mode": Image.open(io.BytesIO(data)).mode, **features_of(reference_gray(im))}
        except Exception:  # noqa: BLE001 - anything Pillow raises means: not decodable
            return None


def expected_reduced(data: bytes, max_side: int) -> dict:
    """Analysis-image features at ``--max-side`` by README's definition: a JPEG decoded by
    libjpeg at a 1/2, 1/4 or 1/8 DCT scale, luma only (Pillow's ``draft`` to the final size,
    long side ``max_side``), any image's gray then shrunk with ``thumbnail`` (bicubic), then
    oriented. For files Pillow decodes; EXIF orientation by ORIENT."""
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if im.format == "JPEG" and max(w, h) > max_side:
        im.draft("L", (round(w * max_side / max(w, h)), round(h * max_side / max(w, h))))
        assert im.mode == "L"  # luma straight from the decoder
    small = Image.fromarray(reference_gray(im), "L")
    small.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    k = im.getexif().get(0x0112)
    g = np.asarray(small.transpose(ORIENT[k]) if k in ORIENT else small)
    out = features_of(g)
    out["analysis_width"], out["analysis_height"] = out.pop("width"), out.pop("height")
    return out


def mismatches(row: dict, want: dict, tol: float = 1e-6) -> list[str]:
    """Field-by-field differences: histogram, hash, ints and strings exact; floats to ``tol``."""
    bad = []
    for key, w in want.items():
        got = row.get(key)
        if isinstance(got, np.ndarray):
            got = got.tolist()
        if isinstance(w, float):
            if got is None or abs(got - w) > tol * max(1.0, abs(w)):
                bad.append(f"{key}: {got} != {w}")
        elif got != w:
            bad.append(f"{key}: {str(got)[:60]} != {str(w)[:60]}")
    return bad


def write(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in files.items():
        p = folder / name
        p.write_bytes(data)
        out.append(p)
    return out


def all_files() -> dict[str, bytes]:
    """The whole corpus as name -> bytes (errors, modes, orientations, frames, GPS)."""
    files = {name: data for name, (_, data) in error_files().items()}
    files.update(mode_files())
    files.update({n: d for n, (_, d) in oriented_files().items()})
    files.update({n: d for n, (_, d) in multi_frame_files().items()})
    files["gps.jpg"] = gps_jpeg()
    return files

