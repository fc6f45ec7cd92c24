"""The auditor's run report: static HTML, every file with unit/kind/period/status/counts, failed rules in
Vietnamese and English linked to the GX Data Docs, an Excel-safe findings.csv."""

from __future__ import annotations

import csv
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest

from reform_etl import ingest
from reform_etl import validation as V
from reform_etl.report import build_report

CORPUS = Path(__file__).parent / "bad_inputs"
RUN = "scheduled__2026-11-22T18:00:00+00:00"  # an Airflow-style run id: ':' and '+' in it
FILES = {
    "dossier_stats": ["control_stats.csv", "w02_carried_over_and_swing.csv", "q22_many_rules_one_row.csv"],
    "it_kpis": ["q25_formula_injection.csv"],
    "par_scores": ["r02_header_only.csv"],
}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links += [v for k, v in attrs if k == "href" and v]


@pytest.fixture(scope="module")
def report(warehouse_dsn: str, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    landing = root / "landing"
    for kind, names in FILES.items():
        (landing / kind).mkdir(parents=True)
        for name in names:
            shutil.copy(CORPUS / "landing" / kind / name, landing / kind / name)
    (landing / "dossier_stats" / "<script>alert(1)<\\script>.csv").write_text(
        (CORPUS / "landing" / "dossier_stats" / "q05_unknown_field.csv").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", warehouse_dsn)
        mp.setenv("REFORM_SEEDS", str(CORPUS / "seeds"))
        mp.setenv("REFORM_ARCHIVE", str(root / "archive"))
        with psycopg.connect(warehouse_dsn) as conn:
            conn.execute("insert into audit.pipeline_runs (run_id) values (%s)", (RUN,))
            conn.commit()
        for result in ingest.load_paths([landing], run_id=RUN, landing=landing, dsn=warehouse_dsn):
            if result.status == "loaded":  # as the DAG does: rejected files are not sent to validation
                V.validate_file(warehouse_dsn, result.file_id, RUN)
        # as the nightly's cross_file_checks task does: run-level checks (and the loader's rejects) first
        V.warn_checks(warehouse_dsn, RUN)
        return build_report(warehouse_dsn, RUN, root / "reports")


def test_report_is_a_static_page_in_a_safe_folder(report: Path):
    assert report.name == "index.html" and report.is_file()
    assert report.parent.name == "scheduled__2026-11-22T18_00_00_00_00"
    assert (report.parent / "data_docs" / "index.html").is_file()


def test_every_file_is_listed_with_unit_kind_period_status_counts(report: Path):
    page = report.read_text(encoding="utf-8")
    for names in FILES.values():
        for name in names:
            assert name in page
    row = re.search(r"<tr><td><a href='#file-\d+'>\d+</a></td><td>control_stats.csv</td>(.*?)</tr>", page).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[0] == "dossier_stats"
    assert cells[1].startswith("227 Thành phố Việt Trì")
    assert cells[2] == "2024-01 → 2024-02"
    assert cells[3] == "Đã nhận / Accepted"
    assert cells[4:] == ["6", "6", "0", "0"]


def test_failures_in_plain_words_both_languages_with_data_docs_links(report: Path):
    page = report.read_text(encoding="utf-8")
    assert "Mã đơn vị không có trong danh mục đơn vị hành chính / cơ quan" in page
    assert "Unit code is not in the unit registry" in page
    assert "Số kỳ trước chuyển qua khác số đang giải quyết cuối tháng trước" in page  # a warning
    assert "Tệp rỗng hoặc chỉ có dòng tiêu đề" in page and "File is empty or has a header only" in page  # a reject
    assert "A unit is missing for a period that other units reported" in page  # run level: 230 in 2024-03
    parser = _Links()
    parser.feed(page)
    docs = [link for link in parser.links if link.startswith("data_docs/validations/")]
    assert docs
    for link in docs + ["data_docs/index.html", "findings.csv"]:
        target = report.parent / re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), link.split("#")[0])
        assert target.is_file(), link


def test_text_from_files_is_escaped(report: Path):
    page = report.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;\\script&gt;.csv" in page


def test_loader_rejects_are_recorded_as_gx_file_rules(warehouse_dsn: str, report: Path):
    with psycopg.connect(warehouse_dsn) as conn:
        rows = conn.execute(
            "select r.suite, r.expectation, r.severity from audit.validation_results r join audit.submission_files f "
            "using (file_id) where f.file_name = 'r02_header_only.csv' and not r.success").fetchall()
    assert rows == [("submission_file", "file_empty", "reject_file")]


def test_findings_csv_is_safe_for_excel(report: Path):
    with (report.parent / "findings.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["rule"] for r in rows} >= {"unit_code_unknown", "count_negative", "carried_over_mismatch", "file_empty"}
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    injected = [r for r in rows if r["file_name"] == "q25_formula_injection.csv"]
    assert injected and injected[0]["sample_failing_rows"].startswith("[")  # the sample is JSON text, not a formula


def test_quarantine_csv_lists_every_quarantined_row_safely(report: Path):
    with (report.parent / "quarantine.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["file_name"], r["row_number"]) for r in rows} == {
        ("q22_many_rules_one_row.csv", "2"), ("q25_formula_injection.csv", "2"),
        ("<script>alert(1)<\\script>.csv", "2")}
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    many = next(r for r in rows if r["file_name"] == "q22_many_rules_one_row.csv")
    assert "count_negative" in many["failed_rules"] and "Số lượng âm / A count is negative" in many["failed_rules"]


def test_rendering_the_report_writes_nothing_to_the_warehouse(warehouse_dsn: str, report: Path, tmp_path: Path):
    """A run whose cross-file checks have not run yet: the report shows what is there and changes nothing."""
    pending = "manual__report_reads_only"
    V.start_run(warehouse_dsn, pending)

    def snapshot() -> tuple:
        with psycopg.connect(warehouse_dsn) as conn:
            return conn.execute(
                "select (select ended_at from audit.validation_runs where run_id = %s), "
                "(select count(*) from audit.validation_results), "
                "(select md5(string_agg(concat_ws(':', file_id, status, warnings), ',' order by file_id)) "
                " from audit.submission_files)", (pending,)).fetchone()

    before = snapshot()
    assert before[0] is None
    assert build_report(warehouse_dsn, pending, tmp_path).is_file()
    assert snapshot() == before
