"""Workbooks (.xlsx, .xls, .ods) through one reader, their limits, and the commonest unreadable exports."""

from __future__ import annotations

import codecs
import datetime as dt
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import xlwt
from openpyxl import Workbook

from reform_etl import ingest

KPI_HEADER = ["Mã đơn vị", "Kỳ báo cáo", "Mã chỉ tiêu", "Tử số", "Mẫu số"]
# Excel keeps codes as numbers (leading zeros lost), counts as text with thousands separators, a period
# as a date cell: each reads as SPEC §3 says.
KPI_TABLE = [
    ["BÁO CÁO CHỈ TIÊU ỨNG DỤNG CNTT"], [],
    KPI_HEADER,
    [1, "T3/2024", "HS_TRUC_TUYEN", "1.000", 2000],
    [97, dt.date(2024, 4, 1), "HS_TRUC_TUYEN", 5, "1 296"],
]
EXPECTED = [(4, "001", "2024-03", "HS_TRUC_TUYEN", "1000", "2000"),
            (5, "097", "2024-04", "HS_TRUC_TUYEN", "5", "1296")]


@pytest.fixture()
def landing(landing: Path) -> Path:
    (landing / "it_kpis").mkdir()
    return landing


def load(landing: Path, path: Path) -> ingest.FileResult:
    [result] = ingest.load_paths([path], landing=landing)
    return result


def kpi_rows(db, file_id: int) -> list[tuple]:
    return db.execute("select _row_number, unit_code, period, kpi_code, numerator, denominator from raw.it_kpis "
                      "where _file_id = %s order by _row_number", (file_id,)).fetchall()


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
            if len(row) > 1 and isinstance(row[1], dt.date):
                sheet.cell(sheet.max_row, 2).number_format = "mm/yyyy"
    book.save(path)
    return path


def write_xls(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = xlwt.Workbook()
    month = xlwt.easyxf(num_format_str="MM/YYYY")
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if isinstance(value, dt.date):
                    sheet.write(r, c, value, month)
                elif value is not None:
                    sheet.write(r, c, value)
    book.save(str(path))
    return path


def write_ods(path: Path, sheets: dict[str, list[list]]) -> Path:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    for name, rows in sheets.items():
        table = Table(name=name)
        for row in rows:
            tr = TableRow()
            for value in row:
                if isinstance(value, dt.date):
                    cell = TableCell(valuetype="date", datevalue=value.isoformat())
                elif isinstance(value, int | float):
                    cell = TableCell(valuetype="float", value=value)
                elif value is None:
                    cell = TableCell()
                else:
                    cell = TableCell(valuetype="string")
                if value is not None:
                    cell.addElement(P(text=str(value)))
                tr.addElement(cell)
            table.addElement(tr)
        doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


@pytest.mark.parametrize("writer, suffix", [(write_xlsx, ".xlsx"), (write_xls, ".xls"), (write_ods, ".ods")])
def test_xlsx_xls_and_ods_read_alike(db, landing, writer, suffix):
    path = writer(landing / "it_kpis" / f"kpi{suffix}", {"it_kpis": KPI_TABLE})
    result = load(landing, path)
    assert (result.status, result.rows_total) == ("loaded", 2), result.error
    assert kpi_rows(db, result.file_id) == EXPECTED  # lineage: the sheet's own row numbers


def _patch_sheet(path: Path, member: str, edit) -> None:
    """Rewrite one part of an .xlsx (for what openpyxl does not write: cached formula values)."""
    with zipfile.ZipFile(path) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    parts[member] = edit(parts[member].decode()).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)


def test_merged_cells_hidden_rows_and_cached_formula_values(db, landing):
    path = landing / "it_kpis" / "merged.xlsx"
    book = Workbook()
    sheet = book.active
    sheet.title = "Số liệu"
    for row in [KPI_HEADER,
                ["227", "2024-03", "HS_TRUC_TUYEN", 10, 20],
                [None, "2024-03", "DVC_TOAN_TRINH", 3, 4],  # unit merged down from the row above
                ["228", "2024-03", "HS_TRUC_TUYEN", "=2+3", 9],  # a formula: its cached value is read
                ["229", "2024-03", "HS_TRUC_TUYEN", 1, 2]]:  # a hidden row is still data
        sheet.append(row)
    sheet.merge_cells("A2:A3")
    sheet.row_dimensions[5].hidden = True
    book.save(path)
    _patch_sheet(path, "xl/worksheets/sheet1.xml",
                 lambda xml: xml.replace("<f>2+3</f><v /></c>", "<f>2+3</f><v>5</v></c>"))
    result = load(landing, path)
    assert result.status == "loaded", result.error
    assert kpi_rows(db, result.file_id) == [
        (2, "227", "2024-03", "HS_TRUC_TUYEN", "10", "20"),
        (3, "227", "2024-03", "DVC_TOAN_TRINH", "3", "4"),
        (4, "228", "2024-03", "HS_TRUC_TUYEN", "5", "9"),
        (5, "229", "2024-03", "HS_TRUC_TUYEN", "1", "2"),
    ]


def test_the_header_is_looked_for_on_every_sheet(db, landing):
    instructions = [["HƯỚNG DẪN NHẬP LIỆU"], ["Điền số liệu vào trang bên cạnh"]]
    found = write_xls(landing / "it_kpis" / "second.xls", {"Hướng dẫn": instructions, "Biểu 1": KPI_TABLE})
    result = load(landing, found)
    assert result.status == "loaded", result.error
    assert kpi_rows(db, result.file_id) == EXPECTED
    assert db.execute("select sheet_name, header_row from audit.submission_files where file_id = %s",
                      (result.file_id,)).fetchone() == ("Biểu 1", 3)

    lost = write_xlsx(landing / "it_kpis" / "none.xlsx", {"Hướng dẫn": instructions, "Ghi chú": [["xem sau"]]})
    result = load(landing, lost)
    assert (result.status, result.error_code) == ("rejected", "no_header")
    assert "looked at 'Hướng dẫn', 'Ghi chú'" in result.error and "đã xem" in result.error


def _bomb(path: Path, cell_bytes: int) -> Path:
    """An .xlsx whose one cell holds `cell_bytes` of text, deflated to a few hundred KB."""
    book = Workbook()
    book.active.title = "it_kpis"
    book.active.append(KPI_HEADER)
    book.active.append(["227", "2024-03", "HS_TRUC_TUYEN", "BOMB", 1])
    book.save(path)
    with zipfile.ZipFile(path) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for name, data in parts.items():
            if name != "xl/worksheets/sheet1.xml":
                target.writestr(name, data)
        xml = parts["xl/worksheets/sheet1.xml"].decode()
        before, after = xml.split('<c r="D2" t="inlineStr"><is><t>BOMB</t></is></c>')
        with target.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            member.write(before.encode() + b'<c r="D2" t="inlineStr"><is><t>')
            chunk = b"9" * (1 << 20)
            for _ in range(cell_bytes >> 20):
                member.write(chunk)
            member.write(b"</t></is></c>" + after.encode())
    return path


def test_a_zip_bomb_is_refused_before_it_is_read(db, landing, tmp_path):
    path = _bomb(landing / "it_kpis" / "bomb.xlsx", 300 << 20)
    assert path.stat().st_size < 600_000
    # In a process of its own, to measure its peak memory: reading the cell would take over 300 MB.
    probe = ("import resource, time; from pathlib import Path\n"
             "from reform_etl.ingest.readers import open_table, FileRejected\n"
             "imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
             "start = time.perf_counter()\n"
             f"try:\n    open_table(Path({str(path)!r}), 'it_kpis')\nexcept FileRejected as e:\n    print(e.code)\n"
             "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
             "print(time.perf_counter() - start, peak - imported)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    code, seconds, read_mb = out[0], float(out[1]), int(out[2])
    # The peak the refusal adds to the process once the package is imported (the imports are not the read).
    print(f"\nrefused in {seconds:.2f} s, {read_mb} MB above the imports")
    assert code == "file_too_large" and read_mb < 100
    started = time.perf_counter()
    result = load(landing, path)
    assert (result.status, result.error_code) == ("rejected", "file_too_large")
    assert "decompressed" in result.error and "quá lớn" in result.error and time.perf_counter() - started < 10


def test_cell_count_and_old_format_size_are_bounded(db, landing, monkeypatch):
    many = write_xlsx(landing / "it_kpis" / "many.xlsx",
                      {"it_kpis": [KPI_HEADER, *[["227", "2024-03", f"K{i}", 1, 2] for i in range(400)]]})
    assert re.search(rb'<dimension ref="A1:E401"', zipfile.ZipFile(many).read("xl/worksheets/sheet1.xml"))
    old = write_xls(landing / "it_kpis" / "old.xls", {"it_kpis": [[f"{i:05d}" + "x" * 30000] for i in range(80)]})
    assert old.stat().st_size > 2 << 20
    monkeypatch.setenv("REFORM_WORKBOOK_MAX_CELLS", "2000")
    monkeypatch.setenv("REFORM_WORKBOOK_MAX_MB", "2")
    result = load(landing, many)
    assert (result.error_code, "2,005 cells" in result.error) == ("file_too_large", True)
    result = load(landing, old)
    assert result.error_code == "file_too_large" and "bytes" in result.error


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_excel_unicode_text_saved_as_csv_is_read(db, landing, codec):
    bom = codecs.BOM_UTF16_LE if codec == "utf-16-le" else codecs.BOM_UTF16_BE
    text = "\r\n".join(["\t".join(KPI_HEADER), "227\tTháng 3/2024\tHS_TRUC_TUYEN\t1.000\t2000",
                        "230\t04/2024\tHS_TRUC_TUYEN\t5\t9"]) + "\r\n"
    path = landing / "it_kpis" / f"unicode_{codec}.csv"
    path.write_bytes(bom + text.encode(codec))
    result = load(landing, path)
    assert result.status == "loaded", result.error
    assert kpi_rows(db, result.file_id) == [(2, "227", "2024-03", "HS_TRUC_TUYEN", "1000", "2000"),
                                            (3, "230", "2024-04", "HS_TRUC_TUYEN", "5", "9")]


def _cfb_with_stream(path: Path, name: str) -> Path:
    """A compound file (OLE2) whose root storage holds one stream `name`: the shape of an encrypted .xlsx."""
    sector = 512
    header = bytearray(sector)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIII", header, 44, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE)
    struct.pack_into("<I", header, 72, 0)
    header[76:80] = struct.pack("<I", 0)  # DIFAT[0]: the FAT is sector 0
    header[80:sector] = b"\xff" * (sector - 80)
    fat = bytearray(b"\xff" * sector)
    struct.pack_into("<III", fat, 0, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFE)  # FAT, directory, stream data
    directory = bytearray(sector)

    def entry(offset: int, label: str, kind: int, child: int, start: int, size: int) -> None:
        encoded = (label + "\0").encode("utf-16-le")
        directory[offset:offset + len(encoded)] = encoded
        struct.pack_into("<HBB", directory, offset + 64, len(encoded), kind, 1)
        struct.pack_into("<iii", directory, offset + 68, -1, -1, child)
        struct.pack_into("<II", directory, offset + 116, start, size)

    entry(0, "Root Entry", 5, 1, 0xFFFFFFFE, 0)
    entry(128, name, 2, -1, 2, 16)
    path.write_bytes(bytes(header) + bytes(fat) + bytes(directory) + b"\x00" * sector)
    return path


def test_an_ole_container_named_xlsx_is_told_apart(db, landing):
    encrypted = _cfb_with_stream(landing / "it_kpis" / "locked.xlsx", "EncryptedPackage")
    result = load(landing, encrypted)
    assert (result.status, result.error_code) == ("rejected", "unreadable")
    assert "encrypted" in result.error and "mật khẩu" in result.error
    # An Excel 97-2003 workbook saved under the newer name is read by its content.
    renamed = write_xls(landing / "it_kpis" / "old_named_new.xls", {"Sheet1": KPI_TABLE})
    renamed = renamed.rename(renamed.with_suffix(".xlsx"))
    result = load(landing, renamed)
    assert result.status == "loaded", result.error
    assert kpi_rows(db, result.file_id) == EXPECTED
