"""Biểu II.06a (Thông tư 01/2020/TT-VPCP) as one-stop software prints it, read into dossier_stats rows.

The header's columns are read by their labels (vendors order the sub-columns differently): each column's
label path, top to bottom through the merged header rows, names its group (received / resolved / pending)
and its leaf. Several columns of one key are summed (online "Mức 3" + "Mức 4"; late "with" + "without a
letter of apology"); a "Tổng số" column is the form's own total: checked, never loaded. A column whose
label says nothing we know is left out (named in the file's ignored headers), never guessed.
On the 13-column form in-person and postal receipts share one column: `received_direct` holds both and
`received_postal` is left null (unknown).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

from reform_etl.ingest.parsing import Cell, cell_text, fold

COUNT_KEYS = ("received_carried_over", "received_online", "received_direct", "received_postal", "resolved_early",
              "resolved_on_time", "resolved_late", "pending_in_time", "pending_overdue", "returned_withdrawn")
# The form's own total columns: what each is the sum of.
TOTALS = {
    "received_total": ("received_carried_over", "received_online", "received_direct", "received_postal"),
    "received_new_total": ("received_online", "received_direct", "received_postal"),
    "resolved_total": ("resolved_early", "resolved_on_time", "resolved_late"),
    "pending_total": ("pending_in_time", "pending_overdue"),
}
NUMBERING = re.compile(r"^\(?\d{1,2}\)?$")
SECTION_STT = re.compile(r"^([ivx]+|[a-z])$")
COUNT_TEXT = re.compile(r"^\d{1,3}([., ]\d{3})+$|^\d+$")


def _has(text: str, *words: str) -> bool:
    return any(re.search(rf"\b{w}\b", text) for w in words)


def classify(path: list[str]) -> str | None:
    """The key of a column from its folded label path, top to bottom; None when the labels say nothing known."""
    joined = " / ".join(path)
    leaf = path[-1] if path else ""
    total = re.fullmatch(r"(tong so|tong cong|tong|cong)( .*)?", leaf) is not None
    if _has(joined, "dang giai quyet"):
        if total:
            return "pending_total"
        if _has(joined, "trong han"):
            return "pending_in_time"
        return "pending_overdue" if _has(joined, "qua han") else None
    if _has(joined, "da giai quyet"):
        if total:
            return "resolved_total"
        for words, key in ((("truoc han",), "resolved_early"), (("dung han",), "resolved_on_time"),
                           (("qua han",), "resolved_late"), (("tra lai", "rut"), "returned_withdrawn")):
            if _has(joined, *words):
                return key
        return None
    if _has(joined, "tra lai", "rut ho so", "xin rut"):
        return "returned_withdrawn"
    if _has(joined, "nhan giai quyet", "tiep nhan", "ky truoc"):
        if _has(joined, "phi dia gioi"):
            return None
        if total:
            return "received_new_total" if _has(joined, "moi tiep nhan", "tiep nhan moi") else "received_total"
        if _has(joined, "ky truoc"):
            return "received_carried_over"
        if _has(joined, "truc tuyen"):
            return "received_online"
        if _has(joined, "truc tiep"):
            # "Trực tiếp, dịch vụ bưu chính": both in one column (the 13-column form)
            return "received_direct+postal" if _has(joined, "buu chinh", "bcci") else "received_direct"
        if _has(joined, "buu chinh", "bcci"):
            return "received_postal"
    return None


@lru_cache(maxsize=4)
def field_names(seeds: Path) -> dict[str, str]:
    """Folded field names and aliases of the field catalog seed -> field code."""
    out: dict[str, str] = {}
    with (seeds / "fields.csv").open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            for name in (row["field_code"], row["field_name_vi"], *(row.get("field_aliases_vi") or "").split("|")):
                if name.strip():
                    out[fold(name)] = row["field_code"]
    return out


def field_code(name: str, seeds: Path) -> str:
    """The field code a body row's name means, or the name itself (validation quarantines it as unknown)."""
    names = field_names(seeds)
    folded = fold(re.sub(r"^\s*[-+*•]?\s*(\d+[.)]\s*)?", "", name))
    for candidate in (folded, folded.removeprefix("linh vuc ").strip(), re.sub(r"\s*\(.*?\)\s*$", "", name)):
        code = names.get(fold(candidate))
        if code:
            return code
    return name


def as_count(value: Cell) -> int | None:
    """A count cell as an int (1.296 / 1,296 / 1 296 = 1296); None when blank or not a count."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = cell_text(value)
    if text and COUNT_TEXT.match(text):
        return int(re.sub(r"[., ]", "", text))
    return None


@dataclass
class Header:
    first_row: int  # 1-based sheet row of the header's top row
    last_row: int  # the header's bottom row, or the numbering row under it
    name_column: int
    stt_column: int | None
    columns: dict[int, str]  # sheet column -> key (or a total's key)
    labels: dict[str, list[str]] = field(default_factory=dict)  # key -> the labels of its columns
    ignored: list[str] = field(default_factory=list)
    name_label: str = ""
    merged_postal: bool = False


def _header_grid(rows: list[tuple[int, list[Cell]]], merged: list) -> list[list[str | None]]:
    """The header rows' texts, each merged range's text in every cell it covers."""
    first = rows[0][0] - 1
    width = max(len(cells) for _, cells in rows)
    grid = [[cell_text(c) for c in cells] + [None] * (width - len(cells)) for _, cells in rows]
    for (top, left), (bottom, right) in merged:
        if top - first >= len(grid) or bottom < first:
            continue
        text = grid[top - first][left] if 0 <= top - first < len(grid) and left < width else None
        for r in range(max(top, first), min(bottom, first + len(grid) - 1) + 1):
            for c in range(left, min(right, width - 1) + 1):
                grid[r - first][c] = text
    return grid


def find_header(head: list[tuple[int, list[Cell]]], merged: list) -> Header | None:
    """The II.06a header in the first rows of a sheet, or None when the sheet is not this form."""
    for position, (_, cells) in enumerate(head):
        texts = [fold(cell_text(c) or "") for c in cells]
        name_column = next((i for i, t in enumerate(texts) if t.startswith("linh vuc")), None)
        if name_column is None:
            continue
        block = head[position : position + 5]
        if not any(_has(fold(cell_text(c) or ""), "da giai quyet") for _, row in block for c in row):
            continue
        header_rows = [head[position]]
        for number, row in head[position + 1 : position + 5]:
            values = [c for c in row if cell_text(c)]
            if _numbering(values) or any(isinstance(c, int | float) and not isinstance(c, bool) for c in values):
                break
            name = fold(cell_text(row[name_column]) or "") if name_column < len(row) else ""
            if name and name != texts[name_column]:
                break
            header_rows.append((number, row))
        after = head[position + len(header_rows)] if position + len(header_rows) < len(head) else None
        last_row = header_rows[-1][0]
        if after is not None and _numbering([c for c in after[1] if cell_text(c)]):
            last_row = after[0]
        return _label_columns(header_rows, merged, name_column, last_row)
    return None


def _numbering(values: list[Cell]) -> bool:
    texts = [cell_text(c) or "" for c in values]
    return len(texts) >= 5 and all(NUMBERING.match(t) for t in texts) and texts[0].strip("()") == "1"


def _label_columns(rows: list[tuple[int, list[Cell]]], merged: list, name_column: int, last_row: int) -> Header:
    grid = _header_grid(rows, merged)
    width = len(grid[0])
    header = Header(rows[0][0], last_row, name_column, None, {}, name_label=grid[0][name_column] or "")
    for column in range(width):
        texts: list[str] = []
        for row in grid:
            if row[column] and (not texts or row[column] != texts[-1]):
                texts.append(row[column])
        if not texts:
            continue
        if fold(texts[0]) == "stt":
            header.stt_column = column
            continue
        if column == name_column:
            continue
        key = classify([fold(t) for t in texts])
        label = " / ".join(texts)
        if key is None:
            header.ignored.append(label)
            continue
        if key == "received_direct+postal":
            key, header.merged_postal = "received_direct", True
        header.columns[column] = key
        header.labels.setdefault(key, []).append(label)
    return header


@dataclass
class Body:
    rows: list[tuple[int, str, dict[str, int | Cell]]]  # (sheet row, field name, key -> value)
    warnings: list[dict]


def read_body(header: Header, rows: Iterator[tuple[int, list[Cell]]]) -> Body:
    """Field rows of the table (sections, totals and "Trong đó" rows left out); totals checked into warnings."""
    fields: list[tuple[int, str, dict]] = []
    totals: list[tuple[int, str, dict, int, int]] = []  # (row, label, values, section start, section index)
    sections: list[int] = [0]  # index into `fields` where each section starts
    breakdown = False
    warnings: list[dict] = []
    for number, cells in rows:
        if number <= header.last_row:
            continue
        name = cell_text(cells[header.name_column]) if header.name_column < len(cells) else None
        stt = cell_text(cells[header.stt_column]) if header.stt_column is not None and header.stt_column < len(
            cells) else None
        summed: dict[str, Cell] = {}
        for c, key in header.columns.items():
            value = cells[c] if c < len(cells) else None
            summed[key] = _add(summed.get(key), value)
        values = summed
        has_counts = any(cell_text(v) for v in values.values())
        folded = fold(name or "")
        if not name and not has_counts:
            continue
        if folded.startswith("trong do"):
            breakdown = True
            continue
        if breakdown and name and re.match(r"^\s*[-+*•]", name):
            continue
        breakdown = False
        if re.fullmatch(r"(tong cong|tong so|tong|cong)( .*)?", folded):
            totals.append((number, name or "", values, -1, len(sections) - 1))
            continue
        if SECTION_STT.match(fold(stt or "")) or (name and not has_counts):
            sections.append(len(fields))
            if has_counts:  # a section row with figures: the subtotal of the rows under it
                totals.append((number, name or "", values, len(fields), len(sections) - 1))
            continue
        fields.append((number, name or "", values))
    sections.append(len(fields))
    for number, label, values, start, section in totals:
        scopes = [fields]
        if start >= 0:
            scopes = [fields[start : sections[section + 1]]]
        else:
            scopes.append(fields[sections[section] : sections[section + 1]])
        warnings += _check_total(number, label, values, scopes)
    for number, _, values in fields:
        warnings += _check_row(number, values)
    return Body(fields, warnings)


def _add(left: Cell, right: Cell) -> Cell:
    """Two cells of one key summed when both are counts; a blank one adds nothing; a bad one is kept as it is."""
    if left is None or cell_text(left) is None:
        return right
    if right is None or cell_text(right) is None:
        return left
    a, b = as_count(left), as_count(right)
    if a is None:
        return left
    if b is None:
        return right
    return a + b


def _check_total(number: int, label: str, values: dict, scopes: list[list]) -> list[dict]:
    """Warnings for the keys of a totals row that equal the sum of no scope's rows."""
    out = []
    for key, stated in values.items():
        stated_count = as_count(stated)
        if stated_count is None:
            continue
        sums = []
        for scope in scopes:
            parts = [_value_of(vals, key) for _, _, vals in scope]
            if any(p is None for p in parts):
                break
            sums.append(sum(parts))  # type: ignore[arg-type]
        if sums and stated_count not in sums:
            out.append({"row": number, "label": label, "column": key, "stated": stated_count, "sum_of_rows": sums[0]})
    return out


def _value_of(values: dict, key: str) -> int | None:
    if key in TOTALS:
        parts = [as_count(values.get(k)) or 0 for k in TOTALS[key] if k in values]
        return sum(parts)
    return as_count(values.get(key)) or 0


def _check_row(number: int, values: dict) -> list[dict]:
    """Warnings for a row whose own total columns are not the sum of their parts."""
    out = []
    for key, parts in TOTALS.items():
        stated = as_count(values.get(key))
        present = [k for k in parts if k in values]
        if stated is None or not present:
            continue
        counted = [as_count(values.get(k)) for k in present]
        if any(c is None and cell_text(values.get(k)) for c, k in zip(counted, present, strict=True)):
            continue  # a bad cell is validation's to quarantine
        if stated != sum(c or 0 for c in counted):
            out.append({"row": number, "label": key, "column": key, "stated": stated,
                        "sum_of_rows": sum(c or 0 for c in counted)})
    return out


def period_start(period: str) -> date:
    return date(int(period[:4]), int(period[5:7]), 1)
