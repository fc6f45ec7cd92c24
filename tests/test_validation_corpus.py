"""The bad-input corpus (issue 3): every rule of SPEC §4 and the malformed files, in ONE run.

All cases land in one landing folder with a good control file per kind and go through the
real loader (reform_etl.ingest) and the real validation (GX on Postgres). Each case asserts its
exact outcome and reason; `test_every_other_file_still_loads` asserts that the control files
(and every case's good rows) were untouched by their neighbours' faults.

Small cases are committed under tests/bad_inputs/landing/; binary, encoded, Excel and big cases
are generated here at test time (nothing of 50 MB is committed).
"""

from __future__ import annotations

import random
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from reform_etl import ingest
from reform_etl import validation as V
from tests.helpers import open_run

CORPUS = Path(__file__).parent / "bad_inputs"
SEEDS = CORPUS / "seeds"
RUN = "corpus_run_1"
BIG_ROWS = 110_000  # x ~470 bytes = ~50 MB
PARSE_REJECTS = {"unreadable": "file_unreadable", "empty": "file_empty", "no_header": "header_not_found",
                 "missing_columns": "missing_required_columns", "wrong_kind": "wrong_kind",
                 "duplicate_columns": "duplicate_columns", "unsafe_file_path": "unsafe_file_path"}


@dataclass
class Case:
    name: str  # file name in the landing folder
    status: str  # accepted / rejected
    error_code: str | None = None  # rejected: the loader's code (the GX rule is PARSE_REJECTS[code])
    quarantined: dict[int, set[str]] = field(default_factory=dict)  # source row -> rules it failed
    warnings: dict[str, int] = field(default_factory=dict)  # warn rule -> rows flagged in this file
    rows_total: int | None = None
    message: str | None = None  # a phrase the rejection message must contain


CASES = [
    # --- controls: must load whole whatever their neighbours do
    Case("control_par.csv", "accepted", rows_total=6),
    Case("control_stats.csv", "accepted", rows_total=6),
    Case("control_kpis.csv", "accepted", rows_total=4),
    Case("control_dossiers.csv", "accepted", rows_total=3),
    # --- reject file
    Case("r01_empty.csv", "rejected", "empty"),
    Case("r02_header_only.csv", "rejected", "empty"),
    Case("r03_binary_junk.xlsx", "rejected", "unreadable"),
    Case("r04_windows_1258.csv", "rejected", "unreadable", message="not UTF-8"),
    Case("r05_tcvn3.csv", "rejected", "unreadable", message="not UTF-8"),
    Case("r06_missing_column.csv", "rejected", "missing_columns", message="resolved_late"),
    Case("r07_duplicate_columns.csv", "rejected", "duplicate_columns"),
    Case("r08_unknown_folder.csv", "rejected", "wrong_kind"),
    Case("r09_par_scores_in_kpi_folder.csv", "rejected", "wrong_kind", message="par_scores"),
    Case("r10_no_header.csv", "rejected", "no_header"),
    Case("r11_outside.csv", "rejected", "unsafe_file_path"),
    Case("r13_merged_header_cells.xlsx", "rejected", "missing_columns", message="denominator"),
    # --- SQL-looking header: an unknown column, ignored
    Case("r12_sql_in_header.csv", "accepted", rows_total=1),
    # --- quarantine row
    Case("q01_unknown_unit.csv", "accepted", quarantined={2: {"unit_code_unknown"}}, rows_total=2),
    Case("q02_unit_not_valid_in_period.csv", "accepted",
         quarantined={2: {"unit_not_valid_in_period"}, 3: {"unit_not_valid_in_period"}}),
    Case("q03_unknown_criterion.csv", "accepted", quarantined={2: {"criterion_code_unknown"}}),
    Case("q04_unknown_kpi.csv", "accepted", quarantined={2: {"kpi_code_unknown"}}),
    Case("q05_unknown_field.csv", "accepted", quarantined={2: {"field_code_unknown"}}),
    Case("q06_score_above_max.csv", "accepted", quarantined={2: {"score_out_of_range"}}),
    Case("q07_score_below_zero.csv", "accepted", quarantined={2: {"score_out_of_range"}}),
    Case("q08_score_not_numeric.csv", "accepted", quarantined={2: {"score_not_numeric"}}),
    Case("q09_numerator_gt_denominator.csv", "accepted", quarantined={2: {"numerator_gt_denominator"}}),
    Case("q10_period_in_future.csv", "accepted", quarantined={2: {"period_in_future"}}),
    Case("q11_received_not_balanced.csv", "accepted", quarantined={2: {"received_not_balanced"}}),
    Case("q12_duplicate_key.csv", "accepted",
         quarantined={2: {"duplicate_key_in_file"}, 4: {"duplicate_key_in_file"}}, rows_total=3),
    Case("q13_negative_count.csv", "accepted", quarantined={2: {"count_negative"}}),
    Case("q14_count_1e309.csv", "accepted", quarantined={2: {"count_not_numeric"}}),
    Case("q15_count_nan.csv", "accepted", quarantined={2: {"count_not_numeric"}}),
    Case("q16_count_text.csv", "accepted", quarantined={2: {"count_not_numeric"}}),
    Case("q17_sql_in_cell.csv", "accepted", quarantined={2: {"unit_code_unknown"}}),
    Case("q18_excel_formula.xlsx", "accepted", quarantined={3: {"count_not_numeric"}}, rows_total=2),
    Case("q19_excel_error_cell.xlsx", "accepted", quarantined={3: {"count_not_numeric"}}, rows_total=2),
    Case("q20_excel_merged_title.xlsx", "accepted", rows_total=2),
    Case("q21_period_invalid.csv", "accepted", quarantined={2: {"period_invalid"}}),
    Case("q22_many_rules_one_row.csv", "accepted",
         quarantined={2: {"unit_code_unknown", "field_code_unknown", "count_negative"}}),
    Case("q23_channel_unknown.csv", "accepted", quarantined={2: {"channel_unknown"}}),
    Case("q24_due_date_invalid.csv", "accepted", quarantined={2: {"date_invalid"}}),
    Case("q25_formula_injection.csv", "accepted", quarantined={2: {"unit_code_unknown"}}),
    # --- warn (cross-file: compared with the control files)
    Case("w01_self_appraised_gap.csv", "accepted", warnings={"self_appraised_gap": 1}),
    Case("w02_carried_over_and_swing.csv", "accepted",
         warnings={"carried_over_mismatch": 1, "on_time_rate_swing": 1}, rows_total=2),
    # --- size
    Case("b01_50mb.csv", "accepted", rows_total=BIG_ROWS),
]
BY_NAME = {c.name: c for c in CASES}


# ---------------------------------------------------------------- generated inputs

def _xlsx(path: Path, rows: list[list], *, title: str | None = None, merge_header: bool = False,
          error_cell: tuple[int, int] | None = None) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "it_kpis"
    if title:
        ws.append([title])
        ws.append([])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(rows[0]))
    for row in rows:
        ws.append(row)
    if merge_header:  # "Tử số" spans the numerator and denominator columns: the denominator has no header
        header_row = 3 if title else 1
        ws.merge_cells(start_row=header_row, start_column=4, end_row=header_row, end_column=5)
    if error_cell:
        cell = ws.cell(*error_cell)
        cell.value = "#DIV/0!"
        cell.data_type = "e"
    wb.save(path)


def _cp1258(text: str) -> bytes:
    """Windows-1258 keeps â ê ô ơ ư đ precomposed and writes tone marks as combining characters."""
    out = bytearray()
    for char in text:
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            base, *marks = unicodedata.normalize("NFD", char)
            for n in range(len(marks), -1, -1):  # longest precomposed head cp1258 can write
                head = unicodedata.normalize("NFC", base + "".join(marks[:n]))
                try:
                    out += head.encode("cp1258") + "".join(marks[n:]).encode("cp1258")
                    break
                except UnicodeEncodeError:
                    continue
    return bytes(out)


def _generate(landing: Path, outside: Path) -> None:
    rng = random.Random(3)
    (landing / "par_scores" / "r03_binary_junk.xlsx").write_bytes(b"PK\x03\x04" + rng.randbytes(4096))
    header_vi = "Mã đơn vị,Kỳ báo cáo,Mã lĩnh vực,Kỳ trước chuyển qua,Tiếp nhận trực tuyến,Tiếp nhận trực tiếp," \
                "Tiếp nhận qua BCCI,Giải quyết trước hạn,Giải quyết đúng hạn,Giải quyết quá hạn," \
                "Đang giải quyết trong hạn,Đang giải quyết quá hạn\n227,Tháng 1/2024,,10,20,15,5,10,25,5,8,2\n"
    (landing / "dossier_stats" / "r04_windows_1258.csv").write_bytes(_cp1258(header_vi))
    # TCVN3 (ABC): "Mã đơn vị,Năm,Mã tiêu chí" in the legacy 8-bit font encoding (glyphs shown as Latin-1)
    tcvn3 = "M· ®¬n vÞ,N¨m,M· tiªu chÝ,§iÓm tù ®¸nh gi¸\n227,2024,1.1.1,1\n"
    (landing / "par_scores" / "r05_tcvn3.csv").write_bytes(tcvn3.encode("latin-1"))
    outside.write_text("unit_code,year,criterion_code\n227,2024,1.1.1\n", encoding="utf-8")

    kpi_header = ["Mã đơn vị", "Kỳ báo cáo", "Mã chỉ tiêu", "Tử số", "Mẫu số"]
    _xlsx(landing / "it_kpis" / "r13_merged_header_cells.xlsx",
          [kpi_header, ["227", "2024-01", "DVC_TOAN_TRINH", 80, 100]], merge_header=True)
    _xlsx(landing / "it_kpis" / "q18_excel_formula.xlsx",
          [kpi_header, ["227", "2024-01", "DVC_TOAN_TRINH", 80, 100],
           ["228", "2024-01", "DVC_TOAN_TRINH", "=D2/0", 100]])
    _xlsx(landing / "it_kpis" / "q19_excel_error_cell.xlsx",
          [kpi_header, ["227", "2024-01", "DVC_TOAN_TRINH", 80, 100], ["230", "2024-01", "DVC_TOAN_TRINH", 1, 100]],
          error_cell=(3, 4))
    _xlsx(landing / "it_kpis" / "q20_excel_merged_title.xlsx",
          [kpi_header, ["227", "2024-01", "DVC_TOAN_TRINH", 80, 100], ["7900", "2025-07", "HS_TRUC_TUYEN", 5, 10]],
          title="BÁO CÁO CHỈ TIÊU ỨNG DỤNG CNTT THÁNG 1/2024")

    padding = "x" * 400
    with (landing / "dossiers" / "b01_50mb.csv").open("w", encoding="utf-8") as out:
        out.write("dossier_id,unit_code,field_code,procedure_code,channel,received_at,due_at,completed_at,status\n")
        for i in range(BIG_ROWS):
            day = 1 + i % 28
            out.write(f"BIG-{i:07d},0790{i % 2},HT,1.0001,online,2026-02-{day:02d},2026-03-{day:02d},,"
                      f"pending {padding}\n")


# ---------------------------------------------------------------- the run

@dataclass
class Corpus:
    dsn: str
    files: dict[str, dict]
    quarantine: dict[str, dict[int, set[str]]]
    warnings: dict[str, dict[str, int]]
    run_level: list[dict]
    report: Path


@pytest.fixture(scope="module")
def corpus(warehouse_dsn: str, tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    landing = root / "landing"
    shutil.copytree(CORPUS / "landing", landing)
    outside = root / "r11_outside.csv"
    _generate(landing, outside)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", warehouse_dsn)
        mp.setenv("REFORM_SEEDS", str(SEEDS))
        mp.setenv("REFORM_ARCHIVE", str(root / "archive"))
        mp.setenv("REFORM_LANDING", str(landing))
        open_run(warehouse_dsn, RUN)
        results = ingest.load_paths([landing], run_id=RUN, landing=landing, dsn=warehouse_dsn)
        # a file name that climbs out of the landing folder
        results.append(ingest.load_file(landing / "par_scores" / ".." / ".." / outside.name, run_id=RUN,
                                        landing=landing, dsn=warehouse_dsn))
        for result in results:
            if result.file_id is not None:
                V.validate_file(warehouse_dsn, result.file_id, RUN)
        V.warn_checks(warehouse_dsn, RUN)
        from reform_etl.report import build_report

        report = build_report(warehouse_dsn, RUN, root / "reports")

    with psycopg.connect(warehouse_dsn) as conn:
        cur = conn.execute("select * from audit.submission_files where run_id = %s", (RUN,))
        names = [d.name for d in cur.description]
        files = {row[names.index("file_name")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
        quarantine: dict[str, dict[int, set[str]]] = {}
        for kind in ("par_scores", "dossier_stats", "it_kpis", "dossiers"):
            for file_name, row_number, failed in conn.execute(
                f"select f.file_name, q._row_number, q.failed_rules from quarantine.{kind} q "
                "join audit.submission_files f on f.file_id = q._file_id where f.run_id = %s", (RUN,)):
                quarantine.setdefault(file_name, {})[row_number] = {r["rule"] for r in failed}
        warnings: dict[str, dict[str, int]] = {}
        for file_name, rule, rows in conn.execute(
            "select f.file_name, r.expectation, r.rows_failed from audit.validation_results r "
            "join audit.submission_files f using (file_id) where r.run_id = %s and r.severity = 'warn' "
            "and not r.success", (RUN,)):
            warnings.setdefault(file_name, {})[rule] = rows
        cur = conn.execute("select kind, sample_failing_rows, rows_failed from audit.validation_results "
                           "where run_id = %s and file_id is null and not success", (RUN,))
        run_level = [dict(zip([d.name for d in cur.description], r, strict=True)) for r in cur.fetchall()]
    return Corpus(warehouse_dsn, files, quarantine, warnings, run_level, report)


def test_corpus_has_at_least_30_bad_cases():
    assert len([c for c in CASES if not c.name.startswith("control")]) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_outcome(corpus: Corpus, case: Case):
    assert case.name in corpus.files, f"{case.name} was not registered"
    f = corpus.files[case.name]
    assert f["status"] == case.status, (f["status"], f["error_code"], f["error"])
    if case.status == "rejected":
        assert f["error_code"] == case.error_code, f["error"]
        if case.message:
            assert case.message in f["error"]
        assert f["rows_loaded"] == 0 and f["rows_quarantined"] == 0
        with psycopg.connect(corpus.dsn) as conn:  # the GX file suite recorded the same reason
            failed = [r for (r,) in conn.execute(
                "select expectation from audit.validation_results where file_id = %s and not success "
                "and severity = 'reject_file'", (f["file_id"],))]
        assert failed == [PARSE_REJECTS[case.error_code]]
        return
    assert corpus.quarantine.get(case.name, {}) == case.quarantined
    assert f["rows_quarantined"] == len(case.quarantined)
    # Corpus files share units and periods, so a later one replaces an earlier one: correction_fewer_rows
    # depends on their load order, not on the case (tests/test_submission_status.py covers it).
    warned = dict(corpus.warnings.get(case.name, {}))
    replaced = warned.pop("correction_fewer_rows", 0)
    assert warned == case.warnings
    assert f["warnings"] == sum(case.warnings.values()) + replaced
    if case.rows_total is not None:
        assert f["rows_total"] == case.rows_total
    assert f["rows_loaded"] + f["rows_quarantined"] == f["rows_total"]


def test_every_other_file_still_loads(corpus: Corpus):
    """One bad file never costs another: every file not rejected loads all rows but its own bad ones."""
    for case in CASES:
        f = corpus.files[case.name]
        if case.status == "accepted":
            assert f["rows_loaded"] == f["rows_total"] - len(case.quarantined), case.name
    for name in ("control_par.csv", "control_stats.csv", "control_kpis.csv", "control_dossiers.csv"):
        f = corpus.files[name]
        assert (f["status"], f["rows_quarantined"], f["warnings"]) == ("accepted", 0, 0)
        assert f["rows_loaded"] == BY_NAME[name].rows_total


def test_nothing_is_silently_dropped(corpus: Corpus):
    """rows loaded + rows quarantined = data rows in the file = rows in raw, for every accepted file."""
    with psycopg.connect(corpus.dsn) as conn:
        for f in corpus.files.values():
            if f["status"] != "accepted":
                continue
            raw = conn.execute(f"select count(*) from raw.{f['kind']} where _file_id = %s", (f["file_id"],)).fetchone()
            quarantined = conn.execute(f"select count(*) from quarantine.{f['kind']} where _file_id = %s",
                                       (f["file_id"],)).fetchone()
            assert f["rows_loaded"] + f["rows_quarantined"] == f["rows_total"] == raw[0], f["file_name"]
            assert quarantined[0] == f["rows_quarantined"], f["file_name"]


def test_sql_looking_text_is_only_data(corpus: Corpus):
    with psycopg.connect(corpus.dsn) as conn:
        assert conn.execute("select count(*) from raw.par_scores").fetchone()[0] > 0
        assert conn.execute("select count(*) from audit.submission_files").fetchone()[0] >= len(CASES)
        value = conn.execute("select unit_code from quarantine.par_scores q join audit.submission_files f "
                             "on f.file_id = q._file_id where f.file_name = 'q17_sql_in_cell.csv'").fetchone()[0]
    assert value == "227'; drop table raw.par_scores; --"  # kept as text, as it arrived (it has no code's shape)


def test_quarantine_keeps_observed_values(corpus: Corpus):
    with psycopg.connect(corpus.dsn) as conn:
        (failed,) = conn.execute(
            "select q.failed_rules from quarantine.dossier_stats q join audit.submission_files f "
            "on f.file_id = q._file_id where f.file_name = 'q22_many_rules_one_row.csv'").fetchone()
    by_rule = {r["rule"]: r for r in failed}
    assert by_rule["unit_code_unknown"]["observed"] == {"unit_code": "88888"}
    assert by_rule["count_negative"]["observed"] == {"received_online": "-20"}
    assert by_rule["field_code_unknown"]["severity"] == "quarantine_row"
    assert by_rule["field_code_unknown"]["message_vi"] and by_rule["field_code_unknown"]["message_en"]


def test_unit_missing_for_period_is_a_run_level_warning(corpus: Corpus):
    by_kind = {r["kind"]: r for r in corpus.run_level}
    assert set(by_kind) == {"dossier_stats"}
    assert by_kind["dossier_stats"]["sample_failing_rows"] == [{"period": "2024-03", "unit_code": "230"}]


def test_results_are_stored_per_rule(corpus: Corpus):
    with psycopg.connect(corpus.dsn) as conn:
        runs = conn.execute("select status, ended_at is not null, files_validated from audit.validation_runs "
                            "where run_id = %s", (RUN,)).fetchone()
        (missing,) = conn.execute(
            "select count(*) from audit.submission_files f where run_id = %s and status in ('accepted', 'rejected') "
            "and not exists (select 1 from audit.validation_results r where r.file_id = f.file_id)", (RUN,)).fetchone()
        row = conn.execute(
            "select r.suite, r.severity, r.rows_failed, r.observed_value, r.sample_failing_rows, r.gx_result_path "
            "from audit.validation_results r join audit.submission_files f using (file_id) "
            "where f.file_name = 'q09_numerator_gt_denominator.csv' and r.expectation = 'numerator_gt_denominator'"
        ).fetchone()
    assert runs[0] == "success" and runs[1] and runs[2] >= len(CASES) - 1
    assert missing == 0
    suite, severity, rows_failed, observed, sample, path = row
    assert (suite, severity, rows_failed, observed) == ("it_kpis", "quarantine_row", 1, 1)
    assert sample[0]["_row_number"] == 2 and sample[0]["numerator"] == "950"
    assert (corpus.report.parent / "data_docs" / path).is_file()


def test_validation_is_idempotent(corpus: Corpus):
    """Validating a file again (a retried task) and re-running the run checks change nothing."""
    with psycopg.connect(corpus.dsn) as conn:
        file_id = corpus.files["q12_duplicate_key.csv"]["file_id"]

        def state():
            return (
                conn.execute("select count(*) from quarantine.it_kpis where _file_id = %s", (file_id,)).fetchone(),
                conn.execute("select count(*), count(*) filter (where not success) from audit.validation_results "
                             "where run_id = %s", (RUN,)).fetchone(),
                conn.execute("select status, rows_loaded, rows_quarantined, warnings from audit.submission_files "
                             "where file_id = %s", (file_id,)).fetchone(),
            )

        before = state()
        conn.commit()
        assert V.validate_file(corpus.dsn, file_id, RUN)["rows_quarantined"] == 2
        V.warn_checks(corpus.dsn, RUN)
        assert state() == before
