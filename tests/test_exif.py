"""EXIF facts from their tags: capture time as ISO 8601, only when it is a real date."""

from __future__ import annotations

import pytest

from udfs.exif import iso_datetime


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
