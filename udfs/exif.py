"""EXIF facts worth a column: capture time, camera, and (only when asked) GPS position."""

from __future__ import annotations

import re
import warnings
from datetime import datetime

from PIL import Image

_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def iso_datetime(value) -> str | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' -> ISO 8601 'YYYY-MM-DDTHH:MM:SS' (local time, no zone);
    None unless it is a real date and time (cameras write '0000:00:00 00:00:00' when unset)."""
    m = _EXIF_DATETIME.match(_text(value) or "")
    if not m:
        return None
    try:
        return datetime(*map(int, m.groups())).isoformat()
    except ValueError:  # month 13, hour 99, year 0, ...
        return None


def _degrees(dms, ref) -> float | None:
    try:
        d, m, s = (float(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    if _text(ref) in ("S", "W"):
        value = -value
    return value if value == value else None  # NaN from 0/0 rationals


def exif_facts(exif: Image.Exif, keep_gps: bool = False) -> dict:
    """exif_datetime, camera_make, camera_model, gps_latitude, gps_longitude (None if absent).

    GPS coordinates are personal data: they are read only when ``keep_gps`` is true.
    """
    facts = {
        "exif_datetime": None,
        "camera_make": None,
        "camera_model": None,
        "gps_latitude": None,
        "gps_longitude": None,
    }
    if not exif:
        return facts
    # Pillow warns as it skips a broken tag in an IFD it reads here (outside the decode's own
    # suppression): noise in the executors' logs, and under -W error the loss of every fact
    # of that IFD.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            facts["camera_make"] = _text(exif.get(_MAKE))
            facts["camera_model"] = _text(exif.get(_MODEL))
            original = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
            facts["exif_datetime"] = iso_datetime(original) or iso_datetime(exif.get(_DATETIME))
            if keep_gps:
                gps = exif.get_ifd(_GPS_IFD)
                if gps:
                    facts["gps_latitude"] = _degrees(gps.get(2), gps.get(1))
                    facts["gps_longitude"] = _degrees(gps.get(4), gps.get(3))
        except Exception:  # noqa: BLE001 - malformed EXIF loses these facts, never the row
            pass
    return facts
