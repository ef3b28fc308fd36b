"""Encoded bytes -> the oriented 8-bit grayscale analysis image, with every failure classified.

Semantics (README "Image semantics" documents each choice):
  * the format is detected from the content by Pillow, never from the file name; every plugin
    (HEIF through pillow-heif, AVIF through Pillow) is registered when this module is imported,
    so a result never depends on which files a worker decoded before;
  * the first frame of a multi-frame file is analysed, decoded from a fresh open exactly as a
    single-frame file; ``n_frames`` is the count the header declares (PNG, WebP, AVIF, HEIF)
    or, for the others, the frames found by seeking on a second handle, without decoding
    them (null when seeking fails);
  * the declared pixel count is checked against ``max_pixels`` from the header, before any
    pixel is decoded; Pillow's own bomb check (for sizes found later, e.g. an ICO's embedded
    PNG) is moved to the same limit while decoding;
  * EXIF orientation (tag 0x0112, or XMP tiff:Orientation, read by ``getexif`` and honoured for
    exactly the values ``ImageOps.exif_transpose`` honours) is applied after the grayscale
    conversion (transposes commute with per-pixel conversion; a third of the data); unreadable
    EXIF counts as absent;
  * 8-bit modes become gray exactly as ``convert('L')`` (ITU-R BT.601: L = R*299/1000 +
    G*587/1000 + B*114/1000); palette images go through RGBA; La goes through LA (un-
    premultiplied, as Pillow does for RGBa); LAB uses its L* band (Pillow cannot convert it);
    16-bit modes are scaled by value / 257 (rounded); mode I likewise when its values fit
    0..65535, otherwise by its min..max; mode F by its finite min..max (non-finite pixels -> 0);
  * with ``max_side`` > 0 the analysis image is at most that many pixels on its long side:
    JPEGs are decoded reduced in the DCT domain (``draft``, luma only), then every image is
    shrunk with ``thumbnail`` (bicubic). ``width``/``height`` always describe the full image.
"""

from __future__ import annotations

import io
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import EpsImagePlugin, Image, ImageFile, UnidentifiedImageError

from udfs import errors

try:  # HEIC/HEIF from phones; optional at run time, declared as a dependency
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - the job still runs, HEIF files become unsupported
    pass
Image.init()  # register every plugin now: open() must not depend on what was opened before
# Every reader but EPS, which would hand untrusted bytes to Ghostscript (where installed).
# Pillow tries them in this order; the common formats, each recognised by its magic bytes,
# go first: readers that take any bytes (IM, IPTC, TGA, ...) otherwise each cost a failed
# open before a JPEG or WebP is reached (opening a JPEG 28 -> 14 us).
_COMMON_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")
READ_FORMATS = _COMMON_FORMATS + tuple(
    f for f in Image.ID if f != "EPS" and f not in _COMMON_FORMATS
)
warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit

# Pillow refuses images above twice MAX_IMAGE_PIXELS: that is the default --max-pixels.
PILLOW_PIXEL_LIMIT = 2 * Image.MAX_IMAGE_PIXELS

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {  # EXIF orientation -> the transpose that shows the image upright (exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = {5, 6, 7, 8}
_VIA_RGBA = {"P", "PA"}
_VIA_LA = {"La"}
_FIRST_BAND = {"LAB"}
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}
_DRAFTABLE = {"JPEG", "MPO"}
# Leading bytes of image formats: a file that starts like an image but cannot be opened is
# corrupt (e.g. truncated inside its header); anything else is an unsupported format.
_IMAGE_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
    b"\x00\x00\x01\x00",  # ICO
    b"8BPS",  # PSD
    b"II+\x00",  # BigTIFF
    b"MM\x00+",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000 (JP2)
    b"\xff\x4f\xff\x51",  # JPEG 2000 codestream
    b"qoif",
    b"icns",
    b"DDS ",
    b"BLP1",
    b"BLP2",
    b"\x01\xda",  # SGI
)
_NETPBM = re.compile(rb"^P[1-7F][ \t\r\n#]")
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}  # the DIB header sizes bitmaps have
_HEIF_BRANDS = {b"mif1", b"msf1", b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis",
                b"avif", b"avis"}
# Formats Pillow identifies but has no decoder for (besides its stub plugins).
_IDENTIFY_ONLY = {"MPEG"}


@dataclass
class Decoded:
    """What decoding one file yields: header facts and the analysis image."""

    format: str
    mode: str
    n_frames: int | None  # None: seeking through the frames failed
    width: int  # after orientation, full resolution
    height: int
    orientation: int | None
    exif: Image.Exif
    gray: Image.Image  # mode L, oriented, long side <= max_side when max_side > 0


def _looks_like_image(data: bytes) -> bool:
    if data.startswith(_IMAGE_MAGIC):
        return True
    if data[:2] == b"BM":  # two letters a text can start with: the header's size field too
        return int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    if _NETPBM.match(data):
        return True
    return data[4:8] == b"ftyp" and not _HEIF_BRANDS.isdisjoint(_ftyp_brands(data))


def _ftyp_brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base media file's ftyp box: what tells a
    HEIF or AVIF image from an MP4 or MOV video, which share the container."""
    end = min(int.from_bytes(data[:4], "big"), len(data), 256)  # real ones list a few brands
    return {data[8:12]} | {data[i:i + 4] for i in range(16, end - 3, 4)}


def _unopened(data: bytes, why: str) -> errors.ImageError:
    """A file no reader opened: corrupt if it starts like an image, else not an image."""
    head = data[:16].hex(" ")
    if _looks_like_image(data):
        return errors.ImageError(errors.CORRUPT, f"{why} (starts like an image: {head})")
    return errors.ImageError(
        errors.UNSUPPORTED_FORMAT, f"not an image format Pillow can read (starts {head})"
    )


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Identify the format from the bytes and check the declared size; decode nothing yet."""
    if not data:
        raise errors.ImageError(errors.EMPTY, "file has 0 bytes")
    try:
        im = Image.open(io.BytesIO(data), formats=READ_FORMATS)
    except UnidentifiedImageError:
        raise _unopened(data, "header unreadable") from None
    except Image.DecompressionBombError as e:
        raise errors.ImageError(errors.DECOMPRESSION_BOMB, str(e)) from None
    except MemoryError as e:
        raise errors.ImageError(errors.DECOMPRESSION_BOMB, errors.describe(e)) from None
    except Exception as e:  # noqa: BLE001 - a plugin failing on a damaged header
        raise _unopened(data, errors.describe(e)) from None
    # Formats Pillow identifies but cannot decode here are unsupported, not corrupt: stubs
    # (GRIB, BUFR, HDF5, WMF: the job registers no handler), MPEG video, and EPS without
    # Ghostscript.
    if isinstance(im, ImageFile.StubImageFile) or im.format in _IDENTIFY_ONLY:
        raise errors.ImageError(errors.UNSUPPORTED_FORMAT, f"{im.format}: no decoder installed")
    if im.format == "EPS" and not EpsImagePlugin.has_ghostscript():
        raise errors.ImageError(errors.UNSUPPORTED_FORMAT, "EPS: needs Ghostscript, not installed")
    w, h = im.size
    if w * h > max_pixels:
        raise errors.ImageError(
            errors.DECOMPRESSION_BOMB,
            f"{w}x{h} = {w * h} pixels declared, above the limit of {max_pixels}",
        )
    if w <= 0 or h <= 0:
        raise errors.ImageError(errors.CORRUPT, f"invalid size {w}x{h}")
    return im


def read_orientation(exif) -> int | None:
    """The EXIF orientation 1..8, else None (absent, or a value exif_transpose ignores).

    Matched as ``ImageOps.exif_transpose`` matches it (a dict lookup: 6, 6.0 and the
    rational 6/1 rotate; "6", 6.5 or a tuple do not), so both always agree.
    """
    value = exif.get(_ORIENTATION_TAG)
    try:
        if value == 1 or value in _TRANSPOSE:
            return int(value)
    except (TypeError, ValueError):  # unhashable or odd values: ignored, like exif_transpose
        pass
    return None


def _scale_to_u8(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map lo -> 0, hi -> 255: ``(a - lo) * 255 / (hi - lo)`` in float64, rounded half
    to even; a constant image maps to 0.

    Multiplying before dividing keeps the product exact for 32-bit inputs, so the one
    division rounds correctly and ties (x.5) are decided exactly, not by a stray ulp.
    """
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    out = np.rint((a - lo) * 255.0 / (hi - lo))
    return np.clip(out, 0, 255).astype(np.uint8)


def to_gray(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit mode L, by the rules in this module's docstring."""
    mode = im.mode
    if mode == "L":
        im.load()
        return im
    if mode in _VIA_RGBA:
        return im.convert("RGBA").convert("L")
    if mode in _VIA_LA:
        return im.convert("LA").convert("L")
    if mode in _FIRST_BAND:
        return im.getchannel(0)
    if mode in _SIXTEEN_BIT:
        a = np.asarray(im).astype(np.uint32)
        return Image.fromarray(((a + 128) // 257).astype(np.uint8), "L")
    if mode == "I":
        a = np.asarray(im, dtype=np.int64)
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo >= 0 and hi <= 65535:
            return Image.fromarray(((a + 128) // 257).astype(np.uint8), "L")
        return Image.fromarray(_scale_to_u8(a.astype(np.float64), lo, hi), "L")
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        finite = np.isfinite(a)
        if not finite.any():
            return Image.new("L", im.size, 0)
        lo, hi = float(a[finite].min()), float(a[finite].max())
        out = _scale_to_u8(np.where(finite, a, lo), lo, hi)
        out[~finite] = 0
        return Image.fromarray(out, "L")
    try:
        return im.convert("L")
    except ValueError as e:  # a mode Pillow opens but cannot convert
        raise errors.ImageError(errors.UNSUPPORTED_FORMAT, f"mode {mode}: {e}") from None


def load_reduced(im: Image.Image, max_side: int) -> None:
    """Decode the pixels of the current frame; JPEGs straight at a reduced scale if allowed."""
    w, h = im.size
    if max_side > 0 and max(w, h) > max_side and im.format in _DRAFTABLE:
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale, luma only: the cheapest way to a small image
        scale = max_side / max(w, h)
        im.draft("L", (max(1, round(w * scale)), max(1, round(h * scale))))
    # Decode before anything else reads the image: a failed load leaves Pillow with a
    # half-filled image that a second load() would return silently (PNG's getexif loads).
    im.load()


def analysis_image(im: Image.Image, max_side: int) -> Image.Image:
    """The mode-L image features are computed on (not yet oriented)."""
    gray = to_gray(im)
    if max_side > 0 and max(gray.size) > max_side:
        gray.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return gray


def count_frames(data: bytes) -> int | None:
    """Frames in the file, counted on a fresh handle by seeking (no pixel decoding).

    None when the file breaks after its first frame (the features of that frame stand).
    """
    try:
        with Image.open(io.BytesIO(data), formats=READ_FORMATS) as im:
            return int(getattr(im, "n_frames", 1) or 1)
    except Exception:  # noqa: BLE001 - damage after the first frame does not void it
        return None


def _oriented_by_plugin(im: Image.Image) -> int | None:
    """The orientation of a file whose plugin shows it upright itself, and resets the tag:
    pillow-heif (libheif applies the file's rotation; the tag becomes 1) and Pillow's TIFF
    reader (it transposes while loading, by the EXIF tag or XMP, and drops the tag)."""
    if im.format == "HEIF":
        return read_orientation({_ORIENTATION_TAG: im.info.get("original_orientation")})
    if im.format == "TIFF":
        try:
            return read_orientation(im.getexif())  # read before loading: no pixels decoded
        except Exception:  # noqa: BLE001 - unreadable EXIF counts as absent
            return None
    return None


@contextmanager
def _pixel_limit(max_pixels: int):
    """Pillow refuses images above 2 * MAX_IMAGE_PIXELS where it checks (open, ICO/ICNS
    members...): align that with ``max_pixels`` for the duration of one decode."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = -(-max_pixels // 2)
    try:
        with warnings.catch_warnings():
            # Pillow warns about odd but readable files (corrupt EXIF, bomb size): not errors
            # here, and a -W error interpreter must not turn them into failures.
            warnings.simplefilter("ignore")
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def decode(data: bytes, max_side: int, max_pixels: int = PILLOW_PIXEL_LIMIT) -> Decoded:
    """Decode one encoded image into header facts and its oriented analysis image.

    Raises ``errors.ImageError`` for every failure, whatever the decoder raised.
    """
    with _pixel_limit(max_pixels):
        return _decode(data, max_side, max_pixels)


def _decode(data: bytes, max_side: int, max_pixels: int) -> Decoded:
    im = open_image(data, max_pixels)
    try:
        fmt, mode = im.format or "unknown", im.mode
        w, h = im.size
        oriented_by_plugin = _oriented_by_plugin(im)
        load_reduced(im, max_side)
        if fmt == "TIFF":  # upright once loaded, also by an XMP orientation the open ignored
            w, h = im.size
        try:
            exif = im.getexif()
            orientation = read_orientation(exif)
        except Exception:  # noqa: BLE001 - unreadable EXIF: the pixels are fine; treat as absent
            exif, orientation = Image.Exif(), None
        gray = analysis_image(im, max_side)
        method = _TRANSPOSE.get(orientation or 1)
        if method is not None:
            gray = gray.transpose(method)
        if orientation in _SWAPS_SIDES:
            w, h = h, w
        if oriented_by_plugin is not None:  # the tag the file had: its pixels are upright now
            orientation = oriented_by_plugin
        # Only multi-frame plugins have n_frames. PNG, WebP and AVIF count the frames at open
        # (an attribute); the others' property may seek, so it is read on a second handle
        # (``gray`` may be ``im`` itself).
        if "n_frames" in vars(im):
            n_frames = int(im.n_frames or 1)
        else:
            n_frames = count_frames(data) if hasattr(type(im), "n_frames") else 1
        return Decoded(fmt, mode, n_frames, w, h, orientation, exif, gray)
    except errors.ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise errors.ImageError(errors.DECOMPRESSION_BOMB, str(e)) from None
    except MemoryError as e:
        raise errors.ImageError(errors.DECOMPRESSION_BOMB, errors.describe(e)) from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is data about this file
        raise errors.ImageError(errors.CORRUPT, errors.describe(e)) from None
