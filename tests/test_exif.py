"""EXIF facts from their tags: capture time as ISO 8601, only when it is a real date; camera;
GPS position, only when asked."""

from __future__ import annotations

import io
import struct
import warnings

import pytest
from PIL import Image

from udfs.exif import exif_facts, iso_datetime


@pytest.mark.parametrize("value, want", [
    ("2024:05:01 12:00:00", "2024-05-01T12:00:00"),
    (b"2024:02:29 23:59:59\x00", "2024-02-29T23:59:59"),  # bytes, NUL-padded, a leap day
    ("2021:05:06T07:08:09+02:00", "2021-05-06T07:08:09"),  # a zone after it is dropped
    ("0000:00:00 00:00:00", None),  # what cameras write when the clock is unset
    ("2024:13:45 99:99:99", None),
    ("2024:00:00 00:00:00", None),
    ("2023:02:29 10:00:00", None),
    ("    :  :     :  :  ", None),
    ("2024-05-01 12:00:00", None),  # not EXIF's format
    (None, None),
    (20240501, None),
])  # fmt: skip
def test_capture_time_is_iso_8601_only_when_it_is_a_real_date(value, want):
    assert iso_datetime(value) == want


def _exif_with_a_broken_tag() -> Image.Exif:
    """IFD0: Make, DateTime and a pointer to the EXIF IFD, which holds DateTimeOriginal, then
    a MakerNote whose data lies past the end (Pillow warns as it skips that tag)."""
    make, dt, dto = b"Canon\x00", b"2020:01:02 03:04:05\x00", b"2021:05:06 07:08:09\x00"
    exif_ifd = 8 + 2 + 3 * 12 + 4
    data_at = exif_ifd + 2 + 2 * 12 + 4

    def entry(tag: int, typ: int, count: int, value: int) -> bytes:
        return struct.pack("<HHLL", tag, typ, count, value)

    raw = (b"II*\x00" + struct.pack("<LH", 8, 3) + entry(0x010F, 2, len(make), data_at)
           + entry(0x0132, 2, len(dt), data_at + len(make)) + entry(0x8769, 4, 1, exif_ifd)
           + struct.pack("<LH", 0, 2) + entry(0x9003, 2, len(dto), data_at + len(make) + len(dt))
           + entry(0x927C, 7, 64, 4000) + struct.pack("<L", 0) + make + dt + dto)
    exif = Image.Exif()
    exif.load(raw)
    return exif


def test_a_broken_tag_loses_only_itself_and_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # python -W error: a warning raised lost the IFD's facts
        facts = exif_facts(_exif_with_a_broken_tag())
    assert (facts["camera_make"], facts["exif_datetime"]) == ("Canon", "2021-05-06T07:08:09")


def test_camera_and_a_south_west_position_only_when_gps_is_kept():
    """References S and W make the coordinates negative; without keep_gps, no position."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D"
    exif.get_ifd(0x8825).update({1: "S", 2: (33.0, 51.0, 36.0), 3: "W", 4: (151.0, 12.0, 36.0)})
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG", exif=exif)
    read = Image.open(jpeg).getexif()
    facts = exif_facts(read, keep_gps=True)
    assert (facts["camera_make"], facts["camera_model"]) == ("Canon", "Canon EOS 5D")
    assert facts["gps_latitude"] == pytest.approx(-33.86)
    assert facts["gps_longitude"] == pytest.approx(-151.21)
    facts = exif_facts(read, keep_gps=False)
    assert facts["camera_model"] == "Canon EOS 5D"
    assert (facts["gps_latitude"], facts["gps_longitude"]) == (None, None)
