"""Header matching and cell text for landing files (SPEC §3).

Value normalisation (numbers, periods, dates, unit codes) happens in the database, in the
raw.norm_* functions of `sql/003_normalise.sql`, so that millions of rows are normalised at
set speed; Python only turns typed Excel cells into text and matches headers.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime, time

Cell = str | int | float | bool | date | datetime | time | None


def nfc(text: str) -> str:
    # NUL cannot be stored in a Postgres text column; keep the row, mark the character.
    return unicodedata.normalize("NFC", text).replace("\x00", "\ufffd")


def fold(text: str) -> str:
    """Case- and accent-insensitive form used to match headers: 'Mã đơn vị' -> 'ma don vi'."""
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFC", text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    stripped = stripped.replace("đ", "d").replace("Đ", "D").lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", stripped).split())


def cell_text(value: Cell) -> str | None:
    """Any cell as trimmed NFC text; None for blank."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        # Excel keeps a date as a date-time at midnight (openpyxl cannot tell which the cell showed): a date
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    text = nfc(str(value)).strip()
    return text or None
