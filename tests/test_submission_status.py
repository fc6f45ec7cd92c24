"""Statuses and warnings that follow what was accepted (issue 20 items 1-3, issue 16 item 15).

Real files in a landing folder, the real loader, validation (GX), the run-level warnings, and a
real dbt build of rpt_submission_status and rpt_par_index; every expected figure follows from the
rows written below.
"""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reform_etl import ingest
from reform_etl import validation as V
from reform_etl.report import build_report
from tests.helpers import dbt_build, open_run

pytestmark = pytest.mark.slow

VN = ZoneInfo("Asia/Ho_Chi_Minh")
RUN = "status_run"
SEEDS = Path(__file__).resolve().parents[1] / "seeds"
KPIS = [r["kpi_code"] for r in csv.DictReader((SEEDS / "kpis.csv").open(encoding="utf-8"))]
LEAVES = [(r["criterion_code"], r["max_points"]) for r in csv.DictReader((SEEDS / "par_criteria.csv").open(
    encoding="utf-8"))]
THIS_MONTH = datetime.now(VN).strftime("%Y-%m")  # never past its deadline: due next month
STATS = ["unit_code", "period", "field_code", "received_carried_over", "received_online", "received_direct",
         "received_postal", "resolved_early", "resolved_on_time", "resolved_late", "pending_in_time",
         "pending_overdue"]
KPI_COLUMNS = ["unit_code", "period", "kpi_code", "numerator", "denominator"]
PAR = ["unit_code", "year", "criterion_code", "self_score", "appraised_score"]


def _write(landing: Path, kind: str, name: str, header: list[str], rows: list[list], received: str) -> Path:
    path = landing / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    stamp = datetime.fromisoformat(received).replace(tzinfo=VN).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def _kpis(unit: str, period: str, codes: list[str]) -> list[list]:
    return [[unit, period, code, "5", "10"] for code in codes]


def _par(unit: str, year: int, bad_leaf: str | None = None) -> list[list]:
    return [[unit, str(year), code, points, "999" if code == bad_leaf else points] for code, points in LEAVES]


@pytest.fixture(scope="module")
def built(warehouse_dsn: str, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("status")
    landing = root / "landing"
    files = [  # (key, kind, name, header, rows, received), loaded in this order
        # Hòa Bình's only 2026-01 row is quarantined (a count that is no number); Việt Trì's row is accepted.
        ("stats", "dossier_stats", "ii06a_2026_01.csv", STATS, [
            ["04795", "2026-01", "", "0", "abc", "0", "0", "0", "5", "0", "0", "0"],
            ["07900", "2026-01", "", "0", "5", "0", "0", "0", "5", "0", "0", "0"]], "2026-02-10 09:00"),
        # Nông Trang: both rows quarantined (unknown KPI codes).
        ("bad_kpis", "it_kpis", "nong_trang_2026_01.csv", KPI_COLUMNS,
         _kpis("07894", "2026-01", ["KHONG_CO", "SAI_MA"]), "2026-02-01 09:00"),
        # Việt Trì: 2 of the catalogue's 12 KPIs.
        ("two_kpis", "it_kpis", "viet_tri_2026_01.csv", KPI_COLUMNS,
         _kpis("07900", "2026-01", KPIS[:2]), "2026-02-01 09:00"),
        # Thanh Miếu: all 12, on time; then 2026-02: all 12, then a correction with 1 row.
        ("full_kpis", "it_kpis", "thanh_mieu_2026_01.csv", KPI_COLUMNS,
         _kpis("07909", "2026-01", KPIS), "2026-02-03 09:00"),
        ("feb_full", "it_kpis", "thanh_mieu_2026_02.csv", KPI_COLUMNS,
         _kpis("07909", "2026-02", KPIS), "2026-03-02 09:00"),
        ("feb_fix", "it_kpis", "thanh_mieu_2026_02_fix.csv", KPI_COLUMNS,
         _kpis("07909", "2026-02", KPIS[:1]), "2026-03-04 09:00"),
        # This month (not yet due): Việt Trì only; Thanh Miếu has not sent it yet.
        ("this_month", "it_kpis", "viet_tri_this_month.csv", KPI_COLUMNS,
         _kpis("07900", THIS_MONTH, KPIS), datetime.now(VN).strftime("%Y-%m-%d 00:00")),
        # PAR 2020: Việt Trì's leaf 1.1.2 is quarantined (999 > its max); Phú Thọ town complete.
        ("par", "par_scores", "par_2020.csv", PAR, _par("227", 2020, "1.1.2") + _par("228", 2020),
         "2021-01-10 09:00"),
    ]
    ids = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", warehouse_dsn)
        mp.setenv("REFORM_ARCHIVE", str(root / "archive"))
        open_run(warehouse_dsn, RUN)
        for key, kind, name, header, rows, received in files:
            path = _write(landing, kind, name, header, rows, received)
            result = ingest.load_file(path, run_id=RUN, landing=landing, dsn=warehouse_dsn)
            assert result.status == "loaded", result
            V.validate_file(warehouse_dsn, result.file_id, RUN)
            ids[key] = result.file_id
        V.warn_checks(warehouse_dsn, RUN)
        target = root / "dbt-target"
        dbt_build(warehouse_dsn, target, "--select", "+rpt_submission_status", "+rpt_par_index", "+dim_unit",
                  "--indirect-selection", "cautious")
        report = build_report(warehouse_dsn, RUN, root / "reports")
        from reform_etl import runs

        summary = runs.run_summary(warehouse_dsn, RUN)
    return {"dsn": warehouse_dsn, "ids": ids, "report": report, "summary": summary}


def _status(q, unit: str, kind: str, period: str) -> tuple:
    [row] = q("select status, items_expected, items_accepted, missing_items, status_reason, submitted_at "
              "from marts.rpt_submission_status where unit_code = %s and kind = %s and period = %s", unit, kind, period)
    return row


# ---------------------------------------------------------------- item 1: statuses follow accepted rows


def test_a_submission_whose_only_row_was_quarantined_is_rejected_with_the_reason(q):
    status, _, accepted, _, reason, submitted_at = _status(q, "04795", "dossier_stats", "2026-01")
    assert (status, accepted, submitted_at) == ("rejected", 0, None)
    assert "count_not_numeric" in reason and "Mọi dòng bị cách ly" in reason and "Every row quarantined" in reason
    # the other unit of the same file was accepted: late (10 Feb, due 5 Feb)
    assert _status(q, "07900", "dossier_stats", "2026-01")[0] == "late"


def test_a_kpi_file_with_every_row_quarantined_is_rejected(q):
    status, _, accepted, _, reason, _ = _status(q, "07894", "it_kpis", "2026-01")
    assert (status, accepted) == ("rejected", 0)
    assert "kpi_code_unknown" in reason


def test_two_of_twelve_kpis_is_incomplete_with_the_missing_ones(q):
    status, expected, accepted, missing, reason, _ = _status(q, "07900", "it_kpis", "2026-01")
    assert (status, expected, accepted) == ("incomplete", 12, 2)
    assert missing.split(", ") == KPIS[2:]
    assert "10/12" in reason and "10 of 12 KPIs missing" in reason


def test_all_twelve_kpis_on_time_is_on_time(q):
    status, expected, accepted, missing, reason, _ = _status(q, "07909", "it_kpis", "2026-01")
    assert (status, expected, accepted, missing, reason) == ("on_time", 12, 12, None, None)


def test_a_correction_to_one_kpi_makes_the_period_incomplete(q):
    status, expected, accepted, missing, _, _ = _status(q, "07909", "it_kpis", "2026-02")
    assert (status, expected, accepted) == ("incomplete", 12, 1)
    assert missing.split(", ") == KPIS[1:]


def test_par_scores_with_a_quarantined_leaf_are_incomplete(q):
    status, expected, accepted, missing, _, _ = _status(q, "227", "par_scores", "2020")
    assert (status, expected, accepted, missing) == ("incomplete", 80, 79, "1.1.2")
    assert _status(q, "228", "par_scores", "2020")[:3] == ("on_time", 80, 80)


# ---------------------------------------------------------------- item 3: PAR completeness and provisional rank


def test_par_index_says_how_many_leaves_and_marks_the_provisional_rank(q):
    rows = {u: rest for u, *rest in q(
        "select unit_code, leaves_scored, leaves_expected, is_complete, missing_criteria, rank_is_provisional, "
        "index_pct from marts.rpt_par_index where year = 2020")}
    assert rows["227"][:5] == [79, 80, False, "1.1.2", True]
    assert rows["228"][:5] == [80, 80, True, None, False]
    assert rows["227"][5] == 99 and rows["228"][5] == 100  # the missing leaf (1 point) counts 0


def test_the_report_flags_the_incomplete_unit(built):
    page = built["report"].read_text(encoding="utf-8")
    assert "Incomplete PAR scores: provisional rank" in page
    assert "227 Thành phố Việt Trì 2020: 79/80" in page
    assert "228 Thị xã Phú Thọ 2020" not in page


# ---------------------------------------------------------------- item 2: missing units only past the deadline


def _missing_warnings(q) -> set[tuple[str, str]]:
    return {(row["unit_code"], row["period"]) for (rows,) in q(
        "select sample_failing_rows from audit.validation_results where run_id = %s "
        "and expectation = 'unit_missing_for_period' and kind = 'it_kpis' and not success", RUN) for row in rows}


def test_missing_unit_warns_only_past_the_deadline(q):
    warned = _missing_warnings(q)
    assert ("07900", "2026-02") in warned  # Thanh Miếu sent February, Việt Trì did not; due 5 March
    assert ("07909", THIS_MONTH) not in warned  # this month is not due yet
    assert {p for _, p in warned} == {"2026-02"}


def test_the_warning_and_the_status_mart_share_the_deadline(q):
    from reform_etl.deadlines import deadline_at_sql

    # the mart's deadline of every expected submission is the one the warning computes
    assert q(f"select count(*), count(*) filter (where deadline_at is distinct from {deadline_at_sql('period')}) "
             "from intermediate.int_submissions__expected")[0][1] == 0
    # a warned unit-period is one the mart calls missing, past its deadline
    for unit, period in _missing_warnings(q):
        assert q("select status from marts.rpt_submission_status where unit_code = %s and kind = 'it_kpis' "
                 "and period = %s", unit, period) == [("missing",)]
    [(due,)] = q(f"select now() > {deadline_at_sql('%s')}", THIS_MONTH)
    assert not due


# ---------------------------------------------------------------- issue 16 item 15: shorter corrections are said


def test_a_shorter_correction_is_a_warning_in_the_report_and_the_summary(built, q):
    new, old = built["ids"]["feb_fix"], built["ids"]["feb_full"]
    sentence = f"file #{new} replaces file #{old} for unit 07909, period 2026-02: 12 rows → 1"
    [(rows_failed, sample, vi)] = q(
        "select rows_failed, sample_failing_rows, message_vi from audit.validation_results "
        "where run_id = %s and file_id = %s and expectation = 'correction_fewer_rows'", RUN, new)
    assert rows_failed == 1 and sentence in sample[0]["detail"]
    assert f"tệp #{new} thay thế tệp #{old} của đơn vị 07909, kỳ 2026-02: 12 dòng → 1" in sample[0]["detail"]
    assert vi and q("select warnings from audit.submission_files where file_id = %s", new) == [(1,)]
    assert [s for s in built["summary"]["replacements"] if sentence in s]
    assert sentence in built["report"].read_text(encoding="utf-8")
    # a longer or equal file replacing another is no warning
    assert q("select count(*) from audit.validation_results where expectation = 'correction_fewer_rows' "
             "and not success and file_id <> %s", new) == [(0,)]
