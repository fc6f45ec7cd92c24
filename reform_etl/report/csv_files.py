"""findings.csv and quarantine.csv: `;`-separated UTF-8 with a BOM, every cell Excel-safe."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from reform_etl.kinds import KIND_SPECS
from reform_etl.report.collect import connect
from reform_etl.report.text import rejection

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(value: object) -> object:
    """Neutralise spreadsheet formula injection: text starting with = + - @ (or tab/CR) gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


CSV_DIALECT = {"delimiter": ";"}  # Excel in a Vietnamese locale reads ';' (',' is its decimal mark)


def _csv_writer(handle):
    return csv.writer(handle, **CSV_DIALECT)


def write_findings_csv(data: dict, path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = _csv_writer(handle)
        writer.writerow(["file_id", "file_name", "kind", "status", "suite", "rule", "severity", "rows_failed",
                         "message_vi", "message_en", "detail", "sample_failing_rows"])
        files = {f["file_id"]: f for f in data["files"]}
        for r in data["results"]:
            if r["success"]:
                continue
            f = files.get(r["file_id"], {})
            detail = f.get("error") if f.get("status") in ("rejected", "failed") else ""
            writer.writerow([excel_safe(v) for v in (
                r["file_id"], f.get("file_name"), r["kind"], f.get("status"), r["suite"], r["expectation"],
                r["severity"], r["rows_failed"], r["message_vi"], r["message_en"], detail,
                json.dumps(r["sample_failing_rows"], ensure_ascii=False) if r["sample_failing_rows"] else "")])
        for f in data["files"]:
            if f["status"] in ("rejected", "failed") and not any(
                    r["file_id"] == f["file_id"] and not r["success"] for r in data["results"]):
                name, vi, en = rejection(f)
                writer.writerow([excel_safe(v) for v in (
                    f["file_id"], f["file_name"], f["kind"], f["status"], "loader", name,
                    "reject_file", "", vi, en, f["error"], "")])


QUARANTINE_HEAD = ["kind", "file_id", "file_name", "row_number", "unit_code", "unit_name", "period", "failed_rules"]


def quarantine_columns() -> list[str]:
    """The header of quarantine.csv: who and why first, then one column per field of every kind."""
    fields = dict.fromkeys(c for spec in KIND_SPECS.values() for c in spec.keys
                           if c != "unit_code" and c != spec.period_column)
    return QUARANTINE_HEAD + list(fields)


def write_quarantine_csv(dsn: str, run_id: str, path: Path, names: dict[str, str]) -> int:
    """Every quarantined row of the run's files, as it arrived, one column per field, with the rules it failed
    (Excel-safe). A row's period is its kind's period column (year of a PAR score, month, or a dossier's date)."""
    header = quarantine_columns()
    count = 0
    with connect(dsn) as conn, path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = _csv_writer(handle)
        writer.writerow(header)
        for kind, spec in KIND_SPECS.items():
            cols = ", ".join(f"q.{c}" for c in spec.keys)
            for file_id, file_name, row_number, failed, *values in conn.execute(
                    f"select q._file_id, f.file_name, q._row_number, q.failed_rules, {cols} from quarantine.{kind} q "
                    f"join audit.submission_files f on f.file_id = q._file_id where f.run_id = %s "
                    f"order by q._file_id, q._row_number", (run_id,)):
                fields = dict(zip(spec.keys, values, strict=True))
                unit = fields.get("unit_code")
                row = {"kind": kind, "file_id": file_id, "file_name": file_name, "row_number": row_number,
                       "unit_code": unit, "unit_name": names.get(unit, "") if unit else "",
                       "period": fields.get(spec.period_column),
                       "failed_rules": "; ".join(f"{r['rule']}: {r['message_vi']} / {r['message_en']}"
                                                 for r in failed)} | fields
                writer.writerow([excel_safe(row.get(c)) for c in header])
                count += 1
    return count
