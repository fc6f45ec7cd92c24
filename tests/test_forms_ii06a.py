"""The official form II.06a as offices' software prints it: 13 and 22 columns, vendors' orders, xlsx and xls."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from reform_etl import ingest
from reform_etl import validation as V
from reform_etl.forms import printing as P
from reform_etl.forms.unit_names import UnitNameError, resolve_unit
from tests.helpers import dbt_flags, open_run

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SHEET = "Biểu II.06a"


def counts(**changes: int) -> dict[str, int]:
    base = {"received_carried_over": 5, "received_online": 10, "received_direct": 7, "received_postal": 1,
            "resolved_early": 3, "resolved_on_time": 12, "resolved_late": 1, "pending_in_time": 6, "pending_overdue": 1}
    return {**base, **changes}


BODY = [
    ("section", "I", "Huyện, thị xã, thành phố"),
    ("field", 1, "Hộ tịch", counts()),
    ("field", 2, "Lĩnh vực Đất đai", counts(received_online=20, resolved_on_time=22)),
    ("trong_do", "Trong đó: hồ sơ trực tuyến toàn trình", counts()),
    ("section", "II", "Xã, phường, thị trấn"),
    ("field", 3, "Thi đua - Khen thưởng", counts(received_direct=0, received_postal=0, resolved_on_time=4)),
]
# Sheet rows: 7 title rows, 3 (or 4) header rows, the numbering row, "Tổng cộng", then the body.
EXPECTED_13 = [
    (14, "232", "2024-03", "HT", "5", "10", "8", None, "3", "12", "1", "6", "1"),
    (15, "232", "2024-03", "DD", "5", "20", "8", None, "3", "22", "1", "6", "1"),
    (18, "232", "2024-03", "TDKT", "5", "10", "0", None, "3", "4", "1", "6", "1"),
]


@pytest.fixture()
def landing(landing: Path, monkeypatch) -> Path:
    monkeypatch.setenv("REFORM_SEEDS", str(SEEDS))
    monkeypatch.setenv("REFORM_PROVINCE", "25")
    (landing / "dossier_stats").mkdir()
    return landing


def form(landing: Path, name: str, layout: P.Layout = P.VENDOR_A, *, unit: str = "UBND huyện Thanh Ba",
         period: str = "Kỳ báo cáo: Tháng 3/2024", body: list = BODY, **options) -> Path:
    rows, merges = P.sheet(layout, unit, period, body, **options)
    writer = P.write_xls if name.endswith(".xls") else P.write_xlsx
    return writer(landing / "dossier_stats" / name, SHEET, rows, merges)


def load(landing: Path, path: Path, run_id: str | None = None) -> ingest.FileResult:
    [result] = ingest.load_paths([path], landing=landing, run_id=run_id)
    return result


def stats_rows(db, file_id: int) -> list[tuple]:
    return db.execute(
        "select _row_number, unit_code, period, field_code, received_carried_over, received_online, received_direct, "
        "received_postal, resolved_early, resolved_on_time, resolved_late, pending_in_time, pending_overdue "
        "from raw.dossier_stats where _file_id = %s order by _row_number", (file_id,)).fetchall()


def test_the_13_column_form_loads_its_field_rows_only(db, landing):
    result = load(landing, form(landing, "thanh_ba_2024-03.xlsx"))
    assert (result.status, result.rows_total) == ("loaded", 3), result.error
    # Sections, the totals row and the "Trong đó" row are not data; postal is unknown, not 0.
    assert stats_rows(db, result.file_id) == EXPECTED_13
    sheet, header_row, mapping = db.execute(
        "select sheet_name, header_row, header_mapping from audit.submission_files where file_id = %s",
        (result.file_id,)).fetchone()
    assert (sheet, header_row) == (SHEET, 11)  # the numbering row closes the header
    assert mapping["- Đơn vị báo cáo: UBND huyện Thanh Ba"] == "unit_code"
    assert mapping["Số hồ sơ đã giải quyết / " + P.ON_TIME_NOTE] == "resolved_on_time"
    assert mapping["Số hồ sơ nhận giải quyết / Trong đó / Số mới tiếp nhận trực tiếp, dịch vụ bưu chính"] \
        == "received_direct"


def test_another_vendors_order_in_xls_with_a_date_range_reads_the_same(db, landing):
    path = form(landing, "thanh_ba.xls", P.VENDOR_B, period="(Từ ngày 01/03/2024 đến ngày 31/03/2024)")
    result = load(landing, path)
    assert result.status == "loaded", result.error
    assert stats_rows(db, result.file_id) == EXPECTED_13


def test_the_22_column_variant_splits_postal_and_sums_split_columns(db, landing):
    body = [("field", 1, "Hộ tịch", counts(received_online=11, resolved_late=3, resolved_on_time=12,
                                            pending_in_time=4, returned_withdrawn=2))]
    result = load(landing, form(landing, "xa_chan_mong.xlsx", P.VENDOR_22, unit="Ủy ban nhân dân xã Chân Mộng",
                                period="Kỳ báo cáo: Tháng 8/2025", body=body))
    assert result.status == "loaded", result.error
    # online = Mức 3 (5) + Mức 4 (6); late = with (1) + without (2) a letter of apology; postal its own column
    assert stats_rows(db, result.file_id) == [
        (14, "08038", "2025-08", "HT", "5", "11", "7", "1", "3", "12", "3", "4", "1")]
    assert db.execute("select returned_withdrawn from raw.dossier_stats where _file_id = %s",
                      (result.file_id,)).fetchone() == ("2",)


@pytest.mark.parametrize("unit, period, code, words", [
    ("UBND huyện Thanh Bình", "Kỳ báo cáo: Tháng 3/2024", "unit_unresolved", "232 Huyện Thanh Ba"),
    ("Sở Công Thương", "Kỳ báo cáo: Tháng 3/2024", "unit_unresolved", "does not exist on 2024-03-01"),
    ("", "Kỳ báo cáo: Tháng 3/2024", "unit_unresolved", "Đơn vị báo cáo"),
    ("UBND huyện Thanh Ba", "Kỳ báo cáo: Quý I/2024", "period_unresolved", "a quarter"),
    ("UBND huyện Thanh Ba", "(Từ ngày 01/01/2024 đến ngày 31/03/2024)", "period_unresolved", "not one calendar month"),
    ("UBND huyện Thanh Ba", "", "period_unresolved", "Kỳ báo cáo: Tháng 3/2024"),
])
def test_a_form_whose_unit_or_period_cannot_be_determined_is_rejected(db, landing, unit, period, code, words):
    result = load(landing, form(landing, f"{code}_{len(unit)}_{len(period)}.xlsx", unit=unit, period=period))
    assert (result.status, result.error_code) == ("rejected", code)
    assert words in result.error


def _load_and_validate(warehouse_dsn: str, landing, path, run: str):
    """Load `path` in a run of its own and validate it: the load result and the verdict."""
    open_run(warehouse_dsn, run)
    result = load(landing, path, run)
    assert result.status == "loaded", result.error
    return result, V.validate_file(warehouse_dsn, result.file_id, run)


def test_totals_that_do_not_add_up_are_a_warning_and_unknown_fields_quarantined(db, landing, warehouse_dsn):
    body = [*BODY, ("field", 4, "Lĩnh vực không có trong danh mục", counts())]
    path = form(landing, "sai_tong.xlsx", body=body, total_first=False, totals_override={"resolved_early": 99})
    run = "forms-ii06a-totals"
    result, outcome = _load_and_validate(warehouse_dsn, landing, path, run)
    V.warn_checks(warehouse_dsn, run)
    assert db.execute("select period from audit.submission_files, jsonb_each_text(header_mapping) m(label, period) "
                      "where file_id = %s and m.period = 'period'", (result.file_id,)).fetchone() == ("period",)
    assert (outcome["status"], outcome["rows_quarantined"]) == ("accepted", 1)
    assert db.execute("select _row_number, field_code from quarantine.dossier_stats where _file_id = %s",
                      (result.file_id,)).fetchall() == [(18, "Lĩnh vực không có trong danh mục")]
    warned = db.execute(
        "select severity, rows_failed, sample_failing_rows from audit.validation_results "
        "where file_id = %s and expectation = 'form_totals_mismatch'", (result.file_id,)).fetchone()
    assert warned[:2] == ("warn", 2)
    # The stated "Trước hạn" and the form's own "Tổng số" of the resolved, both off from their rows' sums
    assert [(f["_row_number"], f["finding"]) for f in warned[2]] == [
        (19, {"row": 19, "label": "Tổng cộng", "column": "resolved_total", "stated": 99 + 50 + 4, "sum_of_rows": 66}),
        (19, {"row": 19, "label": "Tổng cộng", "column": "resolved_early", "stated": 99, "sum_of_rows": 12}),
    ]
    # The totals row itself never reaches raw.
    assert db.execute("select count(*) from raw.dossier_stats where _file_id = %s and _row_number = 19",
                      (result.file_id,)).fetchone() == (0,)


@pytest.mark.parametrize("name, on, code", [
    ("UBND huyện Thanh Ba", date(2024, 3, 1), "232"),
    ("Ủy ban nhân dân xã Chân Mộng", date(2025, 8, 1), "08038"),
    ("Sở Công Thương", date(2025, 8, 1), "H44.07"),
    ("UBND TP Việt Trì", date(2024, 3, 1), "227"),
    ("Thanh Ba", date(2024, 3, 1), "232"),  # the district before the 2025 reform
    ("Thanh Ba", date(2025, 9, 1), "08152"),  # the commune after it
])
def test_unit_names_resolve_within_the_province_and_the_period(name, on, code):
    assert resolve_unit(name, on, "25", SEEDS) == code


def test_a_unit_name_of_another_province_is_not_found():
    with pytest.raises(UnitNameError, match="matched no unit of province 25"):
        resolve_unit("UBND quận Ba Đình", date(2024, 3, 1), "25", SEEDS)


def test_a_flat_file_without_postal_loads_it_as_unknown_and_still_balances(db, landing, warehouse_dsn):
    # The 13-column form's meaning, also for a flat file that has no BCCI column: direct holds postal.
    path = landing / "dossier_stats" / "khong_bcci.csv"
    path.write_text("unit_code,period,field_code,received_carried_over,received_online,received_direct,"
                    "resolved_early,resolved_on_time,resolved_late,pending_in_time,pending_overdue\n"
                    "232,2024-05,HT,5,10,8,3,12,1,6,1\n232,2024-05,DD,5,10,8,3,12,1,6,2\n", encoding="utf-8")
    run = "forms-no-postal"
    result, outcome = _load_and_validate(warehouse_dsn, landing, path, run)
    assert (outcome["status"], outcome["rows_quarantined"]) == ("accepted", 1)
    assert db.execute("select _row_number, received_postal, failed_rules->0->>'rule' from quarantine.dossier_stats "
                      "where _file_id = %s", (result.file_id,)).fetchall() == [(3, None, "received_not_balanced")]


@pytest.mark.slow
def test_a_form_row_with_postal_unknown_reaches_staging(db, landing, warehouse_dsn, tmp_path):
    from reform_etl.transform.dbt import run_dbt

    path = form(landing, "thanh_ba_2024-07.xlsx", period="Kỳ báo cáo: Tháng 7/2024", body=BODY[:2])
    run = "forms-staging"
    open_run(warehouse_dsn, run)
    result = load(landing, path, run)
    assert V.validate_file(warehouse_dsn, result.file_id, run)["status"] == "accepted"
    target = tmp_path / "dbt_target"
    built = run_dbt(["run", "--select", "stg_reform__submission_files", "stg_reform__dossier_stats",
                     *dbt_flags(target)], warehouse_dsn)
    assert built.success
    # well formed (the marts read it): in-person holds postal, postal is unknown
    assert db.execute("select row_number, field_code, received_direct, received_postal, is_well_formed "
                      "from staging.stg_reform__dossier_stats where file_id = %s", (result.file_id,)).fetchall() == [
        (14, "HT", 8, None, True)]
