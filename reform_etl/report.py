"""The auditor's run report: a static summary page plus the GX Data Docs of the run, no server.

`build_report(dsn, run_id, out_dir)` writes `out_dir/<run_id>/index.html` (every file of the run
with unit, kind, period, status and counts, and every failed rule in plain Vietnamese and
English, linked to its Data Docs page), `out_dir/<run_id>/data_docs/` (GX Data Docs of this
run only), `findings.csv` (every failed rule per file) and `quarantine.csv` (every quarantined
row as it arrived, with its rules); both CSVs are safe to open in Excel: cells that start with
=, +, -, @ are neutralised.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import psycopg

from reform_etl.transform.decision import DBT_WORDS
from reform_etl.validation import rules as R

log = logging.getLogger(__name__)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
SAMPLE_IN_PAGE = 5

STATUS_WORDS = {
    "accepted": ("Đã nhận", "Accepted"),
    "loaded": ("Đã nạp, chưa kiểm tra", "Loaded, not validated"),
    "rejected": ("Bị từ chối", "Rejected"),
    "duplicate": ("Trùng tệp đã nhận", "Duplicate of a received file"),
    "failed": ("Lỗi hệ thống", "Pipeline error"),
}


def excel_safe(value: object) -> object:
    """Neutralise spreadsheet formula injection: text starting with = + - @ (or tab/CR) gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_dir_name(run_id: str) -> str:
    """A run id as one folder name (Airflow run ids hold ':' and '+'; nothing may climb out with '..')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"
    return name


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _fetch(conn: psycopg.Connection, query: str, params: tuple) -> list[dict]:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _collect(dsn: str, run_id: str) -> dict:
    with psycopg.connect(dsn) as conn:
        run = _fetch(conn, "select * from audit.validation_runs where run_id = %s", (run_id,))
        pipeline = _fetch(conn, "select * from audit.pipeline_runs where run_id = %s", (run_id,))
        files = _fetch(conn, """
            select f.file_id, f.kind, f.path, f.file_name, f.status, f.rows_total, f.rows_loaded, f.rows_quarantined,
                   f.warnings, f.error_code, f.error, f.duplicate_of, f.received_at,
                   (select array_agg(distinct p.unit_code order by p.unit_code) from audit.submission_partitions p
                     where p.file_id = f.file_id) as units,
                   (select min(p.period) from audit.submission_partitions p where p.file_id = f.file_id) as period_from,
                   (select max(p.period) from audit.submission_partitions p where p.file_id = f.file_id) as period_to
            from audit.submission_files f
            where f.run_id = %s or f.file_id in (select file_id from audit.validation_results where run_id = %s)
            order by f.file_id""", (run_id, run_id))
        results = _fetch(conn, """
            select r.*, f.file_name from audit.validation_results r
            left join audit.submission_files f using (file_id)
            where r.run_id = %s order by r.file_id nulls last, r.result_id""", (run_id,))
        # What dbt did in this run (reform_etl.transform.decision.decide_dbt): full build, refresh or skipped.
        dbt = _fetch(conn, "select mode, status, reason from audit.transform_runs where run_id = %s "
                     "order by transform_id desc limit 1", (run_id,)) if conn.execute(
            "select to_regclass('audit.transform_runs')").fetchone()[0] else []
        # Decision 766: where our score and the portal's published score differ by more than 0.01 (after dbt).
        reconciliation = _fetch(conn, "select unit_code, period, level, code, our_score, published_score, difference "
                                "from marts.rpt_service_index_reconciliation order by unit_code, period, level, code "
                                "limit 200", ()) if conn.execute(
            "select to_regclass('marts.rpt_service_index_reconciliation')").fetchone()[0] else []
        unit_names = dict(conn.execute(
            "select distinct on (unit_code) unit_code, unit_name from audit.ref_units "
            "order by unit_code, valid_from desc").fetchall())
    return {"run": run[0] if run else {}, "pipeline": pipeline[0] if pipeline else {}, "files": files,
            "results": results, "unit_names": unit_names, "dbt": dbt[0] if dbt else None,
            "reconciliation": reconciliation}


def _build_data_docs(dsn: str, run_id: str, target: Path) -> bool:
    """GX Data Docs of this run's validation results only, into `target`."""
    try:
        from reform_etl.validation import project

        context = project.context_for(dsn)
        site = f"run_report_{safe_dir_name(run_id)}"
        if target.exists():
            shutil.rmtree(target)
        context.variables.data_docs_sites = {site: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(target)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "site_section_builders": {"validations": {"run_name_filter": {"equals": run_id}},
                                      "profiling": "None"},
        }}
        context.build_data_docs(site_names=[site])
        return (target / "index.html").is_file()
    except Exception:  # the summary page must still be written; the failure is shown on it
        log.exception("building the Data Docs of run %s failed", run_id)
        return False


def _units_text(units: list[str] | None, names: dict[str, str]) -> str:
    units = [u for u in (units or []) if u]
    if not units:
        return "—"
    shown = [f"{u} {names.get(u, '')}".strip() for u in units[:3]]
    more = f" … (+{len(units) - 3})" if len(units) > 3 else ""
    return "; ".join(shown) + more


def _period_text(f: dict) -> str:
    if not f["period_from"]:
        return "—"
    return f["period_from"] if f["period_from"] == f["period_to"] else f"{f['period_from']} → {f['period_to']}"


def _sample_table(rows: list[dict] | None) -> str:
    if not rows:
        return ""
    rows = rows[:SAMPLE_IN_PAGE]
    cols = list(dict.fromkeys(k for r in rows for k in r if k != "observed"))
    if any("observed" in r for r in rows):
        cols.append("observed")
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    def cell(value: object) -> str:
        return _e(json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value)

    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table class='sample'><tr>{head}</tr>{body}</table>"


def _finding_html(r: dict, docs: bool) -> str:
    vi_sev, en_sev = R.SEVERITY_WORDS.get(R.Severity(r["severity"]), (r["severity"], r["severity"]))
    link = ""
    if docs and r.get("gx_result_path"):
        link = f" <a href='data_docs/{quote(r['gx_result_path'])}'>Data Docs</a>"
    rows = f"{r['rows_failed']} dòng / rows" if r["severity"] != "reject_file" else ""
    return (
        f"<li class='{_e(r['severity'])}'><span class='sev'>{_e(vi_sev)} / {_e(en_sev)}</span> "
        f"<code>{_e(r['expectation'])}</code> — {_e(r['message_vi'])} / <i>{_e(r['message_en'])}</i> "
        f"<b>{_e(rows)}</b>{link}{_sample_table(r.get('sample_failing_rows'))}</li>"
    )


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:90%;vertical-align:top}th{background:#f3f3f3}
.accepted{color:#075}.rejected,.reject_file{color:#b00}.quarantine_row{color:#a50}.warn{color:#875}
.sev{font-weight:bold}table.sample td{font-family:monospace;font-size:80%}li{margin:.4em 0}
"""


def _dbt_paragraph(dbt: dict | None) -> str:
    if not dbt:
        return "<p>dbt: <i>không chạy / not run</i></p>"
    vi, en = DBT_WORDS.get(dbt["mode"], (dbt["mode"], dbt["mode"]))
    status = "" if dbt["mode"] == "skip" else f" ({_e(dbt['status'])})"
    return f"<p>Mô hình dữ liệu / marts (dbt): <b>{_e(vi)} / {_e(en)}</b>{status} — {_e(dbt['reason'])}</p>"


def _reconciliation_html(rows: list[dict], names: dict[str, str]) -> str:
    """Decision 766 figures where our score and the published one differ by more than 0.01."""
    head = ("<h2>Đối chiếu chỉ số 766 với điểm Cổng DVCQG công bố / Decision 766: ours against the portal's "
            "published scores</h2>")
    if not rows:
        return head + "<p>Không có chênh lệch quá 0,01 / no difference above 0.01.</p>"
    cells = ("Đơn vị / unit", "Kỳ / period", "Cấp / level", "Mã / code", "Của chúng tôi / ours",
             "Công bố / published", "Chênh lệch / difference")
    body = "".join(
        f"<tr><td>{_e(_units_text([r['unit_code']], names))}</td><td>{_e(r['period'])}</td><td>{_e(r['level'])}</td>"
        f"<td>{_e(r['code'])}</td><td>{_e(r['our_score'])}</td><td>{_e(r['published_score'])}</td>"
        f"<td>{_e(r['difference'])}</td></tr>" for r in rows)
    return head + "<table><tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>" + body + "</table>"


def _page(data: dict, run_id: str, docs: bool) -> str:
    files, results, names = data["files"], data["results"], data["unit_names"]
    by_file: dict[int | None, list[dict]] = {}
    for r in results:
        if not r["success"]:
            by_file.setdefault(r["file_id"], []).append(r)
    run = data["run"]
    totals = {
        "files": len(files),
        "accepted": sum(f["status"] == "accepted" for f in files),
        "rejected": sum(f["status"] == "rejected" for f in files),
        "rows_total": sum(f["rows_total"] or 0 for f in files if f["status"] == "accepted"),
        "rows_loaded": sum(f["rows_loaded"] or 0 for f in files if f["status"] == "accepted"),
        "rows_quarantined": sum(f["rows_quarantined"] or 0 for f in files),
        "warnings": sum(f["warnings"] or 0 for f in files) + sum(r["rows_failed"] for r in by_file.get(None, [])),
    }
    out = [f"<!doctype html><html lang='vi'><head><meta charset='utf-8'><title>Báo cáo kiểm tra dữ liệu / "
           f"Validation report — {_e(run_id)}</title><style>{CSS}</style></head><body>",
           f"<h1>Báo cáo kiểm tra dữ liệu / Validation report</h1><p>Lượt chạy / run <code>{_e(run_id)}</code>; "
           f"bắt đầu / started {_e(run.get('started_at'))}; kết thúc / ended {_e(run.get('ended_at'))}; "
           f"trạng thái / status {_e(run.get('status'))}; Great Expectations {_e(run.get('gx_version'))}</p>",
           "<table><tr>" + "".join(f"<th>{_e(k)}</th>" for k in (
               "Tệp / files", "Nhận / accepted", "Từ chối / rejected", "Dòng / rows", "Nạp / loaded",
               "Cách ly / quarantined", "Cảnh báo / warnings")) + "</tr><tr>" + "".join(
               f"<td>{v}</td>" for v in totals.values()) + "</tr></table>",
           "<p>Mỗi tệp: số dòng nạp + số dòng cách ly = số dòng dữ liệu / for every accepted file, rows loaded + "
           "rows quarantined = data rows in the file. "
           + ("<a href='data_docs/index.html'>GX Data Docs</a>" if docs else "<b>GX Data Docs unavailable</b>")
           + " · <a href='findings.csv'>findings.csv</a> (các lỗi / findings) · "
           "<a href='quarantine.csv'>quarantine.csv</a> (các dòng bị cách ly / quarantined rows)</p>",
           _dbt_paragraph(data.get("dbt")),
           "<h2>Tệp / Files</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in (
               "#", "Tệp / file", "Loại / kind", "Đơn vị / unit", "Kỳ / period", "Trạng thái / status",
               "Dòng / rows", "Nạp / loaded", "Cách ly / quarantined", "Cảnh báo / warnings")) + "</tr>"]
    for f in files:
        vi, en = STATUS_WORDS.get(f["status"], (f["status"], f["status"]))
        out.append(
            f"<tr><td><a href='#file-{f['file_id']}'>{f['file_id']}</a></td><td>{_e(f['file_name'])}</td>"
            f"<td>{_e(f['kind'])}</td><td>{_e(_units_text(f['units'], names))}</td><td>{_e(_period_text(f))}</td>"
            f"<td class='{_e(f['status'])}'>{_e(vi)} / {_e(en)}</td><td>{_e(f['rows_total'])}</td>"
            f"<td>{_e(f['rows_loaded'])}</td><td>{_e(f['rows_quarantined'])}</td><td>{_e(f['warnings'])}</td></tr>")
    out.append("</table><h2>Kết quả theo tệp / Findings per file</h2>")
    for f in files:
        findings = by_file.get(f["file_id"], [])
        out.append(f"<h3 id='file-{f['file_id']}'>{f['file_id']}. {_e(f['file_name'])} "
                   f"<small>({_e(f['kind'])}, {_e(f['path'])})</small></h3>")
        if f["status"] in ("rejected", "failed") and f["error"]:
            out.append(f"<p class='rejected'>Lý do / reason: <code>{_e(f['error_code'])}</code> — {_e(f['error'])}</p>")
        if f["status"] == "duplicate":
            out.append(f"<p>Trùng nội dung với tệp / same bytes as file #{_e(f['duplicate_of'])}: không nạp lại / "
                       f"not loaded again.</p>")
        if findings:
            out.append("<ul>" + "".join(_finding_html(r, docs) for r in findings) + "</ul>")
        elif f["status"] == "accepted":
            out.append("<p class='accepted'>Đạt mọi quy tắc / passed every rule.</p>")
    run_level = by_file.get(None, [])
    out.append("<h2>Cảnh báo toàn lượt chạy / Run-level warnings</h2>")
    out.append("<ul>" + "".join(_finding_html(r, docs) for r in run_level) + "</ul>" if run_level
               else "<p>Không có / none.</p>")
    out.append(_reconciliation_html(data.get("reconciliation") or [], names))
    out.append("<h2>Danh mục quy tắc / Rule catalog</h2><table><tr><th>Bộ / suite</th><th>Loại / kind</th>"
               "<th>Quy tắc / rule</th><th>Mức / severity</th><th>Tiếng Việt</th><th>English</th></tr>")
    for suite, kind, rule in R.all_rules():
        vi_sev, en_sev = R.SEVERITY_WORDS[rule.severity]
        out.append(f"<tr><td>{_e(suite)}</td><td>{_e(kind)}</td><td><code>{_e(rule.name)}</code></td>"
                   f"<td class='{rule.severity}'>{_e(vi_sev)} / {_e(en_sev)}</td><td>{_e(rule.message_vi)}</td>"
                   f"<td>{_e(rule.message_en)}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def _write_findings_csv(data: dict, path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_id", "file_name", "kind", "status", "suite", "rule", "severity", "rows_failed",
                         "message_vi", "message_en", "sample_failing_rows"])
        files = {f["file_id"]: f for f in data["files"]}
        for r in data["results"]:
            if r["success"]:
                continue
            f = files.get(r["file_id"], {})
            writer.writerow([excel_safe(v) for v in (
                r["file_id"], f.get("file_name"), r["kind"], f.get("status"), r["suite"], r["expectation"],
                r["severity"], r["rows_failed"], r["message_vi"], r["message_en"],
                json.dumps(r["sample_failing_rows"], ensure_ascii=False) if r["sample_failing_rows"] else "")])
        for f in data["files"]:
            if f["status"] in ("rejected", "failed") and not any(
                    r["file_id"] == f["file_id"] and not r["success"] for r in data["results"]):
                writer.writerow([excel_safe(v) for v in (
                    f["file_id"], f["file_name"], f["kind"], f["status"], "loader", f["error_code"],
                    "reject_file", "", f["error"], f["error"], "")])


def _write_quarantine_csv(dsn: str, run_id: str, path: Path) -> int:
    """Every quarantined row of the run's files, as it arrived, with the rules it failed (Excel-safe)."""
    from reform_etl.kinds import KIND_SPECS

    count = 0
    with psycopg.connect(dsn) as conn, path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "file_id", "file_name", "row_number", "failed_rules", "row"])
        for kind, spec in KIND_SPECS.items():
            cols = ", ".join(f"q.{c}" for c in spec.keys)
            for file_id, file_name, row_number, failed, *values in conn.execute(
                    f"select q._file_id, f.file_name, q._row_number, q.failed_rules, {cols} from quarantine.{kind} q "
                    f"join audit.submission_files f on f.file_id = q._file_id where f.run_id = %s "
                    f"order by q._file_id, q._row_number", (run_id,)):
                rules = "; ".join(f"{r['rule']}: {r['message_vi']} / {r['message_en']}" for r in failed)
                row = json.dumps(dict(zip(spec.keys, values, strict=True)), ensure_ascii=False)
                writer.writerow([excel_safe(v) for v in (kind, file_id, file_name, row_number, rules, row)])
                count += 1
    return count


def build_report(dsn: str, run_id: str, out_dir: Path) -> Path:
    """Write the run's report folder under out_dir and return the path of its index.html.

    Reads the warehouse, never writes to it: the run's cross-file warnings are a step of the run
    before (`validation.warn_checks`, the nightly's `cross_file_checks` task).
    """
    folder = Path(out_dir) / safe_dir_name(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    data = _collect(dsn, run_id)
    docs = _build_data_docs(dsn, run_id, folder / "data_docs")
    _write_findings_csv(data, folder / "findings.csv")
    _write_quarantine_csv(dsn, run_id, folder / "quarantine.csv")
    index = folder / "index.html"
    index.write_text(_page(data, run_id, docs), encoding="utf-8")
    return index
