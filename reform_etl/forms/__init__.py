"""Official forms offices submit unchanged (SPEC §3), read into the rows the flat reader yields.

A form's table becomes a `Table` whose rows carry the kind's keys at fixed positions and the sheet's
own row numbers, so lineage, validation and quarantine are those of any other file. Unit and period
come from the title block when the table has no column for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

from reform_etl.config import settings
from reform_etl.forms import ii06a
from reform_etl.forms.title import TitleError, lines, month_period, reporting_unit, title_unit
from reform_etl.ingest.parsing import Cell
from reform_etl.ingest.readers import FileRejected, Table
from reform_etl.kinds import KIND_SPECS


def read_form(kind: str, sheet_name: str, head: list[tuple[int, list[Cell]]],
              rest: Iterator[tuple[int, list[Cell]]], merged: list) -> Table | None:
    """A Table of the official form of `kind` on this sheet, or None when the sheet is not such a form.
    Raises FileRejected when it is the form but its unit, period or columns cannot be determined."""
    if kind == "dossier_stats":
        return _ii06a(sheet_name, head, rest, merged)
    if kind == "par_scores":
        from reform_etl.forms import par_sheet

        return par_sheet.read(sheet_name, head, rest, merged)
    return None


def title_unit_and_period(title_rows: list[tuple[int, list[Cell]]]) -> tuple[str, str, dict[str, str]]:
    """(unit code, YYYY-MM, {line: key}) from a form's title block; raises FileRejected naming what is missing."""
    title = lines(title_rows)
    try:
        period, period_line = month_period(title)
        name = reporting_unit(title)
    except TitleError as error:
        raise FileRejected(error.code, error.message) from error
    code, unit_line = title_unit(title, name, ii06a.period_start(period))
    return code, period, {unit_line: "unit_code", f"{period_line} [{period}]": "period"}


def _ii06a(sheet_name: str, head: list[tuple[int, list[Cell]]], rest: Iterator[tuple[int, list[Cell]]],
           merged: list) -> Table | None:
    header = ii06a.find_header(head, merged)
    if header is None:
        return None
    keys_found = set(header.columns.values())
    spec = KIND_SPECS["dossier_stats"]
    optional = {"received_postal"} if header.merged_postal else set()
    missing = [k for k in spec.required if k not in ("unit_code", "period", "field_code") and k not in keys_found
               and k not in optional]
    if missing:
        labels = ", ".join(f"{k} ({spec.column(k).label_vi})" for k in missing)
        raise FileRejected("missing_columns", f"form II.06a on sheet '{sheet_name}' has no column for: {labels} "
                                              f"(biểu II.06a thiếu cột: {labels})")
    unit, period, title_keys = title_unit_and_period([r for r in head if r[0] < header.first_row])
    body = ii06a.read_body(header, chain(head, rest))
    counts = [k for k in ii06a.COUNT_KEYS if k in keys_found]
    keys = ["unit_code", "period", "field_code", *counts]
    seeds = settings().seeds
    rows = [(number, [unit, period, ii06a.field_code(name, seeds), *(values.get(k) for k in counts)])
            for number, name, values in body.rows]
    sources = {**title_keys, header.name_label: "field_code"}
    sources.update({" + ".join(header.labels[k]): k for k in counts})
    ignored = header.ignored + ([f"{k} (tổng: kiểm tra, không nạp)" for k in ii06a.TOTALS if k in keys_found])
    return Table(header.last_row, dict(enumerate(keys)), sources, iter(rows), sheet_name, ignored, len(keys),
                 warnings=[dict(w, rule="form_totals_mismatch") for w in body.warnings])


def store_findings(conn, file_id: int, findings: list[dict]) -> None:
    """The reader's findings of a file (audit.form_findings), read by the kind's `form_totals_mismatch` warning."""
    from psycopg.types.json import Jsonb

    with conn.cursor() as cur:
        cur.executemany(
            "insert into audit.form_findings (file_id, rule, sheet_row, finding) values (%s, %s, %s, %s)",
            [(file_id, f["rule"], f.get("row"), Jsonb({k: v for k, v in f.items() if k != "rule"}))
             for f in findings])
