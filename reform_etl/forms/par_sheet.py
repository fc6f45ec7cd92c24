"""A province's PAR scoring sheet (self-assessment / appraisal), read into par_scores rows.

Title: "BẢNG TỰ ĐÁNH GIÁ, CHẤM ĐIỂM CHỈ SỐ CẢI CÁCH HÀNH CHÍNH NĂM 2022 CỦA UBND HUYỆN THANH BA".
Columns, by label: STT | Lĩnh vực / Tiêu chí / Tiêu chí thành phần | Điểm tối đa | Điểm tự đánh giá |
Điểm thẩm định (may be absent) | Tài liệu kiểm chứng | Ghi chú. Areas are numbered I … VII (or 1 … 7),
criteria 1.1, leaves 1.1.1: only the leaves are loaded; each area and criterion row and the "TỔNG ĐIỂM" row
is checked against the sum of its leaves (a warning when it differs). Each leaf's "Điểm tối đa" is loaded
as `max_points`, which validation checks against the framework in force (rule max_points_mismatch).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from itertools import chain

from reform_etl.forms.ii06a import _header_grid, _numbering
from reform_etl.forms.title import lines, title_unit
from reform_etl.ingest.parsing import Cell, cell_text, fold
from reform_etl.ingest.readers import FileRejected, Table

ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}
LEAF = re.compile(r"^\d+\.\d+\.\d+$")
CRITERION = re.compile(r"^\d+\.\d+$")
SCORES = ("max_points", "self_score", "appraised_score")
KEYS = ("unit_code", "year", "criterion_code", "self_score", "appraised_score", "evidence", "max_points")


def _column_key(label: str) -> str | None:
    folded = fold(label)
    if folded == "stt":
        return "stt"
    if re.match(r"^(linh vuc|tieu chi|noi dung|chi so)", folded):
        return "name"
    if "toi da" in folded:
        return "max_points"
    if "tu danh gia" in folded or "tu cham" in folded:
        return "self_score"
    if "tham dinh" in folded:
        return "appraised_score"
    if "kiem chung" in folded:
        return "evidence"
    return None


def _header(head: list[tuple[int, list[Cell]]], merged: list
            ) -> tuple[int, int, dict[int, str], list[str], dict[str, str]] | None:
    """(position in head, last header row, column -> key, ignored labels, label -> key) of the scoring table's
    header."""
    for position, (_, cells) in enumerate(head):
        keys = {_column_key(cell_text(c) or "") for c in cells}
        if not {"stt", "name"} <= keys:
            continue
        rows = head[position : position + 2]
        second = rows[1][1] if len(rows) > 1 else []
        two_rows = any(_column_key(cell_text(c) or "") in SCORES for c in second) and not any(
            isinstance(c, int | float) and not isinstance(c, bool) for c in second)
        rows = rows if two_rows else rows[:1]
        grid = _header_grid(rows, merged)
        columns: dict[int, str] = {}
        ignored: list[str] = []
        labelled: dict[str, str] = {}
        for column in range(len(grid[0])):
            labels = [row[column] for row in grid if row[column]]
            label = " / ".join(dict.fromkeys(labels))
            key = next((k for k in (_column_key(t) for t in reversed(labels)) if k), None) if labels else None
            if key is None or key in columns.values():
                if label:
                    ignored.append(label)
                continue
            columns[column] = key
            labelled[label] = "criterion_code" if key == "stt" else key
        if not {"self_score", "appraised_score"} & set(columns.values()) or "max_points" not in columns.values():
            continue
        return position, rows[-1][0], columns, ignored, {k: v for k, v in labelled.items() if v != "name"}
    return None


def _score(value: Cell) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = (cell_text(value) or "").replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def _unit_and_year(title: list[tuple[int, str]]) -> tuple[str, int, dict[str, str]]:
    year_line = next(((t, int(m.group(1))) for _, t in title
                      if (m := re.search(r"\bnam (\d{4})\b", fold(t)))), None)
    if year_line is None:
        raise FileRejected("period_unresolved", "the scoring sheet's title states no year ('… NĂM 2022 …') "
                                                "(tiêu đề bảng chấm điểm không ghi năm)")
    text, year = year_line
    name = None
    for _, line in title:
        found = re.search(r"(?i)\b(?:của|đơn vị(?: báo cáo)?\s*:)\s*(.+)$", line)
        if found:
            name = found.group(1).strip(" -–.:")
            break
    if not name:
        raise FileRejected("unit_unresolved", "the scoring sheet's title names no unit ('… CỦA UBND HUYỆN …' or "
                                              "'Đơn vị: …') (tiêu đề bảng chấm điểm không ghi đơn vị)")
    try:
        code, unit_line = title_unit(title, name, date(year, 12, 31))
    except FileRejected:  # a unit abolished during the year scores that year too
        code, unit_line = title_unit(title, name, date(year, 1, 1))
    return code, year, {unit_line: "unit_code", f"{text} [{year}]": "year"}


def read(sheet_name: str, head: list[tuple[int, list[Cell]]], rest: Iterator[tuple[int, list[Cell]]],
         merged: list) -> Table | None:
    """The sheet's leaves as par_scores rows, or None when the sheet is not a scoring sheet; raises FileRejected
    when its title names no year or no resolvable unit."""
    found = _header(head, merged)
    if found is None:
        return None
    position, last_row, columns, ignored, labelled = found
    unit, year, sources = _unit_and_year(lines(head[:position]))
    by_key = {key: column for column, key in columns.items()}

    def cell(cells: list[Cell], key: str) -> Cell:
        column = by_key.get(key)
        return cells[column] if column is not None and column < len(cells) else None

    leaves: list[tuple[int, str, list[Cell]]] = []
    subtotals: list[tuple[int, str, str, list[Cell]]] = []  # (row, code prefix or "" for all, label, cells)
    for number, cells in chain(head[position:], rest):
        if number <= last_row:
            continue
        if _numbering([c for c in cells if cell_text(c)]):
            continue
        stt = (cell_text(cell(cells, "stt")) or "").rstrip(".")
        name = cell_text(cell(cells, "name")) or ""
        if LEAF.match(stt):
            leaves.append((number, stt, cells))
        elif CRITERION.match(stt) or stt.isdigit() or fold(stt) in ROMAN:
            prefix = stt if CRITERION.match(stt) else str(ROMAN.get(fold(stt), stt))
            subtotals.append((number, prefix, f"{stt} {name}".strip(), cells))
        elif re.match(r"^(tong diem|tong cong|tong so|tong)\b", fold(name or stt)):
            subtotals.append((number, "", name or stt, cells))
    warnings = []
    for number, prefix, label, cells in subtotals:
        under = [c for _, code, c in leaves if not prefix or code.startswith(prefix + ".")]
        for key in SCORES:
            stated = _score(cell(cells, key))
            parts = [_score(cell(c, key)) for c in under]
            if stated is None or key not in by_key or not under or any(p is None for p in parts):
                continue
            total = round(sum(parts), 4)  # type: ignore[arg-type]
            if abs(stated - total) > 0.005 + 1e-9:  # a sheet may print its sums to two decimals
                warnings.append({"rule": "form_totals_mismatch", "row": number, "label": label, "column": key,
                                 "stated": stated, "sum_of_rows": total})
    keys = [k for k in KEYS if k in ("unit_code", "year", "criterion_code") or k in by_key]
    rows = [(number, [unit, str(year), code, *(cell(cells, k) for k in keys[3:])]) for number, code, cells in leaves]
    return Table(last_row, dict(enumerate(keys)), {**sources, **labelled}, iter(rows), sheet_name, ignored,
                 len(keys), warnings=warnings)
