"""Streaming readers for landing files: CSV (UTF-8, with or without BOM) and Excel .xlsx.

They find the header row (title rows above it are skipped), map source headers to column keys
(English key or Vietnamese label, case- and accent-insensitive) and yield data rows one at a
time, so a file of millions of rows is never held in memory.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from reform_etl.ingest.parsing import Cell, cell_text, fold
from reform_etl.kinds import KIND_SPECS, KindSpec

HEADER_SCAN_ROWS = 30
CSV_SNIFF_BYTES = 64 * 1024
CSV_DELIMITERS = (",", ";", "\t")


class FileRejected(Exception):
    """A file-level rule failed: nothing of the file loads. `code` is stable, `message` plain words."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Table:
    header_row: int  # 1-based physical row of the header
    mapping: dict[int, str]  # source column index -> column key
    source_headers: dict[str, str]  # source header text -> column key (for the audit record)
    rows: Iterator[tuple[int, list[Cell]]]  # (1-based physical row, cells)
    sheet_name: str | None = None
    ignored_headers: list[str] = field(default_factory=list)
    width: int = 0  # cells in the header row
    csv_delimiter: str | None = None  # set for CSV: the body may be streamed to COPY as it is


def header_aliases(spec: KindSpec) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for column in spec.columns:
        for name in (column.key, column.label_vi, *column.aliases):
            aliases[fold(name)] = column.key
    return aliases


_ALIASES = {name: header_aliases(spec) for name, spec in KIND_SPECS.items()}


def _match(cells: list[Cell], kind: str) -> dict[int, str]:
    aliases = _ALIASES[kind]
    matched: dict[int, str] = {}
    for index, cell in enumerate(cells):
        text = cell_text(cell)
        if text and fold(text) in aliases:
            matched[index] = aliases[fold(text)]
    return matched


def _find_header(head: list[tuple[int, list[Cell]]], kind: str) -> tuple[int, dict[int, str], list[Cell]]:
    """Pick the first row that names at least two of this kind's columns, one of them a key."""
    spec = KIND_SPECS[kind]
    for position, (_, cells) in enumerate(head):
        matched = _match(cells, kind)
        if len(set(matched.values())) >= 2 and set(matched.values()) & set(spec.key):
            return position, matched, cells
    # No header of this kind: is it another kind's file dropped in the wrong folder?
    for other, other_spec in KIND_SPECS.items():
        if other == kind:
            continue
        for _, cells in head:
            if set(other_spec.required) <= set(_match(cells, other).values()):
                raise FileRejected(
                    "wrong_kind",
                    f"file is in folder '{kind}' but its header is that of '{other}' "
                    f"(tệp nằm trong thư mục '{kind}' nhưng tiêu đề là của loại '{other}')",
                )
    raise FileRejected(
        "no_header",
        f"no recognisable header row in the first {HEADER_SCAN_ROWS} rows: expected columns such as "
        f"{', '.join(spec.required)} (không tìm thấy dòng tiêu đề)",
    )


def _table(kind: str, rows: Iterator[tuple[int, list[Cell]]], sheet_name: str | None,
           csv_delimiter: str | None = None) -> Table:
    head: list[tuple[int, list[Cell]]] = []
    for item in rows:
        head.append(item)
        if len(head) >= HEADER_SCAN_ROWS:
            break
    if not any(any(cell_text(c) for c in cells) for _, cells in head):
        raise FileRejected("empty", "the file has no content (tệp rỗng)")
    position, mapping, cells = _find_header(head, kind)
    spec = KIND_SPECS[kind]

    seen: dict[str, int] = {}
    for index, key in mapping.items():
        if key in seen:
            raise FileRejected(
                "duplicate_columns",
                f"column '{key}' appears twice in the header (columns {seen[key] + 1} and {index + 1}) "
                "(cột bị lặp)",
            )
        seen[key] = index
    missing = [key for key in spec.required if key not in seen]
    if missing:
        labels = ", ".join(f"{key} ({spec.column(key).label_vi})" for key in missing)
        raise FileRejected("missing_columns", f"missing required columns: {labels} (thiếu cột bắt buộc)")

    header_row = head[position][0]
    source_headers = {str(cell_text(cells[i])): key for i, key in mapping.items()}
    ignored = [str(cell_text(c)) for i, c in enumerate(cells) if i not in mapping and cell_text(c)]

    def data_rows() -> Iterator[tuple[int, list[Cell]]]:
        yield from head[position + 1 :]
        yield from rows

    return Table(header_row, mapping, source_headers, data_rows(), sheet_name, ignored, len(cells), csv_delimiter)


def csv_delimiter(path: Path) -> str:
    with path.open("rb") as raw:
        sample = raw.read(CSV_SNIFF_BYTES)
    try:
        sample_text = sample.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample's end is fine; a bad byte before it is not.
        if exc.start < len(sample) - 4:
            raise _not_utf8(exc) from exc
        sample_text = sample[: exc.start].decode("utf-8-sig")
    return _sniff_delimiter(sample_text)


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[Cell]]]:
    raw = path.open("rb")
    try:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        line = 0
        try:
            for cells in reader:
                line += 1
                yield reader.line_num, list(cells)
        except UnicodeDecodeError as exc:
            raise _not_utf8(exc, line + 1) from exc
        except csv.Error as exc:
            raise FileRejected("unreadable", f"CSV cannot be read near line {reader.line_num}: {exc}") from exc
    finally:
        raw.close()


def _not_utf8(exc: UnicodeDecodeError, line: int | None = None) -> FileRejected:
    where = f" near line {line}" if line else ""
    return FileRejected(
        "unreadable",
        f"file is not UTF-8 text{where} (byte 0x{exc.object[exc.start]:02x}); it looks like a legacy "
        "encoding such as Windows-1258 or TCVN3: save it again as 'CSV UTF-8' "
        "(tệp không phải mã UTF-8, hãy lưu lại dạng CSV UTF-8)",
    )


def _sniff_delimiter(sample: str) -> str:
    lines = [line for line in sample.splitlines()[:HEADER_SCAN_ROWS] if line.strip()]
    if not lines:
        return ","
    # Vietnamese-locale Excel writes ';' (the comma is its decimal separator).
    scores = {d: max(line.count(d) for line in lines) for d in CSV_DELIMITERS}
    return max(scores, key=lambda d: (scores[d], d == ","))


def _sheet_for(names: list[str], kind: str) -> str:
    spec = KIND_SPECS[kind]
    wanted = {fold(kind), fold(spec.label_vi)}
    return next((name for name in names if fold(name) in wanted), names[0])


def _xlsx_rows(path: Path, kind: str) -> tuple[Iterator[tuple[int, list[Cell]]], str, object]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        message = f"not a readable Excel .xlsx workbook: {exc} (không đọc được tệp Excel)"
        raise FileRejected("unreadable", message) from exc
    sheet_name = _sheet_for(workbook.sheetnames, kind)
    sheet = workbook[sheet_name]

    def rows() -> Iterator[tuple[int, list[Cell]]]:
        for row in sheet.iter_rows():
            cells = [cell.value for cell in row]
            if not cells:
                continue
            row_number = next((c.row for c in row if getattr(c, "row", None)), None)
            yield row_number or 0, cells

    return rows(), sheet_name, workbook


@dataclass
class OpenTable:
    table: Table
    closer: object | None = None

    def close(self) -> None:
        if self.closer is not None:
            self.closer.close()  # type: ignore[attr-defined]


def open_table(path: Path, kind: str) -> OpenTable:
    """Open a landing file of `kind`; raises FileRejected with a stable code for file-level problems."""
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise FileRejected("empty", "the file is empty (0 bytes) (tệp rỗng)")
    if suffix == ".csv":
        delimiter = csv_delimiter(path)
        try:
            return OpenTable(_table(kind, _csv_rows(path, delimiter), None, delimiter))
        except FileRejected as rejected:
            if rejected.code not in ("no_header", "missing_columns"):
                raise
            # The sniffer also counts delimiters inside quoted text: a cell listing documents separated
            # by ';' can outvote a comma header. The delimiter that yields this kind's header wins.
            for other in CSV_DELIMITERS:
                if other != delimiter:
                    try:
                        return OpenTable(_table(kind, _csv_rows(path, other), None, other))
                    except FileRejected:
                        continue
            raise rejected
    if suffix in (".xlsx", ".xlsm"):
        rows, sheet_name, workbook = _xlsx_rows(path, kind)
        try:
            return OpenTable(_table(kind, rows, sheet_name), workbook)
        except Exception:
            workbook.close()  # type: ignore[attr-defined]
            raise
    if suffix == ".json":  # the national portal's own Decision 766 export (service_index only)
        from reform_etl.ingest.portal766 import open_json

        return OpenTable(open_json(path, kind))
    raise FileRejected(
        "unreadable", f"unsupported file type '{suffix or path.name}': submit .csv or .xlsx (định dạng không hỗ trợ)"
    )
