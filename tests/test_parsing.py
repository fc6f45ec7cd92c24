"""One test per normalisation rule of SPEC §3.

Headers and cell text are matched in Python; values are normalised by the raw.norm_* SQL
functions, tested here in a real Postgres (the loader tests cover whole files).
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from reform_etl.ingest.parsing import cell_text, fold, nfc
from reform_etl.ingest.readers import header_aliases
from reform_etl.kinds import KIND_SPECS


@pytest.fixture()
def norm(db):
    """norm('count', '1.296') -> raw.norm_count('1.296'); Excel-typed cells go through cell_text first."""

    def call(function: str, value, *extra):
        args = ", ".join(["%s"] * (1 + len(extra)))
        return db.execute(f"select raw.norm_{function}({args})", (cell_text(value), *extra)).fetchone()[0]

    return call


@pytest.mark.parametrize("header", ["unit_code", "Mã đơn vị", "MÃ ĐƠN VỊ", "mã đơn vị", "Ma don vi", " Mã  Đơn  Vị "])
def test_unit_code_header_aliases_match_case_and_accent_insensitively(header):
    assert header_aliases(KIND_SPECS["dossier_stats"])[fold(header)] == "unit_code"


@pytest.mark.parametrize("kind", list(KIND_SPECS))
def test_every_english_key_and_vietnamese_label_is_an_alias(kind):
    aliases = header_aliases(KIND_SPECS[kind])
    for column in KIND_SPECS[kind].columns:
        assert aliases[fold(column.key)] == column.key
        assert aliases[fold(column.label_vi)] == column.key


def test_decomposed_unicode_header_matches_its_composed_form():
    decomposed = "Ma\u0303 đơn vi\u0323"  # NFD as some Mac exports write it
    assert fold(decomposed) == fold("Mã đơn vị") == "ma don vi"
    assert nfc("Hô\u0323 ti\u0323ch") == "Hộ tịch"


@pytest.mark.parametrize("raw, expected", [
    ("1.296", "1296"), ("1,296", "1296"), ("1 296", "1296"), ("1\u00a0296", "1296"), ("1.234.567", "1234567"),
    ("1296", "1296"), (1296, "1296"), (1296.0, "1296"), ("1296.0", "1296"), ("0", "0"), ("", None), (None, None),
    ("007", "7"), (" 12 ", "12"), ("+5", "5"), ("1\u202f296", "1296"), ("1\u2009296", "1296"),
])
def test_counts_accept_thousands_separators(norm, raw, expected):
    assert norm("count", raw) == expected


@pytest.mark.parametrize("raw", ["-5", "abc", "1,5", "1e309", "NaN", "#DIV/0!", "12.5", "'); drop table x; --"])
def test_unreadable_or_negative_counts_are_kept_as_they_arrived(norm, raw):
    assert norm("count", raw) == raw


@pytest.mark.parametrize("raw, expected", [
    ("2,5", "2.5"), ("2.5", "2.5"), ("2.50", "2.5"), (2.5, "2.5"), (3, "3"), ("1.234,5", "1234.5"),
    ("1,234.5", "1234.5"), ("0,75", "0.75"), ("-1,5", "-1.5"), ("10", "10"), ("100", "100"), (".5", "0.5"),
    ("0.0", "0"), ("1 234,5", "1234.5"), ("1\u202f234,5", "1234.5"),  # spaces inside are thousands separators
])
def test_scores_accept_decimal_comma_or_point(norm, raw, expected):
    assert norm("decimal", raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("2021-03", "2021-03"), ("03/2021", "2021-03"), ("3/2021", "2021-03"), ("Tháng 3/2021", "2021-03"),
    ("tháng 03/2021", "2021-03"), ("T3/2021", "2021-03"), ("t03/2021", "2021-03"), ("2021/3", "2021-03"),
    ("Tháng 3 năm 2021", "2021-03"), (datetime(2021, 3, 1), "2021-03"), (date(2021, 3, 15), "2021-03"),
])
def test_period_spellings_all_mean_march_2021(norm, raw, expected):
    assert norm("period", raw) == expected


@pytest.mark.parametrize("raw", ["13/2021", "2021", "Quý 1/2021", "abc"])
def test_unreadable_periods_are_kept(norm, raw):
    assert norm("period", raw) == raw


@pytest.mark.parametrize("raw", ["2021", 2021, 2021.0, "Năm 2021"])
def test_years(norm, raw):
    assert norm("year", raw) == "2021"


@pytest.mark.parametrize("raw, when, expected", [
    (1, "2024-01", "001"),  # a district code that Excel stored as a number
    ("27", "2024-01", "027"),
    ("227", "2024", "227"),
    (7900, "2026-01", "07900"),  # a commune code that lost its zero
    ("97", "2026-01-05T08:30:00", "00097"),  # after the 2025 reform there are no districts
    ("7900", "2024-01", "07900"),
    (" 07900 ", "2026-01", "07900"),
    ("h44.07", None, "H44.07"),  # a department's electronic id is kept
    ("H44.100", "2026-01", "H44.100"),
    ("H 44.07", None, "H44.07"), ("079 00", "2026-01", "07900"),  # spaces inside a code-shaped cell go
    ("Huyện  Thanh Ba", "2026-01", "Huyện  Thanh Ba"),  # anything else is kept as it arrived
])
def test_unit_codes_get_their_leading_zeros_back(norm, raw, when, expected):
    assert norm("unit_code", raw, when) == expected


@pytest.mark.parametrize("raw, expected", [
    ("2026-01-05", "2026-01-05"), ("05/01/2026", "2026-01-05"), ("5/1/2026 08:30", "2026-01-05T08:30:00"),
    ("2026-01-05 08:30:00", "2026-01-05T08:30:00"), (datetime(2026, 1, 5, 8, 30), "2026-01-05T08:30:00"),
    (datetime(2026, 1, 5), "2026-01-05"), ("31/02/2026", "31/02/2026"), ("2026-01-05T00:00:00", "2026-01-05T00:00:00"),
    ("2026-01-05 00:00", "2026-01-05T00:00:00"),
    (" 2026-01-05 ", "2026-01-05"), ("05.01.2026", "2026-01-05"), ("hôm qua", "hôm qua"),
    # a UTC offset: the same moment on Vietnam's clock (UTC+7), which the other dates are read in
    ("2026-01-05T01:30:00Z", "2026-01-05T08:30:00"), ("2026-01-05T08:30:00+07:00", "2026-01-05T08:30:00"),
    ("2026-01-05 20:30:00.5-0500", "2026-01-06T08:30:00"), ("2026-01-05T25:00:00+07:00", "2026-01-05T25:00:00+07:00"),
])
def test_dates(norm, raw, expected):
    assert norm("date", raw) == expected


def test_dates_read_day_first_are_written_iso_under_any_datestyle(db):
    db.execute("set datestyle = 'SQL, DMY'")
    assert db.execute("select raw.norm_date('05/01/2026 08:30')").fetchone()[0] == "2026-01-05T08:30:00"


@pytest.mark.parametrize("raw, expected", [("có", "true"), ("Có", "true"), ("không", "false"), ("x", "true"),
                                           ("1", "true"), ("0", "false"), ("maybe", "maybe")])
def test_booleans(norm, raw, expected):
    assert norm("boolean", raw) == expected


def test_nul_characters_cannot_break_the_copy():
    assert nfc("a\x00b") == "a\ufffdb"


@pytest.mark.parametrize("value, expected", [
    (1296.0, "1296"), (2.5, "2.5"), (True, "true"), (datetime(2026, 1, 5, 8, 30), "2026-01-05T08:30:00"),
    (date(2026, 1, 5), "2026-01-05"), ("  Hô\u0323  ", "Hộ"), ("   ", None), (None, None),
])
def test_excel_cells_become_text(value, expected):
    assert cell_text(value) == expected


def test_text_is_nfc_and_trimmed_in_the_database(norm):
    assert norm("text", "  Ma\u0303 ho\u0302\u0300 so\u031b  ") == "Mã hồ sơ"
    assert norm("text", "\u00a0") is None
    assert norm("text", "plain") == "plain"
