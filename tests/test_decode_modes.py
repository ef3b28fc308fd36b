"""Every Pillow mode, EXIF orientation, multi-frame and container format, decoded on purpose.

Expected values come from tests/corpus.py (Pillow + numpy + ImageHash, no project code).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests import corpus
from udfs import decode as dec
from udfs.extract import ExtractOptions, image_row

FULL = ExtractOptions(max_side=0)


@pytest.mark.parametrize("mode", corpus.ALL_MODES)
def test_every_mode_converts_by_the_documented_rule(mode):
    im = corpus.mode_image(mode)
    assert im.mode == mode
    got = np.asarray(dec.to_gray(im))
    assert got.dtype == np.uint8 and got.shape == (im.height, im.width)
    assert np.array_equal(got, corpus.reference_gray(im))


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "RGBa", "RGBX", "CMYK",
                                  "YCbCr", "HSV"])  # fmt: skip
def test_8bit_modes_follow_pillow_convert_exactly(mode):
    im = corpus.mode_image(mode)
    assert np.array_equal(np.asarray(dec.to_gray(im)), np.asarray(im.convert("L")))


def test_palette_with_transparency_goes_through_rgba():
    p = corpus.mode_image("P")
    p.info["transparency"] = 0
    want = p.convert("RGBA").convert("L")
    assert np.array_equal(np.asarray(dec.to_gray(p)), np.asarray(want))


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I;16N"])
def test_16bit_is_value_over_257_rounded(mode):
    values = np.array([[0, 128, 129, 385, 386, 32767, 65535, 257]], dtype=np.uint16)
    dtype = ">u2" if mode == "I;16B" else "<u2"
    im = Image.frombuffer(mode, (8, 1), values.astype(dtype).tobytes(), "raw", mode, 0, 1)
    assert np.asarray(dec.to_gray(im)).tolist() == [[0, 0, 1, 1, 2, 127, 255, 1]]


def test_mode_i_uses_257_when_it_fits_else_min_max():
    fits = Image.fromarray(np.array([[0, 257, 65535]], dtype=np.int32), "I")
    assert np.asarray(dec.to_gray(fits)).tolist() == [[0, 1, 255]]
    wide = Image.fromarray(np.array([[-100, 0, 100, 70000]], dtype=np.int32), "I")
    assert np.asarray(dec.to_gray(wide)).tolist() == [[0, 0, 1, 255]]
    flat = Image.fromarray(np.full((2, 2), -7, dtype=np.int32), "I")
    assert np.asarray(dec.to_gray(flat)).tolist() == [[0, 0], [0, 0]]


def test_stretch_rounds_exact_ties_half_to_even():
    # 25 * 255 / 50 = 127.5 exactly -> 128 (even); 25 * (255 / 50) computes 127.49999... -> 127
    wide = Image.fromarray(np.array([[-70000 + v for v in (0, 25, 50)]], dtype=np.int32), "I")
    assert np.asarray(dec.to_gray(wide)).tolist() == [[0, 128, 255]]
    f = Image.fromarray(np.array([[0.0, 25.0, 50.0]], dtype=np.float32), "F")
    assert np.asarray(dec.to_gray(f)).tolist() == [[0, 128, 255]]


def test_mode_f_uses_finite_min_max_and_zero_for_the_rest():
    a = np.array([[np.nan, -1.0, 0.0, 1.0, np.inf, -np.inf]], dtype=np.float32)
    assert np.asarray(dec.to_gray(Image.fromarray(a, "F"))).tolist() == [[0, 0, 128, 255, 0, 0]]
    nothing = np.full((1, 3), np.nan, dtype=np.float32)
    assert np.asarray(dec.to_gray(Image.fromarray(nothing, "F"))).tolist() == [[0, 0, 0]]


@pytest.fixture(scope="module")
def mode_files():
    return corpus.mode_files()


def test_mode_files_cover_every_mode_a_file_can_hold(mode_files):
    opened = {Image.open(corpus.io.BytesIO(d)).mode for d in mode_files.values()}
    assert {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "I;16",
            "I;16B", "I", "F"} <= opened  # fmt: skip


def test_mode_files_match_the_reference(mode_files):
    for name, data in mode_files.items():
        row, want = image_row(data, FULL), corpus.expected(data)
        assert want is not None, name
        assert row["error_kind"] is None, (name, row["error"])
        assert corpus.mismatches(row, want) == [], name


@pytest.mark.parametrize("k", range(1, 9))
def test_orientation_shows_the_scene_upright(k):
    scene = corpus.photo(1, (48, 32))
    upright = np.asarray(scene.convert("L"), dtype=np.int16)
    for name, (orientation, data) in corpus.oriented_files(scene).items():
        if orientation != k:
            continue
        d = dec.decode(data, 0)
        got = np.asarray(d.gray, dtype=np.int16)
        assert (d.width, d.height) == scene.size == d.gray.size, name
        assert d.orientation == k, name
        if name.endswith(".jpg"):  # lossy: close, and far closer than any wrong orientation
            assert np.abs(got - upright).mean() < 4, name
        else:
            assert np.array_equal(got, upright), name
        assert corpus.mismatches(image_row(data, FULL), corpus.expected(data)) == [], name


@pytest.mark.parametrize("k", range(1, 9))
def test_orientation_applies_on_the_reduced_jpeg_path(k):
    scene = corpus.photo(6, (320, 200))
    stored = scene if k == 1 else scene.transpose(corpus._INVERSE.get(corpus.ORIENT[k], corpus.ORIENT[k]))
    exif = Image.Exif()
    exif[0x0112] = k
    data = corpus.encode(stored, "JPEG", quality=95, exif=exif)
    row = image_row(data, ExtractOptions(max_side=80))
    assert (row["width"], row["height"]) == (320, 200)
    assert (row["analysis_width"], row["analysis_height"]) == (80, 50)
    d = dec.decode(data, 80)
    small = scene.convert("L").resize((80, 50), Image.Resampling.BICUBIC)
    assert np.abs(np.asarray(d.gray, np.int16) - np.asarray(small, np.int16)).mean() < 6


def test_default_reduced_path_matches_its_definition_exactly():
    """--max-side 512 against corpus.expected_reduced (draft for JPEG, then thumbnail,
    bicubic): the samples, a wide PNG, JPEGs drafted at 1/4 and 1/8, a gray portrait JPEG."""
    files = {p.name: p.read_bytes() for p in corpus.SAMPLE_PHOTOS}
    files |= {"wide.png": corpus.encode(corpus.photo(7, (900, 300)), "PNG"),
              "quarter.jpg": corpus.encode(corpus.photo(8, (2100, 1500)), "JPEG", quality=90),
              "eighth.jpg": corpus.encode(corpus.photo(9, (4200, 2800)), "JPEG", quality=90),
              "tall-gray.jpg": corpus.encode(corpus.photo(10, (500, 1300)).convert("L"), "JPEG")}
    for name, data in files.items():
        row = image_row(data, ExtractOptions(max_side=512))
        assert row["error_kind"] is None and max(row["analysis_width"], row["analysis_height"]) <= 512
        assert corpus.mismatches(row, corpus.expected_reduced(data, 512), tol=1e-12) == [], name


def test_multi_frame_files_analyse_the_first_frame_and_count_frames():
    for name, (n, data) in corpus.multi_frame_files().items():
        row = image_row(data, FULL)
        assert row["n_frames"] == n, name
        assert corpus.mismatches(row, corpus.expected(data)) == [], name


def test_frames_are_counted_without_decoding_them(monkeypatch):
    """Decoder instances created: decode() needs exactly those of loading frame 0 alone."""
    made = []
    real = Image._getdecoder

    def spy(*args, **kwargs):
        made.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(Image, "_getdecoder", spy)
    for name, (n, data) in corpus.multi_frame_files().items():
        if name.endswith((".gif", ".tif", ".png")):
            made.clear()
            Image.open(corpus.io.BytesIO(data)).load()
            first_frame = len(made)
            made.clear()
            assert dec.decode(data, 0).n_frames == n
            assert len(made) == first_frame > 0, name


def test_frame_counts_a_header_declares_need_no_second_handle(monkeypatch):
    monkeypatch.setattr(dec, "count_frames", lambda data: pytest.fail("opened a second time"))
    for name, (n, data) in corpus.multi_frame_files().items():
        if name.endswith((".png", ".webp", ".avif")):
            assert dec.decode(data, 0).n_frames == n, name


def test_damage_after_the_first_frame_keeps_its_features():
    """Frame 0 intact: its features stand; n_frames counts the frames seeking finds."""
    n, data = corpus.multi_frame_files()["anim.gif"]
    assert n == 3
    # the last frame's pixels cut short (its header stays: found), then half the file gone
    for cut, found in ((data[:-40], 3), (data[: len(data) // 2], 2)):
        row = image_row(cut, FULL)
        assert row["error_kind"] is None and corpus.mismatches(row, corpus.expected(cut)) == []
        assert row["n_frames"] == found


def test_format_comes_from_content_not_name(tmp_path):
    png = corpus.encode(corpus.photo(0), "PNG")
    assert image_row(png, FULL)["format"] == "PNG"  # no name at all: bytes only
    assert dec.decode(corpus.mode_files()["RGB.heic"], 0).format == "HEIF"
    assert dec.decode(corpus.mode_files()["RGB.avif"], 0).format == "AVIF"


@pytest.mark.parametrize("k", range(1, 9))
def test_orientation_only_in_xmp_is_applied_and_reported(k):
    """A TIFF whose orientation is only XMP's tiff:Orientation: Pillow applies it while
    loading, although the size it reports at open ignores it."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    scene = corpus.photo(1, (48, 32))
    stored = scene if k == 1 else scene.transpose(corpus._INVERSE.get(corpus.ORIENT[k], corpus.ORIENT[k]))
    info = ImageFileDirectory_v2()
    info[700] = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
                 b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
                 b' tiff:Orientation="%d"/></rdf:RDF></x:xmpmeta>' % k)
    info.tagtype[700] = 1
    d = dec.decode(corpus.encode(stored, "TIFF", tiffinfo=info), 0)
    assert (d.orientation, d.width, d.height) == (k, *scene.size)
    assert np.array_equal(np.asarray(d.gray), np.asarray(scene.convert("L")))


@pytest.mark.parametrize("k", [3, 6])
def test_heif_reports_the_files_orientation_and_shows_what_libheif_shows(k):
    """pillow-heif has libheif apply HEIF's own rotation and resets the EXIF tag to 1: the
    job reports the file's tag, and rotates nothing more (Pillow's view, pixel for pixel)."""
    exif = Image.Exif()
    exif[0x0112] = k
    data = corpus.encode(corpus.photo(1, (48, 32)), "HEIF", exif=exif, quality=95)
    row = image_row(data, FULL)
    assert row["orientation"] == k
    assert corpus.mismatches(row, corpus.expected(data)) == []


def test_orientation_is_read_exactly_as_exif_transpose_reads_it():
    from PIL.TiffImagePlugin import IFDRational

    cases = [(6, 6), (6.0, 6), (IFDRational(6, 1), 6), (1, 1), (0, None), (9, None),
             ("6", None), (6.5, None), ((6, 6), None), (b"6", None)]  # fmt: skip
    for value, want in cases:
        assert dec.read_orientation({0x0112: value}) == want, value
    assert dec.read_orientation({0x0112: [6]}) is None  # unhashable: ignored, no exception
    assert dec.read_orientation({}) is None


_CHILD = """
import json, sys
from udfs.extract import ExtractOptions, image_row
row = image_row(open(sys.argv[1], "rb").read(), ExtractOptions(max_side=0))
print(json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in row.items()}))
"""


def test_result_does_not_depend_on_what_the_worker_decoded_before(tmp_path):
    """Each file alone in a fresh interpreter vs. after every other format in this one."""
    files = {**corpus.mode_files(), **{n: d for n, (_, d) in corpus.multi_frame_files().items()}}
    for data in files.values():  # warm this process up with every plugin first
        image_row(data, FULL)
    picked = ["RGB.heic", "RGB.avif", "RGB.tga", "anim.webp", "I16.jp2", "F.pfm", "RGB.qoi"]
    for name in picked:
        path = tmp_path / name
        path.write_bytes(files[name])
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                             text=True, check=True, cwd=corpus.ROOT)  # fmt: skip
        alone = json.loads(out.stdout)
        here = image_row(files[name], FULL)
        here["gray_hist"] = here["gray_hist"].tolist()
        assert alone == here, name


def _verify_script():
    import importlib.util

    path = corpus.ROOT / "scripts" / "verify_realworld.py"
    spec = importlib.util.spec_from_file_location("verify_realworld", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.spark
def test_small_realworld_set_matches_pillow_through_spark(spark, tmp_path):
    """scripts/verify_realworld.py at 150 files (samples/ photos only), in this session."""
    from tests.conftest import run_job

    vr = _verify_script()
    paths = vr.build_set(tmp_path / "in", 150, seed=3, cap=320)
    code = run_job("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                   "--glob", "*", "--max-side", "0", "--run-id", "small")  # fmt: skip
    assert code == 0
    rows = [r.asDict() for r in spark.read.parquet(str(tmp_path / "out" / "images")).collect()]
    summary, bad = vr.compare(paths, rows, workers=1)
    assert bad == [], bad[:10]
    assert summary["rows"] == summary["files"] == 150
    assert summary["decoded"] > 100 and len(summary["formats"]) >= 12, summary
