"""PAR scoring sheets: leaves loaded, subtotals and TỔNG ĐIỂM checked, maxima checked against the framework."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from reform_etl import ingest
from reform_etl import validation as V
from reform_etl.forms import printing as P
from tests.helpers import open_run

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SHEET = "Chấm điểm"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Path:
    """The project's seeds with a second framework version: the 2020 one until 2022, then one (from 2023) in
    which leaf 1.1.1 is worth 1.5 points and 1.1.2 0.5."""
    folder = tmp_path_factory.mktemp("seeds")
    for path in SEEDS.glob("*.csv"):
        shutil.copy(path, folder / path.name)
    with (SEEDS / "par_frameworks.csv").open(encoding="utf-8", newline="") as handle:
        frameworks = list(csv.DictReader(handle))
    later = dict(frameworks[0], framework_code="DISTRICT_SAMPLE_2023", year_from="2023", year_to="2026")
    frameworks[0]["year_to"] = "2022"
    criteria = framework_rows()
    changed = [dict(row, framework_code="DISTRICT_SAMPLE_2023",
                    max_points={"1.1.1": "1.5", "1.1.2": "0.5"}.get(row["criterion_code"], row["max_points"]))
               for row in criteria]
    for name, rows in (("par_frameworks.csv", [*frameworks, later]), ("par_criteria.csv", [*criteria, *changed])):
        with (folder / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return folder


def framework_rows() -> list[dict[str, str]]:
    with (SEEDS / "par_criteria.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def scores() -> dict[str, tuple[float, float]]:
    return {c["criterion_code"]: (float(c["max_points"]) * 0.75, float(c["max_points"]) * 0.5)
            for c in framework_rows()}


@pytest.fixture()
def landing(landing: Path, monkeypatch, seeds: Path) -> Path:
    monkeypatch.setenv("REFORM_SEEDS", str(seeds))
    (landing / "par_scores").mkdir()
    return landing


def load_and_validate(landing: Path, path: Path, dsn: str, run: str) -> tuple[ingest.FileResult, dict]:
    open_run(dsn, run)
    [result] = ingest.load_paths([path], landing=landing, run_id=run)
    assert result.status == "loaded", result.error
    outcome = V.validate_file(dsn, result.file_id, run)
    assert outcome["status"] == "accepted", outcome
    V.warn_checks(dsn, run)
    return result, outcome


def test_a_scoring_sheet_loads_its_leaves(db, landing, warehouse_dsn):
    rows, merges = P.par_sheet("UBND huyện Thanh Ba", 2022, framework_rows(), scores())
    path = P.write_xlsx(landing / "par_scores" / "thanh_ba_2022.xlsx", SHEET, rows, merges)
    result, outcome = load_and_validate(landing, path, warehouse_dsn, "par-sheet-2022")
    assert result.rows_total == 80 and (outcome["rows_quarantined"], outcome["warnings"]) == (0, 0)
    assert db.execute("select count(*) from audit.validation_results where file_id = %s and not success",
                      (result.file_id,)).fetchone() == (0,)
    loaded = db.execute("select _row_number, unit_code, year, criterion_code, self_score, appraised_score, evidence, "
                        "max_points from raw.par_scores where _file_id = %s order by _row_number",
                        (result.file_id,)).fetchall()
    # Rows 1-6: title, header, numbering; 7 area I, 8 criterion 1.1, 9 its first leaf.
    assert loaded[:3] == [(9, "232", "2022", "1.1.1", "0.75", "0.5", "Báo cáo số 8/BC-UBND", "1"),
                          (10, "232", "2022", "1.1.2", "0.75", "0.5", "Báo cáo số 9/BC-UBND", "1"),
                          (12, "232", "2022", "1.2.1", "0.75", "0.5", "Báo cáo số 11/BC-UBND", "1")]
    assert [r[3] for r in loaded] == [c["criterion_code"] for c in framework_rows()]


def test_a_total_that_does_not_add_up_is_a_warning(db, landing, warehouse_dsn):
    rows, merges = P.par_sheet("Ủy ban nhân dân huyện Thanh Ba", 2021, framework_rows(), scores(), appraised=False,
                               roman=False, total_override=70)
    path = P.write_xlsx(landing / "par_scores" / "thanh_ba_2021.xlsx", SHEET, rows, merges)
    result, outcome = load_and_validate(landing, path, warehouse_dsn, "par-sheet-2021")
    assert outcome["rows_quarantined"] == 0
    [(sample,)] = db.execute("select sample_failing_rows from audit.validation_results where file_id = %s "
                             "and expectation = 'form_totals_mismatch'", (result.file_id,)).fetchall()
    assert sample == [{"_row_number": len(rows), "finding": {
        "row": len(rows), "label": "TỔNG ĐIỂM", "column": "self_score", "stated": 70.0, "sum_of_rows": 75.0}}]
    assert db.execute("select count(*), count(appraised_score) from raw.par_scores where _file_id = %s",
                      (result.file_id,)).fetchone() == (80, 0)


def test_a_sheet_of_another_framework_version_is_quarantined_where_its_maxima_differ(db, landing, warehouse_dsn):
    # Scored in 2024 on the 2020 framework's sheet: 1.1.1 and 1.1.2 are worth 1.5 and 0.5 since 2023.
    rows, merges = P.par_sheet("UBND huyện Thanh Ba", 2024, framework_rows(), scores())
    path = P.write_xlsx(landing / "par_scores" / "thanh_ba_2024.xlsx", SHEET, rows, merges)
    result, outcome = load_and_validate(landing, path, warehouse_dsn, "par-sheet-2024")
    assert outcome["rows_quarantined"] == 2
    quarantined = db.execute(
        "select criterion_code, array(select f->>'rule' from jsonb_array_elements(failed_rules) f order by 1), "
        "(select f->'observed' from jsonb_array_elements(failed_rules) f where f->>'rule' = 'max_points_mismatch') "
        "from quarantine.par_scores where _file_id = %s order by _row_number", (result.file_id,)).fetchall()
    assert quarantined == [
        ("1.1.1", ["max_points_mismatch"], {"max_points": "1", "framework_max_points": 1.5}),
        ("1.1.2", ["max_points_mismatch", "score_out_of_range"], {"max_points": "1", "framework_max_points": 0.5}),
    ]


def test_a_sheet_without_a_unit_in_its_title_is_rejected(db, landing):
    rows, merges = P.par_sheet("UBND huyện Thanh Ba", 2022, framework_rows(), scores())
    rows[2] = ["BẢNG TỰ ĐÁNH GIÁ, CHẤM ĐIỂM CHỈ SỐ CẢI CÁCH HÀNH CHÍNH NĂM 2022"]
    path = P.write_xlsx(landing / "par_scores" / "no_unit.xlsx", SHEET, rows, merges)
    [result] = ingest.load_paths([path], landing=landing)
    assert (result.status, result.error_code) == ("rejected", "unit_unresolved")
    assert "names no unit" in result.error


@pytest.mark.parametrize(("year", "unit_code", "error"), [
    (2025, "232", None),  # the district was abolished on 2025-07-01: it still scores 2025, read on 1 January
    (2026, None, "does not exist on 2026-01-01"),  # tried on 31 December, then 1 January: the last says why
])
def test_a_sheet_of_a_unit_abolished_in_its_year_is_read_on_the_year_s_first_day(db, landing, year, unit_code,
                                                                                  error):
    rows, merges = P.par_sheet("UBND huyện Thanh Ba", year, framework_rows(), scores())
    path = P.write_xlsx(landing / "par_scores" / f"thanh_ba_{year}.xlsx", SHEET, rows, merges)
    [result] = ingest.load_paths([path], landing=landing)
    if error:
        assert (result.status, result.error_code) == ("rejected", "unit_unresolved")
        assert error in result.error
    else:
        assert result.status == "loaded", result.error
        assert db.execute("select distinct unit_code from raw.par_scores where _file_id = %s",
                          (result.file_id,)).fetchall() == [(unit_code,)]
