"""Landing -> raw: registry, lineage, parsing of real files, duplicates, supersede, atomicity."""

from __future__ import annotations

import csv
import io
import os
import unicodedata
from pathlib import Path

import pytest
from openpyxl import Workbook
from psycopg import sql

from reform_etl import ingest
from reform_etl.ingest import canonical_lines, normalise
from reform_etl.ingest import copy as ingest_copy
from reform_etl.ingest import load as ingest_load
from reform_etl.kinds import KIND_SPECS, ValueType

DOSSIER_VI = ["Mã đơn vị", "Kỳ báo cáo", "Mã lĩnh vực", "Kỳ trước chuyển qua", "Tiếp nhận trực tuyến",
              "Tiếp nhận trực tiếp", "Tiếp nhận qua BCCI", "Giải quyết trước hạn", "Giải quyết đúng hạn",
              "Giải quyết quá hạn", "Đang giải quyết trong hạn", "Đang giải quyết quá hạn"]
DOSSIER_EN = ["unit_code", "period", "field_code", "received_carried_over", "received_online", "received_direct",
              "received_postal", "resolved_early", "resolved_on_time", "resolved_late", "pending_in_time",
              "pending_overdue"]


def write_csv(path: Path, rows: list[list], *, bom: bool = False, delimiter: str = ",", mtime: float | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    if mtime:
        os.utime(path, (mtime, mtime))
    return path


def write_xlsx(path: Path, rows: list[list], *, sheet: str = "Sheet1", extra_first_sheet: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = Workbook()
    if extra_first_sheet:
        workbook.active.title = "Hướng dẫn"
        workbook.active.append(["Điền số liệu vào sheet bên cạnh"])
        target = workbook.create_sheet(sheet)
    else:
        target = workbook.active
        target.title = sheet
    for row in rows:
        target.append(row)
    workbook.save(path)
    return path


@pytest.fixture()
def general(monkeypatch) -> list[str]:
    """The names of the files the general path (temp table, then one normalising insert) loads."""
    names, stage = [], ingest_load._stage_and_normalise
    monkeypatch.setattr(ingest_load, "_stage_and_normalise",
                        lambda conn, path, *args: names.append(path.name) or stage(conn, path, *args))
    return names


def load(landing: Path, *paths: Path) -> list[ingest.FileResult]:
    return ingest.load_paths(list(paths) or [landing], landing=landing)


def raw_rows(db, kind: str, file_id: int) -> list[tuple]:
    return db.execute(f"select * from raw.{kind} where _file_id = %s order by _row_number", (file_id,)).fetchall()


def test_csv_with_bom_title_rows_and_vietnamese_headers(db, landing):
    path = write_csv(landing / "dossier_stats" / "bc.csv", [
        ["BÁO CÁO TÌNH HÌNH GIẢI QUYẾT TTHC"], ["Kỳ báo cáo: tháng 3/2021"], [],
        DOSSIER_VI,
        ["227", "Tháng 3/2021", "", "1.296", "10", "5", "0", "1000", "295", "1", "10", "5"],
    ], bom=True)
    [result] = load(landing, path)
    assert result.status == "loaded" and result.rows_total == 1
    [row] = raw_rows(db, "dossier_stats", result.file_id)
    assert row[:6] == (result.file_id, 5, "227", "2021-03", None, "1296")  # row 5 of the file: lineage
    header_row, mapping = db.execute("select header_row, header_mapping from audit.submission_files "
                                     "where file_id = %s", (result.file_id,)).fetchone()
    assert header_row == 4 and mapping["Mã đơn vị"] == "unit_code"


def test_csv_without_bom_english_keys_and_semicolons(db, landing):
    path = write_csv(landing / "dossier_stats" / "en.csv", [
        DOSSIER_EN, ["7900", "03/2026", "HT", "0", "1 296", "1", "0", "1", "1", "0", "1295", "0"],
    ], delimiter=";")
    [result] = load(landing, path)
    assert result.status == "loaded"
    [row] = raw_rows(db, "dossier_stats", result.file_id)
    assert row[2:6] == ("07900", "2026-03", "HT", "0") and row[6] == "1296"


def test_xlsx_with_numeric_codes_title_rows_and_a_named_sheet(db, landing):
    path = write_xlsx(landing / "it_kpis" / "kpi.xlsx", [
        ["CHỈ TIÊU ỨNG DỤNG CNTT"], [None],
        ["MÃ ĐƠN VỊ", "KỲ BÁO CÁO", "MÃ CHỈ TIÊU", "TỬ SỐ", "MẪU SỐ"],
        [1, "T3/2021", "HS_TRUC_TUYEN", 1295.0, 1296],
        [97, "2026-03", "HS_TRUC_TUYEN", "1.000", "2,000"],
    ], sheet="it_kpis", extra_first_sheet=True)
    [result] = load(landing, path)
    assert result.status == "loaded" and result.rows_total == 2
    rows = raw_rows(db, "it_kpis", result.file_id)
    assert [r[2:] for r in rows] == [("001", "2021-03", "HS_TRUC_TUYEN", "1295", "1296"),
                                     ("00097", "2026-03", "HS_TRUC_TUYEN", "1000", "2000")]
    assert [r[1] for r in rows] == [4, 5]
    assert db.execute("select sheet_name from audit.submission_files where file_id = %s",
                      (result.file_id,)).fetchone() == ("it_kpis",)


def test_text_is_normalised_to_nfc_and_decimal_commas_read(db, landing):
    evidence = unicodedata.normalize("NFD", "Báo cáo số 12/BC-UBND")
    path = write_csv(landing / "par_scores" / "s.csv", [
        ["unit_code", "year", "criterion_code", "self_score", "appraised_score", "evidence"],
        ["227", "2021", "1.1.1", "2,5", "2.25", evidence],
    ])
    [result] = load(landing, path)
    [row] = raw_rows(db, "par_scores", result.file_id)
    assert row[2:8] == ("227", "2021", "1.1.1", "2.5", "2.25", "Báo cáo số 12/BC-UBND")
    assert unicodedata.is_normalized("NFC", row[7])


def test_a_file_may_carry_only_one_of_the_two_scores(db, landing):
    path = write_csv(landing / "par_scores" / "appraised.csv", [
        ["Mã đơn vị", "Năm", "Mã tiêu chí", "Điểm thẩm định"], ["228", "2022", "1.1.1", "0,75"]])
    [result] = load(landing, path)
    assert result.status == "loaded"
    assert raw_rows(db, "par_scores", result.file_id)[0][2:8] == ("228", "2022", "1.1.1", None, "0.75", None)


def test_same_bytes_twice_load_once(db, landing):
    rows = [DOSSIER_EN, ["230", "2021-04", "", "0", "1", "1", "0", "1", "1", "0", "0", "0"]]
    first = write_csv(landing / "dossier_stats" / "a.csv", rows)
    [loaded] = load(landing, first)
    assert load(landing) == []  # the same file seen again: nothing new to do
    assert ingest.load_file(first, landing=landing).file_id == loaded.file_id  # explicit reload is a no-op
    copy = write_csv(landing / "dossier_stats" / "copy_of_a.csv", rows)
    [duplicate] = load(landing, copy)
    assert duplicate.status == "duplicate" and duplicate.duplicate_of == loaded.file_id
    assert db.execute("select count(*) from raw.dossier_stats where unit_code = '230'").fetchone() == (1,)
    assert db.execute("select error from audit.submission_files where file_id = %s",
                      (duplicate.file_id,)).fetchone()[0].startswith(f"same content as file #{loaded.file_id}")


def test_a_later_file_for_the_same_unit_and_period_supersedes_the_earlier(db, landing):
    old = write_csv(landing / "dossier_stats" / "jun.csv", [
        DOSSIER_EN, ["231", "2024-06", "", "0", "5", "5", "0", "5", "5", "0", "0", "0"],
        ["232", "2024-06", "", "0", "1", "1", "0", "1", "1", "0", "0", "0"]], mtime=1_700_000_000)
    new = write_csv(landing / "dossier_stats" / "jun_fix.csv", [
        DOSSIER_EN, ["231", "2024-06", "", "0", "6", "5", "0", "6", "5", "0", "0", "0"]], mtime=1_700_000_100)
    first, second = load(landing, old, new)
    current = dict(db.execute(
        "select file_id, is_current from audit.v_submission_partitions where unit_code = '231' and period = '2024-06'"
    ).fetchall())
    assert current == {first.file_id: False, second.file_id: True}
    assert db.execute("select superseded_by_file_id from audit.v_submission_partitions "
                      "where file_id = %s and unit_code = '231'", (first.file_id,)).fetchone() == (second.file_id,)
    # the other unit of the old file is untouched, and both files' rows are kept in raw
    assert db.execute("select is_current from audit.v_submission_partitions where unit_code = '232'").fetchone() == (
        True,)
    assert db.execute("select count(*) from raw.dossier_stats where unit_code = '231'").fetchone() == (2,)


def test_a_file_failing_mid_copy_leaves_no_rows_and_others_still_load(db, landing):
    good_rows = [["233", f"2021-{m:02d}", "", "0", "1", "1", "0", "1", "1", "0", "0", "0"] for m in range(1, 13)]
    bad = landing / "dossier_stats" / "broken.csv"
    write_csv(bad, [DOSSIER_EN, *good_rows * 400])
    with bad.open("ab") as handle:
        handle.write("234,2021-01,,0,1,1,0,1,1,0,0,0,Tr\xe1 l\xe1i\n".encode("cp1258"))  # not UTF-8, row 4802
    good = write_csv(landing / "dossier_stats" / "good.csv", [DOSSIER_EN, good_rows[0][:1] + ["2022-01"] +
                                                             good_rows[0][2:]])
    broken, fine = load(landing, bad, good)
    assert broken.status == "rejected" and broken.error_code == "unreadable" and "not UTF-8" in broken.error
    assert db.execute("select count(*) from raw.dossier_stats r join audit.submission_files f "
                      "on f.file_id = r._file_id where f.path = %s", (str(bad),)).fetchone() == (0,)
    assert fine.status == "loaded" and len(raw_rows(db, "dossier_stats", fine.file_id)) == 1


@pytest.mark.parametrize("rows, code, words", [
    ([["unit_code", "period", "received_online"], ["227", "2021-03", "1"]], "missing_columns", "Kỳ trước chuyển qua"),
    ([["a", "b"], ["1", "2"]], "no_header", "no recognisable header"),
    ([DOSSIER_EN], "empty", "no data rows"),
    ([DOSSIER_EN[:2] + ["unit_code"] + DOSSIER_EN[2:]], "duplicate_columns", "appears twice"),
])
def test_file_level_problems_reject_the_file_with_a_reason(db, landing, rows, code, words):
    path = write_csv(landing / "dossier_stats" / f"{code}.csv", rows)
    [result] = load(landing, path)
    assert (result.status, result.error_code) == ("rejected", code)
    assert words in result.error
    assert db.execute("select status, error_code from audit.submission_files where file_id = %s",
                      (result.file_id,)).fetchone() == ("rejected", code)


def test_wrong_folder_and_wrong_kind_are_rejected(db, landing):
    stray = write_csv(landing / "misc" / "x.csv", [DOSSIER_EN, ["stray"]])
    misplaced = write_csv(landing / "par_scores" / "y.csv", [DOSSIER_EN, ["227", "2021-03"] + ["0"] * 10])
    first, second = load(landing, stray, misplaced)
    assert (first.error_code, second.error_code) == ("wrong_kind", "wrong_kind")
    assert "'misc' is not a submission kind" in first.error
    assert "header is that of 'dossier_stats'" in second.error


def test_a_path_outside_the_landing_folder_is_refused(db, landing, tmp_path):
    outside = write_csv(tmp_path / "secret.csv", [DOSSIER_EN, ["secret"]])
    [result] = load(landing, landing / "dossier_stats" / ".." / ".." / "secret.csv")
    assert result.status == "rejected" and result.error_code == "unsafe_file_path"
    assert outside.exists()


def test_every_loaded_file_is_archived_by_content(db, landing, tmp_path):
    path = write_csv(landing / "dossier_stats" / "arch.csv", [DOSSIER_EN, ["235", "2021-05"] + ["0"] * 10])
    [result] = load(landing, path)
    archived = Path(db.execute("select archived_path from audit.submission_files where file_id = %s",
                               (result.file_id,)).fetchone()[0])
    assert archived.read_bytes() == path.read_bytes() and archived.is_relative_to(tmp_path / "archive")


def test_a_file_that_fails_to_load_leaves_no_copy_in_the_archive(db, landing, tmp_path):
    """The copy is made on a thread while the rows load; a file rejected (or failing) meanwhile keeps none."""
    empty = write_csv(landing / "dossier_stats" / "header_only.csv", [["Biểu II.06a (lưu trữ)"], DOSSIER_EN])
    ragged = write_csv(landing / "dossiers" / "no_id.csv", [
        ["dossier_id", "unit_code", "field_code", "procedure_code", "channel", "received_at", "due_at"],
        ["x" * 300, "07900", "HT", "1.001234", "online", "2026-09-01", "2026-09-05"]])  # a key too long
    results = load(landing, empty, ragged)
    assert [(r.status, r.error_code) for r in results] == [("rejected", "empty"), ("rejected", "value_too_long")]
    archive = tmp_path / "archive"
    assert not archive.exists() or not [p for p in archive.rglob("*") if p.is_file()]


MESSY_DOSSIERS = [
    ["Mã hồ sơ", "Mã đơn vị", "Mã lĩnh vực", "Mã TTHC", "Kênh nộp", "Ngày tiếp nhận", "Ngày hẹn trả",
     "Ngày trả kết quả", "Trạng thái", "Hài lòng"],
    ["H1", "227", "F01", "1.000001", "online", "2024-03-05T08:30:00", "2024-03-10T08:30:00", "", "processing", "true"],
    [" H2 ", "22", "F01", "1.000001", "Trực tuyến", "05/03/2024", "10/03/2024 16:00", "2024-03-09T00:00:00",
     "completed", "Có"],
    ["H3", "1", "F01", "1.000001", "direct", "2025-08-01 09:15", "2025-08-05", "", "", ""],
    ["H4", "h44.07", "F0\u0301", "\u00a01.000002", "postal", "2025-08-01T09:15:00", "2025-08-05T09:15:00",
     "2025-08-04T10:00:00", "completed", "không"],
    ["", "", "", "", "", "", "", "", "", ""],
    ["  ", " ", "", "\t", "", "", "", "", "", ""],
    ["H5", "25", "F01", "1.000001", "direct", "31/02/2024", "2024-1x-01", "", "processing", "false"],
]


@pytest.mark.parametrize("lookup_rows", [1000, 0], ids=["rows-looked-up", "file-scanned"])
def test_a_clean_csv_copied_straight_in_is_normalised_exactly_as_the_general_path_does(db, landing, monkeypatch,
                                                                                      lookup_rows, general):
    """All-known columns go straight into raw.<kind> and are fixed in place; an extra column sends the same
    rows through the temp-table path. Both must store the same cells, row numbers and counts, whether the
    rows the line scan could not prove canonical are looked up by number or found by a scan of the file."""
    monkeypatch.setattr(normalise, "LOOKUP_ROWS", lookup_rows)
    bom = lookup_rows == 0  # other bytes than the first case's (the same bytes would load once)
    direct = write_csv(landing / "dossiers" / "direct.csv", MESSY_DOSSIERS, bom=bom)
    staged = write_csv(landing / "dossiers" / "staged.csv", [[*row, "ghi chú"] for row in MESSY_DOSSIERS], bom=bom)
    [a, b] = load(landing, direct, staged)
    assert general == ["staged.csv"]
    assert a.status == b.status == "loaded" and a.rows_total == b.rows_total == 5
    rows_a, rows_b = raw_rows(db, "dossiers", a.file_id), raw_rows(db, "dossiers", b.file_id)
    assert [r[1:] for r in rows_a] == [r[1:] for r in rows_b]
    assert [r[1] for r in rows_a] == [2, 3, 4, 5, 8]  # source rows; the two blank rows are not data
    assert rows_a[1][2:8] == ("H2", "022", "F01", "1.000001", "Trực tuyến", "2024-03-05")
    assert rows_a[2][3] == "00001" and rows_a[3][3:5] == ("H44.07", unicodedata.normalize("NFC", "F0\u0301"))
    partitions = "select unit_code, period, row_count from audit.submission_partitions where file_id = %s order by 1, 2"
    assert db.execute(partitions, (a.file_id,)).fetchall() == db.execute(partitions, (b.file_id,)).fetchall()


def test_the_row_sequence_restarts_for_every_file_and_a_rollback_leaves_no_gap(db, landing):
    first = write_csv(landing / "dossiers" / "one.csv", MESSY_DOSSIERS[:3])
    second = write_csv(landing / "dossiers" / "two.csv", [["x"], MESSY_DOSSIERS[0], *MESSY_DOSSIERS[3:5]])
    [a, b] = load(landing, first, second)
    assert [r[1] for r in raw_rows(db, "dossiers", a.file_id)] == [2, 3]
    assert [r[1] for r in raw_rows(db, "dossiers", b.file_id)] == [3, 4]  # header on row 2


# Cells by value type: canonical ones and near misses (spaces, case, zeros, separators, shapes, lengths).
TRICKY = {
    ValueType.TEXT: ["abc", "a b", " abc", "abc ", "a\tb", "Trực tuyến", "F0\u0301", "a,b", 'say "x"', "\u00a0x",
                     "x" * 250],
    ValueType.CODE: ["1.000001", "HT", "ht", " HT", "HT ", "2609000000001", "x" * 200, "x" * 201, "a b"],
    ValueType.UNIT_CODE: ["04792", "4792", "123", "022", "H44.07", "h44.07", "H44.07.1.2.3.4", "A1", "04792 ",
                          "0479", "047921", "H" + "4" * 41],
    ValueType.COUNT: ["0", "00", "12", "1.000", "1,000", "-5", "+5", "1e3", "9" * 18, "9" * 19, "12.0"],
    ValueType.DECIMAL: ["1.5", "1.50", "0.5", ".5", "5.", "2,5", "007", "0", "10", "-1.5", "1.0", "0.0",
                        "1" * 18, "1" * 19, "1.2345678901234567"],
    ValueType.YEAR: ["2021", "21", "2021.0", "Năm 2021", "02021"],
    ValueType.PERIOD: ["2021-03", "2021-13", "2021-00", "2021-3", "03/2021", "2021-03-01"],
    ValueType.DATE: ["2026-01-05", "2026-01-05T08:30:00", "2026-01-05T00:00:00", "2026-01-05 08:30", "05/01/2026",
                     "2026-1x-01", "2026-01-05T08:30", "2026-01-05T08:30:00.5", "2026-02-30"],
    ValueType.BOOLEAN: ["true", "false", "True", "1", "có", "FALSE"],
}


@pytest.mark.parametrize("kind", list(KIND_SPECS))
def test_the_line_scan_proves_canonical_only_lines_the_normalisers_leave_unchanged(db, kind):
    """Every line the client-side scan lets through unchecked must be one the SQL normalisers would not
    change (and whose key cells fit a btree); a clean export must be let through."""
    spec = KIND_SPECS[kind]
    columns = spec.keys
    clean = {key: TRICKY[spec.column(key).type][0] for key in columns}
    blank = {key: "" for key in columns}
    lines = [dict(clean), blank, {**blank, columns[-1]: clean[columns[-1]]}]
    lines += [{**clean, key: value} for key in columns for value in TRICKY[spec.column(key).type]]
    for delimiter in (",", ";", "\t"):
        body = io.StringIO()
        csv.writer(body, delimiter=delimiter, lineterminator="\r\n" if delimiter == ";" else "\n").writerows(
            [line[key] for key in columns] for line in lines)
        scan = canonical_lines.LineScan(canonical_lines.line_run_pattern(spec, columns, delimiter))
        data = body.getvalue().encode()
        for start in range(0, len(data), 97):  # chunks that cut lines and cells anywhere
            scan.feed(data[start:start + 97])
        assert scan.lines == len(lines)  # the COPY's guard: rows = lines
        unproven = set(scan.finish())
        assert 0 not in unproven and 2 not in unproven  # the clean line, and a line with one cell
        assert 1 in unproven  # a row of blank cells is dropped by the loader
        period = spec.period_column
        for number, line in enumerate(lines):
            if number in unproven:
                continue
            cells = {key: sql.Literal(line[key] or None) for key in columns}
            same = sql.SQL(", ").join(
                sql.SQL("{} is not distinct from {}").format(
                    normalise._normaliser(spec, key, cells[key], normalise._normaliser(spec, period, cells[period])),
                    cells[key])
                for key in columns)
            unchanged = db.execute(sql.SQL("select {}").format(same)).fetchone()
            assert all(unchanged), (delimiter, line, dict(zip(columns, unchanged, strict=True)))
            for key in {*spec.key, "unit_code", period}:
                assert len(line[key]) <= canonical_lines.KEY_CELL_MAX, (delimiter, key, line[key])
        proven = [lines[n] for n in range(len(lines)) if n not in unproven]
        assert len(proven) > len(columns), delimiter  # canonical variants of every type get through


def test_the_line_scan_keeps_no_long_line_whole(monkeypatch):
    """A line longer than LONG_LINE is noted unproven without being held: memory stays bounded."""
    spec = KIND_SPECS["it_kpis"]
    monkeypatch.setattr(canonical_lines.LineScan, "LONG_LINE", 64)
    scan = canonical_lines.LineScan(canonical_lines.line_run_pattern(spec, spec.keys, ","))
    clean = b"04792,2026-01,K1,1,2\n"
    for chunk in (clean, b"04792,2026-01,K" + b"x" * 100, b"y" * 100, b"z" * 10 + b",1,2\n" + clean, clean[:7],
                  clean[7:] + b"h4,2026-01,K1,1,2\n" + clean[:-1]):
        scan.feed(chunk)
        assert len(scan._tail) <= 64 + len(chunk)
    assert scan.lines == 6
    assert scan.finish() == [1, 4]  # the long line and the lower-case unit; the last line has no line break
    scan = canonical_lines.LineScan(canonical_lines.line_run_pattern(spec, spec.keys, ","))
    for chunk in (clean, b"04792,2026-01,K" + b"x" * 100, b"y" * 100):  # a long last line without its line break
        scan.feed(chunk)
    assert scan.lines == 2 and scan.finish() == [1]


CLEAN_DOSSIERS = [
    [c.key for c in KIND_SPECS["dossiers"].columns],
    ["D1", "04792", "HT", "1.000001", "online", "2026-01-05T08:30:00", "2026-01-10", "", "processing", "true"],
    ["D2", "04792", "HT", "1.000001", "direct", "2026-01-06", "2026-01-11", "2026-01-09", "completed", ""],
]


def test_a_quoted_line_break_sends_a_clean_file_the_general_way(db, landing, general):
    """COPY reads a quoted line break as part of its cell: fewer rows than lines, so the line scan's row numbers
    would not be the rows'. The COPY is undone and the general path loads the file, numbered by source line."""
    broken = [*CLEAN_DOSSIERS[:2], [*CLEAN_DOSSIERS[2][:8], "completed\nlate", ""], [*CLEAN_DOSSIERS[2][:8], "x", ""]]
    path = write_csv(landing / "dossiers" / "quoted.csv", broken)
    [result] = load(landing, path)
    assert general == ["quoted.csv"] and result.status == "loaded" and result.rows_total == 3
    assert [r[1] for r in raw_rows(db, "dossiers", result.file_id)] == [2, 4, 5]  # the line each record ends on


def test_a_record_file_is_a_frozen_table_of_its_own_attached_to_raw(db, landing):
    """dossiers are held by file: each file's rows go into a table of their own, with no index, COPYed with
    FREEZE (all-visible at once), and attached as a partition of raw.dossiers, by either load path; a
    rejected file leaves no table behind."""
    direct = write_csv(landing / "dossiers" / "direct.csv", CLEAN_DOSSIERS)
    staged = write_csv(landing / "dossiers" / "staged.csv", [[*row, "ghi chú"] for row in CLEAN_DOSSIERS])
    empty = write_csv(landing / "dossiers" / "empty.csv", CLEAN_DOSSIERS[:1])
    a, b, c = load(landing, direct, staged, empty)
    assert (a.status, b.status, c.status) == ("loaded", "loaded", "rejected")
    tables = db.execute(
        "select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = 'raw.dossiers'::regclass and c.relname = any(%s)",
        ([f"dossiers__file_{f.file_id}" for f in (a, b, c)],)).fetchall()
    assert set(tables) == {(f"dossiers__file_{f.file_id}", f"FOR VALUES IN ('{f.file_id}')") for f in (a, b)}
    assert db.execute("select count(*) from pg_index where indrelid = any(array[%s, %s]::regclass[])",
                      (f"raw.dossiers__file_{a.file_id}", f"raw.dossiers__file_{b.file_id}")).fetchone() == (0,)
    db.execute(f"analyze raw.dossiers__file_{a.file_id}")
    assert db.execute("select relpages > 0 and relallvisible = relpages from pg_class where oid = %s::regclass",
                      (f"raw.dossiers__file_{a.file_id}",)).fetchone() == (True,)
    assert [r[1:] for r in raw_rows(db, "dossiers", a.file_id)] == [r[1:] for r in raw_rows(db, "dossiers", b.file_id)]
    assert [r[1] for r in raw_rows(db, "dossiers", a.file_id)] == [2, 3]


def _records(tag: str, n: int = 40) -> list[list[str]]:
    """A record file of n dossiers; some lines need normalising (a date-time with a space and no seconds, a
    commune code that lost its zero), in both halves of the file."""
    rows = [[c.key for c in KIND_SPECS["dossiers"].columns]]
    for i in range(n):
        received = "2026-01-05 08:00" if i % 7 == 3 else f"2026-01-05T08:{i % 60:02d}:00"
        rows.append([f"{tag}{i:04d}", "4792" if i % 11 == 5 else "04792", "HT", "1.000001", "online", received,
                     "2026-01-10", "", "processing", ""])
    return rows


@pytest.mark.parametrize("halves", [True, False], ids=["in-halves", "whole"])
def test_a_large_record_file_is_copied_in_two_halves_at_once(db, landing, monkeypatch, halves):
    """Past SPLIT_COPY_BYTES a clean record file is COPYed as two halves at the same time (the second on a
    connection of its own), each with FREEZE into a table made in its own transaction (else COPY refuses);
    the file's table is then partitioned by row number. The rows, their numbers and their normalised cells
    are those of the file loaded whole."""
    monkeypatch.setattr(ingest_copy, "SPLIT_COPY_BYTES", 1 if halves else 1 << 40)
    path = write_csv(landing / "dossiers" / f"large_{halves}.csv", _records(f"H{halves:d}-"))
    [result] = load(landing, path)
    assert result.status == "loaded" and result.rows_loaded == 40
    rows = raw_rows(db, "dossiers", result.file_id)
    assert [r[1] for r in rows] == list(range(2, 42))
    assert {r[3] for r in rows} == {"04792"} and "2026-01-05T08:00:00" in {r[7] for r in rows}
    assert not any(" " in r[7] for r in rows)
    halves_found = db.execute(
        "select c.relname, pg_get_expr(c.relpartbound, c.oid), c.relkind from pg_inherits i "
        "join pg_class c on c.oid = i.inhrelid where i.inhparent = to_regclass(%s) order by 1",
        (f"raw.dossiers__file_{result.file_id}",)).fetchall()
    if halves:
        second = (ingest.read_bytes(path).halfway or (0, 0))[1]
        assert 2 < second < 42
        assert halves_found == [
            (f"dossiers__file_{result.file_id}__half_1", f"FOR VALUES FROM (MINVALUE) TO ({second})", "r"),
            (f"dossiers__file_{result.file_id}__half_2", f"FOR VALUES FROM ({second}) TO (MAXVALUE)", "r")]
    else:
        assert halves_found == []
    other = db.execute("select array_agg(array[_row_number::text, unit_code, received_at] order by _row_number) "
                       "from raw.dossiers where dossier_id like %s", (f"H{not halves:d}-%",)).fetchone()[0]
    if other:  # the other parametrisation's file, loaded the other way: the same numbers and cells
        assert other == [[str(r[1]), r[3], r[7]] for r in rows]


@pytest.mark.parametrize(("data", "end"), [
    (b"h\na\nb\n", 6), (b"h\na\nb", 5), (b"h\na\nb\n\n", 6), (b"h\r\na\r\nb\r\n\r\n\n", 9), (b"h\na\n \n", 6),
    (b"\n\n", 2), (b"", 0),
])
def test_read_bytes_finds_where_the_blank_lines_that_end_a_file_begin(tmp_path, data, end):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert ingest.read_bytes(path).content_end == end


@pytest.mark.parametrize("halves", [True, False], ids=["in-halves", "whole"])
def test_a_clean_export_ending_in_blank_lines_is_still_copied_straight_in(db, landing, monkeypatch, halves,
                                                                       general):
    """COPY refuses an empty line; the blank lines that end an export (common) are left out of the COPY
    rather than sending the whole file down the general path (eleven times slower at 1M records)."""
    monkeypatch.setattr(ingest_copy, "SPLIT_COPY_BYTES", 1 if halves else 1 << 40)
    path = write_csv(landing / "dossiers" / f"trailing_{halves}.csv", _records(f"T{halves:d}-"))
    path.write_bytes(path.read_bytes() + b"\r\n\r\n")  # (csv's lines end in \r\n)
    [result] = load(landing, path)
    assert general == [] and result.status == "loaded" and result.rows_loaded == 40
    assert [r[1] for r in raw_rows(db, "dossiers", result.file_id)] == list(range(2, 42))
    assert db.execute("select count(*) from pg_class where relname like %s and relkind = 'r'",
                      (f"dossiers__file_{result.file_id}__half%",)).fetchone() == (2 if halves else 0,)
    staged = write_csv(landing / "dossiers" / f"trailing_staged_{halves}.csv",
                       [[*row, "ghi chú"] for row in _records(f"S{halves:d}-")])
    staged.write_bytes(staged.read_bytes() + b"\n\n")
    [result] = load(landing, staged)  # an extra column: the general path, whose COPY to its temp table also stops
    assert general == [staged.name] and result.status == "loaded" and result.rows_loaded == 40


@pytest.mark.parametrize("broken", ["first", "second"])
def test_a_halved_copy_that_fails_in_either_half_loads_the_file_the_general_way(db, landing, monkeypatch, broken):
    """A ragged line in one half: COPY cannot take the file byte for byte; neither half is kept (the second,
    committed on its own connection, is dropped) and the general path loads every row."""
    monkeypatch.setattr(ingest_copy, "SPLIT_COPY_BYTES", 1)
    rows = _records(f"B{broken}-")
    rows[5 if broken == "first" else 35] += ["extra cell"]  # one cell more than the header: ragged
    path = write_csv(landing / "dossiers" / f"ragged_{broken}.csv", rows)
    [result] = load(landing, path)
    assert result.status == "loaded" and result.rows_loaded == 40
    assert db.execute("select relkind from pg_class where oid = to_regclass(%s)",
                      (f"raw.dossiers__file_{result.file_id}",)).fetchone() == ("r",)  # one table: loaded whole
    assert db.execute("select count(*) from pg_class where relname like %s",
                      (f"dossiers__file_{result.file_id}__half%",)).fetchone() == (0,)


def test_a_second_half_left_by_a_failed_load_is_dropped_by_the_next_load(db, landing, monkeypatch):
    """The second half is committed on its own connection: when the loading transaction then fails (a crash
    here), it is left unattached, and the next load of the kind (COPYed whole or in halves) drops it."""
    monkeypatch.setattr(ingest_copy, "SPLIT_COPY_BYTES", 1)

    def crash(*_args):
        raise RuntimeError("injected crash before the halves are attached")

    attach_halves = ingest_copy.attach_halves
    monkeypatch.setattr(ingest_copy, "attach_halves", crash)
    first = write_csv(landing / "dossiers" / "crash.csv", _records("C-"))
    with pytest.raises(RuntimeError, match="injected crash"):
        load(landing, first)
    orphans = "select relname from pg_class where relname ~ '^dossiers__file_[0-9]+__half_2$' and not relispartition"
    assert len(db.execute(orphans).fetchall()) == 1
    monkeypatch.setattr(ingest_copy, "attach_halves", attach_halves)
    monkeypatch.setattr(ingest_copy, "SPLIT_COPY_BYTES", 1 << 40)  # the next load, even of a small file
    [again] = load(landing, write_csv(landing / "dossiers" / "after_crash.csv", _records("A-")))
    assert again.status == "loaded"
    assert db.execute(orphans).fetchall() == []


def test_a_warehouse_made_before_records_were_held_by_file_keeps_them(make_database):
    import psycopg

    from reform_etl import warehouse

    columns = ", ".join(f"{c.key} text" for c in KIND_SPECS["dossiers"].columns)
    old_table = (f"drop table raw.dossiers; create table raw.dossiers (_file_id bigint not null, "
                 f"_row_number integer not null, {columns}, primary key (_file_id, _row_number))")
    with_rows, empty = make_database("before_by_file"), make_database("before_by_file_empty")
    for dsn in (with_rows, empty):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(old_table)
    with psycopg.connect(with_rows, autocommit=True) as conn:
        conn.execute("insert into raw.dossiers (_file_id, _row_number, dossier_id) values (7, 2, 'a'), (9, 2, 'b')")
    for dsn in (with_rows, empty, with_rows):  # twice: nothing more happens the second time
        warehouse.bootstrap(dsn)
    with psycopg.connect(with_rows) as conn:
        assert conn.execute("select relkind from pg_class where oid = 'raw.dossiers'::regclass").fetchone() == ("p",)
        assert conn.execute("select dossier_id from raw.dossiers where _file_id = 9").fetchall() == [("b",)]
        assert conn.execute("select count(*) from pg_inherits where inhparent = 'raw.dossiers'::regclass"
                            ).fetchone() == (1,)
    with psycopg.connect(empty) as conn:
        assert conn.execute("select count(*) from pg_inherits where inhparent = 'raw.dossiers'::regclass"
                            ).fetchone() == (0,)
        assert conn.execute("select to_regclass('raw.dossiers__before_by_file')").fetchone() == (None,)


@pytest.mark.parametrize("case", ["record-rows-looked-up", "record-file-scanned", "record-staged", "stats-direct"])
def test_a_code_too_long_for_an_index_rejects_the_file_and_names_its_place(db, landing, monkeypatch, case):
    """A key cell of thousands of characters is no code (a b-tree could not hold it): the file is rejected with
    the row and the column, whichever way it was loaded."""
    if case == "record-file-scanned":
        monkeypatch.setattr(normalise, "LOOKUP_ROWS", 0)
    if case.startswith("record"):
        rows = [row[:] for row in CLEAN_DOSSIERS]
        rows[1][0], rows[2][0] = case, "D" * 5000  # the bytes differ from case to case (else: a duplicate)
        if case == "record-staged":
            rows = [[*row, "ghi chú"] for row in rows]
        path, words = write_csv(landing / "dossiers" / f"{case}.csv", rows), "row 3: the dossier_id cell is 5000"
    else:
        rows = [DOSSIER_EN, ["227", "2021-03", "", *["1"] * 9], ["227", "2021-04", "F" * 3000, *["1"] * 9]]
        path, words = write_csv(landing / "dossier_stats" / f"{case}.csv", rows), "row 3: the field_code cell is 3000"
    [result] = load(landing, path)
    assert (result.status, result.error_code) == ("rejected", "value_too_long")
    assert words in result.error
