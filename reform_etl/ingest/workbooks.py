"""Workbooks (.xlsx, .xlsm, .xls, .ods) read with python-calamine, bounded before they are read.

calamine reads all three formats with one API, 20x the speed of openpyxl on a 100k-row sheet (the
figures are in docs/official-forms.md); it holds one sheet's cells in memory, so a workbook's
decompressed size and cell count are checked first, from the zip central directory and the sheet's
declared dimension (or, for .xls, the file's size), and a workbook over the limits is rejected
`file_too_large` without being decompressed.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from python_calamine import CalamineError, CalamineWorkbook

from reform_etl.ingest.parsing import Cell
from reform_etl.ingest.refusal import Refusal

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE compound file: Excel 97-2003, or an encrypted .xlsx
ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
DIMENSION = re.compile(rb'<dimension ref="([A-Z]+)([0-9]+)(?::([A-Z]+)([0-9]+))?"')


class WorkbookRefused(Refusal):
    """A workbook that must not or cannot be read: `code` is the loader's stable code, `message` bilingual."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one workbook may expand to (environment REFORM_WORKBOOK_MAX_MB / _MAX_CELLS)."""
    max_bytes: int
    max_cells: int

    @classmethod
    def from_env(cls) -> Limits:
        return cls(max_bytes=int(os.environ.get("REFORM_WORKBOOK_MAX_MB", "100")) * 1024 * 1024,
                   max_cells=int(os.environ.get("REFORM_WORKBOOK_MAX_CELLS", "3000000")))


def _too_large(what: str, limits: Limits) -> WorkbookRefused:
    return WorkbookRefused(
        "file_too_large",
        f"workbook too large to read safely: {what} (limits: {limits.max_bytes // (1024 * 1024)} MB decompressed, "
        f"{limits.max_cells:,} cells); split it or submit it as CSV UTF-8 "
        f"(bảng tính quá lớn để đọc an toàn: {what}; hãy chia nhỏ hoặc nộp dạng CSV UTF-8)",
    )


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - ord("A") + 1
    return number


def _declared_cells(archive: zipfile.ZipFile, member: str) -> int:
    """Cells a worksheet declares in its <dimension> (read from the head of its XML), 0 when it declares none."""
    with archive.open(member) as stream:
        head = stream.read(4096)
    match = DIMENSION.search(head)
    if match is None or match.group(3) is None:
        return 0
    rows = int(match.group(4)) - int(match.group(2)) + 1
    columns = _column_number(match.group(3)) - _column_number(match.group(1)) + 1
    return max(rows, 0) * max(columns, 0)


def check_limits(path: Path, limits: Limits | None = None) -> None:
    """Refuse a workbook whose decompressed size or declared cell count is over the limits, or that is an
    encrypted one; raises WorkbookRefused. Reads only the zip's central directory and each sheet's first 4 KB."""
    limits = limits or Limits.from_env()
    with path.open("rb") as handle:
        magic = handle.read(len(CFB_MAGIC))
    if magic == CFB_MAGIC:
        if _is_encrypted(path):
            raise WorkbookRefused(
                "unreadable",
                "the workbook is encrypted (password-protected): remove the password in Excel (File > Info > "
                "Protect Workbook) and submit it again (bảng tính được đặt mật khẩu: hãy gỡ mật khẩu rồi nộp lại)",
            )
        # Excel 97-2003 holds cells uncompressed: its size bounds what it expands to.
        if path.stat().st_size > limits.max_bytes:
            raise _too_large(f"{path.stat().st_size:,} bytes", limits)
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            total = sum(member.file_size for member in members)
            if total > limits.max_bytes:
                raise _too_large(f"{total:,} bytes decompressed", limits)
            cells = sum(_declared_cells(archive, m.filename) for m in members
                        if re.fullmatch(r"xl/worksheets/sheet[0-9]+\.xml", m.filename))
            if cells > limits.max_cells:
                raise _too_large(f"{cells:,} cells", limits)
    except zipfile.BadZipFile as exc:
        raise WorkbookRefused(
            "unreadable",
            f"not a workbook ({exc}): neither a zip (.xlsx, .ods) nor an Excel 97-2003 file; save it again from "
            "Excel as .xlsx or CSV UTF-8 (tệp không phải bảng tính Excel/ODS hợp lệ)",
        ) from exc


def _is_encrypted(path: Path) -> bool:
    """An OLE container holding an `EncryptedPackage` stream: an .xlsx saved with a password."""
    with path.open("rb") as handle:
        return ENCRYPTED_STREAM in handle.read(1024 * 1024)


@dataclass
class Workbook:
    """An open workbook; `sheet_rows` yields (1-based physical row, cells at their physical column)."""
    book: CalamineWorkbook
    limits: Limits

    @property
    def sheet_names(self) -> list[str]:
        return list(self.book.sheet_names)

    def sheet_rows(self, name: str) -> Iterator[tuple[int, list[Cell]]]:
        try:
            sheet = self.book.get_sheet_by_name(name)
        except CalamineError as exc:
            raise WorkbookRefused("unreadable", f"sheet '{name}' cannot be read: {exc} "
                                                f"(không đọc được trang tính '{name}')") from exc
        if sheet.height * sheet.width > self.limits.max_cells:
            raise _too_large(f"{sheet.height * sheet.width:,} cells on sheet '{name}'", self.limits)
        return _rows(sheet)

    def merged(self, name: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Merged ranges of a sheet as ((first row, first col), (last row, last col)), 0-based."""
        return list(self.book.get_sheet_by_name(name).merged_cell_ranges or [])

    def close(self) -> None:
        self.book.close()


def _rows(sheet) -> Iterator[tuple[int, list[Cell]]]:
    # calamine yields every row from the sheet's first (row 1), and the columns from its first used one:
    # pad them back so that a cell's index is its physical column (merged ranges are given physically).
    pad = [None] * sheet.start[1] if sheet.start else []
    merged = {(top, left): bottom for (top, left), (bottom, _right) in (sheet.merged_cell_ranges or [])
              if bottom > top}
    carried: dict[int, tuple[int, Cell]] = {}  # column -> (last row, value) of a range merged down
    for index, values in enumerate(sheet.iter_rows()):
        cells = [*pad, *(_cell(value) for value in values)]
        for column, (last, value) in list(carried.items()):
            if index > last:
                del carried[column]
            elif column < len(cells):
                cells[column] = value  # a cell merged down over rows reads as its value on every row
        for column, value in enumerate(cells):
            if (index, column) in merged and value is not None:
                carried[column] = (merged[(index, column)], value)
        yield index + 1, cells


def _cell(value: object) -> Cell:
    if value == "":
        return None
    if isinstance(value, timedelta):  # a duration cell: its text, as Excel shows it
        return str(value)
    return value  # type: ignore[return-value]


def open_workbook(path: Path, limits: Limits | None = None) -> Workbook:
    """Check the limits, then open; raises WorkbookRefused (file_too_large, unreadable)."""
    limits = limits or Limits.from_env()
    check_limits(path, limits)
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(CFB_MAGIC))
        if magic == CFB_MAGIC and path.suffix.lower() != ".xls":
            # An Excel 97-2003 workbook saved under a newer name: calamine reads it by its content.
            with path.open("rb") as handle:
                book = CalamineWorkbook.from_filelike(handle)
        else:
            book = CalamineWorkbook.from_path(str(path))
    except (CalamineError, OSError, ValueError) as exc:
        raise WorkbookRefused("unreadable", f"not a readable workbook: {exc} (không đọc được bảng tính)") from exc
    return Workbook(book, limits)
