"""The portal's Decision 766 JSON responses (trimmed real captures, tests/fixtures/portal766/) as service_index rows,
and the portal_units seed against the reference files' GSO codes."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from reform_etl import reference_data
from reform_etl.ingest import portal766
from reform_etl.ingest.readers import FileRejected, open_table

FIXTURES = Path(__file__).parent / "fixtures" / "portal766"
SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def rows_of(name: str) -> list[dict]:
    document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return portal766.export_rows(document, portal766.period_from_name(name), portal766.unit_names(SEEDS))


def by_key(rows: list[dict]) -> dict[tuple[str, str], tuple]:
    return {(r["unit_code"], r["metric_code"]): (r["numerator"], r["denominator"], r["published_score"]) for r in rows}


def test_progress_response():
    rows = rows_of("progress_2026.json")
    assert {r["period"] for r in rows} == {"2026"} and len(rows) == 10
    got = by_key(rows)
    assert got[("H44", "PROGRESS_ON_TIME")] == ("528684", "597918", "17.68")
    assert got[("H44.13", "PROGRESS_ON_TIME")] == ("3", "5", "12")
    assert got[("H44.130", "PROGRESS")] == (None, None, "19.32")


def test_online_payment_response_maps_the_three_metrics():
    got = by_key(rows_of("online_payment_2026.json"))
    assert got[("H44.100", "ONLINE_PAYMENT_DOSSIER")] == ("4015", "4920", None)
    assert got[("H44.100", "ONLINE_PAYMENT_PROCEDURE")] == ("18", "38", None)
    assert got[("H44.100", "FEE_PROCEDURE_WITH_DOSSIERS")] == ("10", "38", None)
    assert got[("H44.100", "ONLINE_PAYMENT")] == (None, None, "6.74")


def test_online_service_response_keeps_only_the_published_score():
    rows = rows_of("online_service_2026.json")
    assert [(r["unit_code"], r["metric_code"], r["published_score"]) for r in rows] == [
        ("H44", "ONLINE_SERVICE", "8.56"), ("H44.01", "ONLINE_SERVICE", "6"), ("H44.125", "ONLINE_SERVICE", "6.31")]


@pytest.mark.parametrize(("name", "group", "metrics", "units"), [
    ("transparency_2026.json", "TRANSPARENCY", 4, ["H44", "H44.01", "H44.106"]),
    ("satisfaction_2026.json", "SATISFACTION", 5, ["H44", "H44.08", "H44.101"]),
    ("digitisation_2026.json", "DIGITISATION", 7, ["H44", "H44.01", "H44.100"]),
])
def test_metric_list_responses(name, group, metrics, units):
    rows = rows_of(name)
    assert len(rows) == len(units) * (metrics + 1)
    assert sorted({r["unit_code"] for r in rows}) == sorted(units)  # names resolved: no departmentCode needed
    got = by_key(rows)
    assert all((u, group) in got for u in units)


def test_values_match_the_reference_file():
    """Every metric of the JSON fixtures carries the counts and score of the reference CSV for that unit."""
    with (FIXTURES / "portal766_metrics_phutho_2026.csv").open(encoding="utf-8") as fh:
        reference = {(r["portal_code"], r["metric_code"]): r for r in csv.DictReader(fh)}
    checked = 0
    for name in ("transparency_2026.json", "satisfaction_2026.json", "digitisation_2026.json"):
        for (unit, metric), (numerator, denominator, score) in by_key(rows_of(name)).items():
            ref = reference.get((unit, metric))
            if ref and ref["metric_code"] != "GROUP_TOTAL":
                assert (numerator or "", denominator or "") == (ref["numerator"], ref["denominator"])
                assert Decimal(score or 0) == Decimal(ref["published_score"] or 0)
                checked += 1
    assert checked >= 20


def test_period_comes_from_the_file_name():
    assert portal766.period_from_name("transparency_2026.json") == "2026"
    assert portal766.period_from_name("progress-2026-09.json") == "2026-09"
    assert portal766.period_from_name("progress_202609.json") == "2026-09"
    assert portal766.period_from_name("transparency.json") is None


def test_open_table_reads_json_only_as_the_portal_export(tmp_path):
    table = open_table(FIXTURES / "online_service_2026.json", "service_index").table
    assert [cells for _, cells in table.rows][0] == ["H44", "2026", "ONLINE_SERVICE", None, None, "8.56"]
    with pytest.raises(FileRejected) as wrong:
        open_table(FIXTURES / "online_service_2026.json", "it_kpis")
    assert wrong.value.code == "wrong_kind"
    bad = tmp_path / "x_2026.json"
    bad.write_text('{"code": "OK", "data": {"something": []}}', encoding="utf-8")
    with pytest.raises(FileRejected) as unreadable:
        open_table(bad, "service_index")
    assert unreadable.value.code == "unreadable"


def test_portal_units_seed_matches_the_reference_gso_codes():
    """The generated seed is what the generator writes, and each commune's GSO code is the reference file's."""
    with (SEEDS / "portal_units.csv").open(encoding="utf-8") as fh:
        seed = list(csv.DictReader(fh))
    assert seed == reference_data.portal_unit_rows(FIXTURES)
    mapped = {r["portal_code"]: r["unit_code"] for r in seed}
    with (FIXTURES / "portal766_progress_phutho_2026.csv").open(encoding="utf-8") as fh:
        communes = [r for r in csv.DictReader(fh) if r["portal_level"] == "COMMUNE"]
    assert len(communes) == 23 and all(mapped[r["portal_code"]] == r["gso_ward_code"] for r in communes)
    assert mapped["H44"] == "25" and "H44.13" not in mapped and mapped["H44.130"] == "08113"
    # every one of the province's 148 communes, each by one portal id
    communes = [r["unit_code"] for r in seed if r["portal_code"] != "H44"]
    assert len(communes) == len(set(communes)) == 148


def test_portal_name_key_folds_the_portals_spellings():
    assert reference_data.portal_name_key("UBND xã Lâm Thao - Tỉnh Phú Thọ") == "xã lâm thao"
    assert reference_data.portal_name_key("UBND phường Vĩnh Yên") == reference_data.portal_name_key("Phường Vĩnh Yên")
