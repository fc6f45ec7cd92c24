"""Who to chase: the late, missing, incomplete and rejected submissions of `marts.rpt_submission_status`.

`chase_list(dsn, period)` reads the mart (whatever status columns it has: `missing_items` and
`status_reason` where present) and says per unit, kind and period what is wrong, in Vietnamese
and English; `write_xlsx(rows, path)` writes the same as a workbook, filterable by unit.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from reform_etl.report import excel_safe, local_time

CHASE_STATUSES = ("late", "missing", "incomplete", "rejected")
STATUS_WORDS = {
    "late": ("Nộp trễ hạn", "Late"),
    "missing": ("Chưa nộp, đã quá hạn", "Missing, past the deadline"),
    "incomplete": ("Nộp thiếu", "Incomplete"),
    "rejected": ("Bị từ chối / cách ly toàn bộ", "Rejected"),
}
# (key, heading): the terminal table's and the workbook's columns
COLUMNS = (
    ("unit_code", "Mã đơn vị / unit"), ("unit_name", "Tên đơn vị / unit name"), ("kind", "Loại / kind"),
    ("period", "Kỳ / period"), ("deadline_date", "Hạn nộp / deadline"), ("status_text", "Tình trạng / status"),
    ("submitted_at", "Đã nộp lúc / sent at"), ("what_is_missing", "Còn thiếu / what is missing"),
)


def _what_is_missing(row: dict) -> str:
    """What the unit still owes, in Vietnamese then English."""
    status = row["status"]
    if status == "missing":
        return "Chưa nhận được tệp nào / nothing received"
    if status == "late":
        return f"Đủ, nhưng nộp sau hạn / complete, sent after the deadline ({local_time(row.get('submitted_at'))})"
    parts = []
    if row.get("missing_items"):
        counted = (f" ({row['items_accepted']}/{row['items_expected']})"
                   if row.get("items_expected") is not None and row.get("items_accepted") is not None else "")
        parts.append(f"Thiếu / missing{counted}: {row['missing_items']}")
    if row.get("status_reason"):
        parts.append(str(row["status_reason"]))
    if not parts:
        parts.append("Không dòng nào được chấp nhận / no row accepted" if status == "rejected"
                     else "Chỉ được chấp nhận một phần / partly accepted")
    return "; ".join(parts)


def chase_list(dsn: str, period: str | None = None) -> list[dict]:
    """Rows of the mart whose status asks for a call, oldest period first; `period` (YYYY-MM, or YYYY for
    a year's months and yearly kinds) narrows it. Raises psycopg errors when the mart is not built."""
    with psycopg.connect(dsn) as conn:
        columns = {name for (name,) in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'rpt_submission_status'")}
        if not columns:
            raise LookupError("marts.rpt_submission_status chưa có / is not built yet: run `reform-etl run`")
        name = sql.SQL("s.unit_name") if "unit_name" in columns else sql.SQL(
            "(select d.unit_name from marts.dim_unit d where d.unit_code = s.unit_code "
            "order by d.valid_from desc limit 1)")
        extra = [c for c in ("missing_items", "status_reason", "items_expected", "items_accepted") if c in columns]
        cur = conn.execute(sql.SQL(
            "select s.unit_code, {name} as unit_name, s.kind, s.period, s.deadline_date, s.status, s.submitted_at"
            "{extra} from marts.rpt_submission_status s "
            "where s.status = any(%s) and (%s::text is null or s.period = %s or s.period like %s || '-%%') "
            "order by s.period, s.unit_code, s.kind").format(
                name=name, extra=sql.SQL("").join(sql.SQL(", s.{}").format(sql.Identifier(c)) for c in extra)),
            (list(CHASE_STATUSES), period, period, period))
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
    for row in rows:
        vi, en = STATUS_WORDS[row["status"]]
        row["status_text"] = f"{vi} / {en}"
        row["what_is_missing"] = _what_is_missing(row)
    return rows


def cell(row: dict, key: str) -> str:
    """A row's value as text for a person: times local to the second, dates ISO."""
    value = row.get(key)
    if key == "submitted_at":
        return local_time(value)
    return "" if value is None else str(value)


def write_xlsx(rows: list[dict], path: Path) -> Path:
    """The chase list as a workbook: one header row, filterable, frozen (cells neutralised for Excel)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "late"
    sheet.append([heading for _key, heading in COLUMNS])
    for c in sheet[1]:
        c.font = Font(bold=True)
    for row in rows:
        sheet.append([excel_safe(cell(row, key)) for key, _heading in COLUMNS])
    sheet.auto_filter.ref = sheet.dimensions
    sheet.freeze_panes = "A2"
    for column, width in zip("ABCDEFGH", (10, 28, 14, 9, 12, 28, 24, 60), strict=True):
        sheet.column_dimensions[column].width = width
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path
