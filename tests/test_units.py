"""The official registry read (reform_etl.units) against the seeds built from it (seeds/units.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from reform_etl import units

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


@pytest.mark.parametrize(("level", "read"), [("district", units.legacy_districts), ("commune", units.communes_2025)])
def test_a_province_s_districts_and_communes_are_the_seeded_ones_in_code_order(level, read):
    with (SEEDS / "units.csv").open(encoding="utf-8", newline="") as handle:
        seeded = sorted((r["unit_code"], r["unit_name"], r["unit_type"], r["parent_unit_code"])
                        for r in csv.DictReader(handle) if r["province_code"] == "25" and r["level"] == level)
    read_units = read("25")
    assert seeded  # Phú Thọ had districts until 2025-06-30 and has communes since
    assert [(u.code, u.name, u.unit_type, u.parent_code) for u in read_units] == seeded  # each once, by code
    assert {(u.level, u.province_code, u.province_name) for u in read_units} == {(level, "25", "Tỉnh Phú Thọ")}


def test_a_province_code_that_is_not_digits_is_refused():
    with pytest.raises(ValueError, match="digits"):
        units.communes_2025("25' or '1'='1")
