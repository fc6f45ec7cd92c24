"""Readers for landing files: CSV (UTF-8 with or without BOM, UTF-16 with BOM) and workbooks (.xlsx, .xls, .ods).

They find the header row (title rows above it are skipped), map source headers to column keys
(English key or Vietnamese label, case- and accent-insensitive) and yield data rows one at a
time, so a file of millions of rows is never held in memory.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from reform_etl.ingest.parsing import Cell, cell_text, fold
from reform_etl.ingest.refusal import Refusal
from reform_etl.ingest.workbooks import WORKBOOK_SUFFIXES, WorkbookRefused, open_workbook
from reform_etl.kinds import KIND_SPECS, KindSpec

HEADER_SCAN_ROWS = 30
CSV_SNIFF_BYTES = 64 * 1024
CSV_DELIMITERS = (",", ";", "\t")


class FileRejected(Refusal):
    """A file-level rule failed: nothing of the file loads. `code` is stable, `message` plain words."""


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
    # Found while reading (an official form's totals that do not add up): each a dict with the sheet's row
    warnings: list[dict] = field(default_factory=list)


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


def csv_encoding(path: Path) -> str:
    """'utf-16' for a file that starts with a UTF-16 byte-order mark (Excel's "Unicode text"), else 'utf-8-sig'."""
    with path.open("rb") as raw:
        start = raw.read(2)
    return "utf-16" if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"


def csv_delimiter(path: Path) -> str:
    with path.open("rb") as raw:
        sample = raw.read(CSV_SNIFF_BYTES)
    if csv_encoding(path) == "utf-16":
        # A BOM makes UTF-16 unambiguous; a code unit cut at the sample's end is dropped.
        return _sniff_delimiter(sample[: len(sample) // 2 * 2].decode("utf-16", errors="ignore"))
    try:
        sample_text = sample.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample's end is fine; a bad byte before it is not.
        if exc.start < len(sample) - 4:
            raise _not_utf8(exc) from exc
        sample_text = sample[: exc.start].decode("utf-8-sig")
    return _sniff_delimiter(sample_text)


def _csv_rows(path: Path, delimiter: str, encoding: str = "utf-8-sig") -> Iterator[tuple[int, list[Cell]]]:
    raw = path.open("rb")
    try:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        line = 0
        try:
            for cells in reader:
                line += 1
                yield reader.line_num, list(cells)
        except UnicodeDecodeError as exc:
            if encoding == "utf-16":
                message = (f"UTF-16 text broken near line {line + 1}: save it again as 'CSV UTF-8' "
                           "(tệp UTF-16 bị hỏng, hãy lưu lại dạng CSV UTF-8)")
                raise FileRejected("unreadable", message) from exc
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


def sheet_order(names: list[str], kind: str) -> list[str]:
    """The sheets to look for a header in: those named like the kind first, then the others in order."""
    spec = KIND_SPECS[kind]
    wanted = {fold(kind), fold(spec.label_vi)}
    return sorted(names, key=lambda name: fold(name) not in wanted)


def _workbook_table(path: Path, kind: str) -> OpenTable:
    """The first sheet (named like the kind first) with this kind's header, or an official form of the kind.
    Raises FileRejected: file_too_large / unreadable before reading, no_header naming every sheet looked at."""
    from reform_etl.forms import read_form

    try:
        workbook = open_workbook(path)
    except WorkbookRefused as refused:
        raise FileRejected(refused.code, refused.message) from refused
    wrong: FileRejected | None = None
    looked: list[str] = []
    try:
        for name in sheet_order(workbook.sheet_names, kind):
            rows = workbook.sheet_rows(name)
            head = [item for _, item in zip(range(HEADER_SCAN_ROWS), rows, strict=False)]
            looked.append(name)
            try:
                return OpenTable(_table(kind, _chain(head, rows), name), workbook)
            except FileRejected as rejected:
                if rejected.code not in ("no_header", "wrong_kind", "empty"):
                    raise
                if rejected.code == "wrong_kind":
                    wrong = wrong or rejected
            form = read_form(kind, name, head, rows, workbook.merged(name))
            if form is not None:
                return OpenTable(form, workbook)
    except WorkbookRefused as refused:
        workbook.close()
        raise FileRejected(refused.code, refused.message) from refused
    except BaseException:
        workbook.close()
        raise
    workbook.close()
    if wrong is not None:
        raise wrong
    sheets = ", ".join(f"'{name}'" for name in looked)
    spec = KIND_SPECS[kind]
    raise FileRejected(
        "no_header",
        f"no recognisable header row in the first {HEADER_SCAN_ROWS} rows of any sheet (looked at {sheets}): "
        f"expected columns such as {', '.join(spec.required)} "
        f"(không tìm thấy dòng tiêu đề trên trang tính nào: đã xem {sheets})",
    )


def _chain(head: list[tuple[int, list[Cell]]], rest: Iterator[tuple[int, list[Cell]]]
           ) -> Iterator[tuple[int, list[Cell]]]:
    yield from head
    yield from rest


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
        if csv_encoding(path) == "utf-16":
            # Not UTF-8 bytes: the rows are staged one by one (the general path), never COPYed as they are.
            return OpenTable(_table(kind, _csv_rows(path, delimiter, "utf-16"), None))
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
    if suffix in WORKBOOK_SUFFIXES:
        return _workbook_table(path, kind)
    if suffix == ".json":  # the national portal's own Decision 766 export (service_index only)
        from reform_etl.ingest.portal766 import open_json

        return OpenTable(open_json(path, kind))
    raise FileRejected(
        "unreadable", f"unsupported file type '{suffix or path.name}': submit .csv, .xlsx, .xls, .ods (or .json) "
                      "(định dạng không hỗ trợ)"
    )
