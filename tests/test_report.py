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
from tests.helpers import open_run

CORPUS = Path(__file__).parent / "bad_inputs"
RUN = "scheduled__2026-11-22T18:00:00+00:00"  # an Airflow-style run id: ':' and '+' in it
FILES = {
    "dossier_stats": ["control_stats.csv", "w02_carried_over_and_swing.csv", "q22_many_rules_one_row.csv"],
    "it_kpis": ["q25_formula_injection.csv"],
    "par_scores": ["r02_header_only.csv"],
}


def _csv(path: Path) -> list[dict]:
    """A report CSV as Excel in a Vietnamese locale reads it: a UTF-8 BOM, then ';'-separated cells."""
    raw = path.read_bytes()
    assert raw.startswith("\ufeff".encode())
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


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
        open_run(warehouse_dsn, RUN)
        (root / "secret.csv").write_text("unit_code,period\n227,2024-01\n", encoding="utf-8")
        outside = landing / "dossier_stats" / ".." / ".." / "secret.csv"
        for result in ingest.load_paths([landing, outside], run_id=RUN, landing=landing, dsn=warehouse_dsn):
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
    rows = _csv(report.parent / "findings.csv")
    assert {r["rule"] for r in rows} >= {"unit_code_unknown", "count_negative", "carried_over_mismatch", "file_empty"}
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    injected = [r for r in rows if r["file_name"] == "q25_formula_injection.csv"]
    assert injected and injected[0]["sample_failing_rows"].startswith("[")  # the sample is JSON text, not a formula


def test_quarantine_csv_lists_every_quarantined_row_safely(report: Path):
    rows = _csv(report.parent / "quarantine.csv")
    assert {(r["file_name"], r["row_number"]) for r in rows} == {
        ("q22_many_rules_one_row.csv", "2"), ("q25_formula_injection.csv", "2"),
        ("<script>alert(1)<\\script>.csv", "2")}
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    many = next(r for r in rows if r["file_name"] == "q22_many_rules_one_row.csv")
    assert "count_negative" in many["failed_rules"] and "Số lượng âm / A count is negative" in many["failed_rules"]


def _sample_tables(page: str, rule: str) -> list[list[list[str]]]:
    """The sample tables under the finding of `rule`: rows of cells (header first)."""
    tables = []
    for item in re.findall(r"<li class='[a-z_]+'>.*?</li>", page, re.S):
        if f"<code>{rule}</code>" in item:
            for table in re.findall(r"<table class='sample'>(.*?)</table>", item, re.S):
                rows = re.findall(r"<tr>(.*?)</tr>", table)
                tables.append([re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in rows])
    return tables


def test_sample_rows_say_whose_row_it_is(report: Path):
    page = report.read_text(encoding="utf-8")
    [table] = _sample_tables(page, "count_negative")
    head, *rows = table
    assert head[:5] == ["Dòng / row", "Mã đơn vị / unit", "Tên đơn vị / unit name", "Kỳ / period", "field_code"]
    assert rows[0][:5] == ["2", "88888", "", "2024-01", "ZZ"]
    [table] = _sample_tables(page, "carried_over_mismatch")  # a warning: the row is in raw, not in quarantine
    head, *rows = table
    unit = head.index("Tên đơn vị / unit name")
    assert {r[unit] for r in rows} == {"Thành phố Việt Trì"} and "Kỳ / period" in head and "field_code" in head


def test_quarantine_csv_has_one_column_per_field_filterable_by_unit(report: Path):
    rows = _csv(report.parent / "quarantine.csv")
    many = next(r for r in rows if r["file_name"] == "q22_many_rules_one_row.csv")
    assert (many["kind"], many["unit_code"], many["period"], many["field_code"]) == (
        "dossier_stats", "88888", "2024-01", "ZZ")
    assert many["received_online"] == "'-20" and many["received_direct"] == "25"  # neutralised, not a formula
    kpi = next(r for r in rows if r["file_name"] == "q25_formula_injection.csv")
    assert kpi["kpi_code"] == "DVC_TOAN_TRINH" and kpi["unit_code"].startswith("'=cmd")
    assert "row" not in rows[0]  # no JSON cell


def test_times_are_local_to_the_second_and_rejections_speak_vietnamese_first(report: Path):
    page = report.read_text(encoding="utf-8")
    started = re.search(r"bắt đầu / started ([^;]*);", page).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+07", started), started
    assert ("Lý do: Tệp rỗng hoặc chỉ có dòng tiêu đề / <i>Reason: File is empty or has a header only</i> "
            "(<code>file_empty</code>)") in page
    assert "(<code>unsafe_file_path</code>)" in page and "<code>bad_path</code>" not in page
    findings = _csv(report.parent / "findings.csv")
    assert "bad_path" not in {r["rule"] for r in findings}
    assert "unsafe_file_path" in {r["rule"] for r in findings}


def _pages(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.html"))


def test_data_docs_work_offline_and_name_the_file(report: Path):
    docs = report.parent / "data_docs"
    pages = _pages(docs)
    assert len(pages) > 2
    assert not (docs / "static").exists()  # GX's 4 MB of fonts and images are shared in reports/_assets
    for page in pages:
        assert ":" not in str(page.relative_to(report.parent.parent)), page  # Windows takes no ':' in names
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"<link\b[^>]*href=[\"']https?://", text, re.I), page
        assert not re.search(r"<script\b[^>]*src=[\"']https?://", text, re.I), page
        for ref in re.findall(r"<(?:link|script|img)\b[^>]*(?:href|src)=[\"']([^\"'#]+)[\"']", text, re.I):
            if not ref.startswith(("data:", "http")):
                assert (page.parent / ref).resolve().is_file(), (page, ref)
    assert (report.parent.parent / "_assets" / "js" / "jquery.min.js").is_file()
    link = next(link for link in _docs_links(report) if "count_negative" not in link and "/dossier_stats/" in link
                and "file_id_" in link)
    banner = re.search(r"<body[^>]*><div class='container-fluid alert alert-info'.*?</div>",
                       (docs / link).read_text(encoding="utf-8"), re.S).group(0)
    assert "dossier_stats" in banner and re.search(r"<b>[^<]+\.csv</b>", banner) and re.search(r"20\d\d-\d\d", banner)


def _docs_links(report: Path) -> list[str]:
    parser = _Links()
    parser.feed(report.read_text(encoding="utf-8"))
    return [re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), link.split("#")[0])[len("data_docs/"):]
            for link in parser.links if link.startswith("data_docs/validations/")]


def test_index_lists_runs_and_a_no_op_run_copies_nothing(warehouse_dsn: str, report: Path):
    from reform_etl.report import write_index

    reports = report.parent.parent
    quiet = "scheduled__2026-11-23T18:00:00+00:00"
    with psycopg.connect(warehouse_dsn) as conn:
        conn.execute("insert into audit.pipeline_runs (run_id, status) values (%s, 'success')", (quiet,))
        conn.commit()
    before = sum(p.stat().st_size for p in reports.rglob("*") if p.is_file())
    quiet_index = build_report(warehouse_dsn, quiet, reports)
    after = sum(p.stat().st_size for p in reports.rglob("*") if p.is_file())
    assert not (quiet_index.parent / "data_docs").exists()
    assert after - before < 50_000, after - before
    index = write_index(warehouse_dsn, reports)
    rows = re.findall(r"<tr><td>(.*?)</tr>", index.read_text(encoding="utf-8"), re.S)
    assert len(rows) == 2 and quiet in rows[0] and RUN in rows[1]  # newest first
    cells = re.findall(r"<td[^>]*>(.*?)</td>", "<td>" + rows[1])
    # files, rejected, rows, quarantined, warnings: the run's own report says the same
    totals = re.findall(r"<td>(\d+)</td>", report.read_text(encoding="utf-8").split("</table>")[0])
    assert cells[4:9] == [totals[i] for i in (0, 2, 3, 5, 6)] and cells[4] == str(
        sum(len(names) for names in FILES.values()) + 2)  # and the script-named file and the path outside
    assert int(cells[7]) == len(_csv(report.parent / "quarantine.csv")) and int(cells[8]) > 0
    assert "href='scheduled__2026-11-22T18_00_00_00_00/index.html'" in rows[1]


def test_the_run_summary_names_a_rejection_by_its_rule_in_vietnamese_first(capsys):
    from reform_etl import cli

    cli._summary_tables({"run_id": "r", "rejected": [
        {"path": "landing/../secret.csv", "error_code": "bad_path", "error": "path is outside the landing folder"}]})
    out = " ".join(capsys.readouterr().out.split())
    assert "unsafe_file_path" in out and "bad_path" not in out
    assert out.index("Đường dẫn tệp không an toàn") < out.index("Unsafe file path") < out.index("path is outside")


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


def test_the_report_reads_in_read_only_sessions(warehouse_dsn: str):
    """The report's one way into the warehouse is a read-only session: a write there is refused by Postgres."""
    from reform_etl.report.collect import connect

    with connect(warehouse_dsn) as conn:
        assert conn.execute("show transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create table audit.report_must_not_write (x int)")
