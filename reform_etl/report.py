"""The auditor's run report: a static summary page plus the GX Data Docs of the run, no server, no internet.

`build_report(dsn, run_id, out_dir)` writes `out_dir/<run>/index.html` (every file of the run
with unit, kind, period, status and counts, and every failed rule in plain Vietnamese and
English with the unit, period and key of sample failing rows, linked to its Data Docs page),
`out_dir/<run>/data_docs/` (GX Data Docs of this run only, when it validated anything),
`findings.csv` (every failed rule per file) and `quarantine.csv` (every quarantined row as it
arrived, one column per field, with its rules), and refreshes `out_dir/index.html`, the list of
all runs. The CSVs are `;`-separated UTF-8 with a BOM (Excel in a Vietnamese locale opens them
as they are); cells that start with =, +, -, @ are neutralised. The Data Docs' styles and
scripts, and GX's 4 MB of fonts and images, are kept once in `out_dir/_assets/`, not per run.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from reform_etl.config import TIMEZONE
from reform_etl.kinds import KIND_SPECS
from reform_etl.transform.decision import DBT_WORDS
from reform_etl.validation import rules as R
from reform_etl.validation.gx import portable_name

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


RUN_STATUS_WORDS = {  # audit.pipeline_runs / audit.transform_runs status, (Vietnamese, English)
    "success": ("Thành công", "success"),
    "failed": ("Thất bại", "failed"),
    "running": ("Đang chạy", "running"),
    "abandoned": ("Bị bỏ dở", "abandoned"),
    "skipped": ("Bỏ qua", "skipped"),
}


def _status_words(status: str | None) -> str:
    vi, en = RUN_STATUS_WORDS.get(status or "", (status or "—", status or "—"))
    return f"{vi} / {en}"


def run_outcome(pipeline: dict) -> tuple[str, list[str]]:
    """The run's outcome as far as it has gone, and its failed steps: its recorded status once closed;
    while it runs (the report is built before `finish`), failed as soon as a task failed, else success so far."""
    lines = [line for line in (pipeline.get("error") or "").splitlines() if line.strip()]
    status = pipeline.get("status") or "running"
    if status == "running":
        status = "failed" if any(line.startswith("task ") for line in lines) else "success"
    return status, lines


def excel_safe(value: object) -> object:
    """Neutralise spreadsheet formula injection: text starting with = + - @ (or tab/CR) gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_dir_name(run_id: str) -> str:
    """A run id as one folder name (Airflow run ids hold ':' and '+'; nothing may climb out with '..')."""
    return portable_name(run_id)


def local_time(value: datetime | str | None) -> str:
    """A timestamp in the provinces' time zone, to the second, with the zone: '2026-11-23 01:00:05 +07'."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(TIMEZONE)).strftime("%Y-%m-%d %H:%M:%S %Z")


def identity_columns(kind: str) -> list[str]:
    """The columns that say whose row it is: unit, period (or year, or date) and the kind's key."""
    spec = KIND_SPECS[kind]
    return list(dict.fromkeys(("unit_code", spec.period_column, *spec.key)))


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
        par_incomplete = _par_incomplete(conn, run_id)
        # Decision 766: where our score and the portal's published score differ by more than 0.01 (after dbt).
        reconciliation = _fetch(conn, "select unit_code, period, level, code, our_score, published_score, difference "
                                "from marts.rpt_service_index_reconciliation order by unit_code, period, level, code "
                                "limit 200", ()) if conn.execute(
            "select to_regclass('marts.rpt_service_index_reconciliation')").fetchone()[0] else []
        unit_names = dict(conn.execute(
            "select distinct on (unit_code) unit_code, unit_name from audit.ref_units "
            "order by unit_code, valid_from desc").fetchall())
        for r in results:
            if not r["success"] and r["sample_failing_rows"]:
                r["sample_failing_rows"] = _identify_sample(conn, r, unit_names)
    return {"run": run[0] if run else {}, "pipeline": pipeline[0] if pipeline else {}, "files": files,
            "results": results, "unit_names": unit_names, "dbt": dbt[0] if dbt else None,
            "reconciliation": reconciliation,
            "par_incomplete": par_incomplete}


def _par_incomplete(conn: psycopg.Connection, run_id: str) -> list[dict]:
    """rpt_par_index rows of the unit-years this run's PAR files report that miss leaves (none before dbt built it)."""
    if not conn.execute("select to_regclass('marts.rpt_par_index')").fetchone()[0]:
        return []
    return _fetch(conn, """
        select i.unit_code, i.year, i.leaves_scored, i.leaves_expected, i.missing_criteria, i.rank_in_province
        from marts.rpt_par_index i
        where not i.is_complete and exists (
            select 1 from audit.submission_partitions p, audit.submission_files f
            where f.file_id = p.file_id and p.kind = 'par_scores' and p.unit_code = i.unit_code
              and p.period = lpad(i.year::text, 4, '0')
              and (f.run_id = %s or f.file_id in (select file_id from audit.validation_results where run_id = %s)))
        order by i.year, i.unit_code""", (run_id, run_id))


def replacements(results: list[dict]) -> list[str]:
    """The run's "file #N replaces file #M for unit U, period P: 12 rows → 1" sentences (correction_fewer_rows)."""
    return [row["detail"] for r in results if r["expectation"] == "correction_fewer_rows" and not r["success"]
            for row in (r.get("sample_failing_rows") or []) if row.get("detail")]


def _flags_html(data: dict) -> str:
    """The run's replacements by shorter files, and the incomplete PAR scores whose rank is provisional."""
    out = []
    replaced = replacements(data["results"])
    if replaced:
        out.append("<h2>Tệp thay thế có ít dòng hơn / Files replaced by shorter ones</h2><ul>"
                   + "".join(f"<li class='warn'>{_e(t)}</li>" for t in replaced) + "</ul>")
    par = data.get("par_incomplete") or []
    if par:
        names = data["unit_names"]
        out.append("<h2>Điểm CCHC chưa đủ tiêu chí: thứ hạng tạm tính / Incomplete PAR scores: provisional rank"
                   "</h2><ul>" + "".join(
                       f"<li class='warn'>{_e(p['unit_code'])} {_e(names.get(p['unit_code'], ''))} {p['year']}: "
                       f"{p['leaves_scored']}/{p['leaves_expected']} tiêu chí thành phần có điểm / leaves scored; "
                       f"thiếu / missing: {_e(p['missing_criteria'])}; hạng tạm tính / provisional rank "
                       f"{_e(p['rank_in_province'])} (tiêu chí thiếu tính 0 điểm / missing leaves count 0)</li>"
                       for p in par) + "</ul>")
    return "\n".join(out)


def _identify_sample(conn: psycopg.Connection, result: dict, names: dict[str, str]) -> list:
    """The sample failing rows of a result with whose rows they are: the unit (code and name), period and key
    of each row, read from raw by its row number (GX's sample holds the row number and the failing columns)."""
    sample = result["sample_failing_rows"]
    if not isinstance(sample, list) or not all(isinstance(s, dict) for s in sample):
        return sample
    kind, file_id = result.get("kind"), result.get("file_id")
    found: dict[int, dict] = {}
    if kind in KIND_SPECS and file_id is not None and all("_row_number" in s for s in sample):
        cols = identity_columns(kind)
        query = sql.SQL("select _row_number, {} from {} where _file_id = %s and _row_number = any(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier("raw", kind))
        for number, *values in conn.execute(query, (file_id, [s["_row_number"] for s in sample])):
            found[number] = dict(zip(cols, values, strict=True))
    out = []
    for s in sample:
        who = found.get(s.get("_row_number"), {})
        row = {"_row_number": s["_row_number"]} if "_row_number" in s else {}
        row |= who | {k: v for k, v in s.items() if k not in row and k not in who}
        if row.get("unit_code"):  # the unit's name right after its code
            at = list(row).index("unit_code") + 1
            items = list(row.items())
            row = dict(items[:at] + [("unit_name", names.get(row["unit_code"], ""))] + items[at:])
        out.append(row)
    return out


ASSETS = Path(__file__).parent / "report_assets"
# The Data Docs' CDN files by name -> our copies (reform_etl/report_assets/README.md); others are dropped
LOCAL_ASSETS = {
    "bootstrap.min.css": "css/bootstrap.min.css", "bootstrap.min.js": "js/bootstrap.min.js",
    "jquery-3.7.1.min.js": "js/jquery.min.js", "popper.min.js": "js/popper.min.js",
    "bootstrap-table.min.css": "css/bootstrap-table.min.css", "bootstrap-table.min.js": "js/bootstrap-table.min.js",
    "bootstrap-table-filter-control.css": "css/bootstrap-table-filter-control.min.css",
    "bootstrap-table-filter-control.min.css": "css/bootstrap-table-filter-control.min.css",
    "bootstrap-table-filter-control.min.js": "js/bootstrap-table-filter-control.min.js",
    "bootstrap-datepicker.min.css": "css/bootstrap-datepicker.min.css",
    "bootstrap-datepicker.min.js": "js/bootstrap-datepicker.min.js", "all.min.css": "css/fontawesome.min.css",
}
REMOTE_TAG = re.compile(r"<link\b[^>]*\bhref=[\"'](https?://[^\"']+)[\"'][^>]*>"
                        r"|<script\b[^>]*\bsrc=[\"'](https?://[^\"']+)[\"'][^>]*>\s*</script>", re.I)
GX_STATIC = re.compile(r"(?<=[\"'(])(?:\.\.?/)*static/")


HTML_REF = re.compile(r"(?<=[\"'])([^\"'\s<>:]*?\.html)(?=[#\"'])")


def portable_path(relative: str) -> str:
    """A Data Docs page's path with every folder and file name portable (GX names a run-level page after
    the run id, ':' and '+' included): the name the page is saved under and linked by."""
    return "/".join(part if part in (".", "..", "") else portable_name(part) for part in relative.split("/"))


def _portable_refs(text: str) -> str:
    """Links to Data Docs pages, URL-encoded or not, rewritten to the pages' portable names."""
    return HTML_REF.sub(lambda m: quote(portable_path(unquote(m.group(1)))), text)


def install_assets(out_dir: Path) -> Path:
    """The Data Docs' styles, scripts, fonts and images, once for all runs, in out_dir/_assets (refreshed
    when the GX version changes)."""
    import great_expectations as gx
    from great_expectations.render import view

    target = Path(out_dir) / "_assets"
    stamp = target / "VERSION"
    version = f"great_expectations {gx.__version__}"
    if not (stamp.is_file() and stamp.read_text() == version):
        shutil.copytree(ASSETS, target, dirs_exist_ok=True)
        shutil.copytree(Path(view.__file__).parent / "static", target / "gx_static", dirs_exist_ok=True)
        stamp.write_text(version)
    return target


def _localise_page(page: Path, assets: Path, banner: str) -> None:
    """Point a Data Docs page at the shared local assets (no CDN, no per-run copy of GX's static folder) and
    put `banner` (whose file it is) at the top of its body."""
    rel = Path(os.path.relpath(assets, page.parent)).as_posix()

    def local(match: re.Match) -> str:
        url = match.group(1) or match.group(2)
        name = LOCAL_ASSETS.get(url.rstrip("/").rsplit("/", 1)[-1])
        if name is None:
            return ""
        return (f"<link rel='stylesheet' href='{rel}/{name}'>" if match.group(1)
                else f"<script src='{rel}/{name}'></script>")

    text = REMOTE_TAG.sub(local, page.read_text(encoding="utf-8"))
    text = _portable_refs(GX_STATIC.sub(f"{rel}/gx_static/", text))
    if banner:
        text = re.sub(r"(<body\b[^>]*>)", lambda m: m.group(1) + banner, text, count=1)
    page.write_text(text, encoding="utf-8")


def _docs_banner(files: list[dict], names: dict[str, str]) -> str:
    items = "".join(
        f"<li>#{f['file_id']} <b>{_e(f['file_name'])}</b> — {_e(f['kind'])}, {_e(_units_text(f['units'], names))}, "
        f"{_e(_period_text(f))}</li>" for f in files)
    return (f"<div class='container-fluid alert alert-info' style='margin:0'><b>Tệp / file:</b>"
            f"<ul style='margin:0'>{items}</ul></div>") if items else ""


def _build_data_docs(dsn: str, run_id: str, target: Path, data: dict) -> bool:
    """GX Data Docs of this run's validation results only, into `target`, working offline: every page names
    the file(s) it is about (GX says only `file_id 10`), and loads its assets from out_dir/_assets."""
    if target.exists():
        shutil.rmtree(target)
    if not data["results"]:  # a night with nothing to validate: no Data Docs, nothing copied
        return False
    try:
        from reform_etl.validation import project

        context = project.context_for(dsn)
        site = f"run_report_{safe_dir_name(run_id)}"
        context.variables.data_docs_sites = {site: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(target)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "site_section_builders": {"validations": {"run_name_filter": {"equals": portable_name(run_id)}},
                                      "profiling": "None"},
        }}
        context.build_data_docs(site_names=[site])
        if not (target / "index.html").is_file():
            return False
        assets = install_assets(target.parent.parent)
        shutil.rmtree(target / "static", ignore_errors=True)  # GX's 4 MB of fonts and images, per run
        files = {f["file_id"]: f for f in data["files"]}
        by_path: dict[str, list[dict]] = {}
        for r in data["results"]:
            if r.get("gx_result_path") and r["file_id"] in files:
                by_path.setdefault(r["gx_result_path"], [])
                if files[r["file_id"]] not in by_path[r["gx_result_path"]]:
                    by_path[r["gx_result_path"]].append(files[r["file_id"]])
        names = data["unit_names"]
        for page in list(target.rglob("*.html")):
            key = page.relative_to(target).as_posix()
            if portable_path(key) != key:  # Windows takes no ':' in a name
                moved = target / portable_path(key)
                moved.parent.mkdir(parents=True, exist_ok=True)
                page = page.rename(moved)
            about = data["files"] if key == "index.html" else by_path.get(key, [])
            _localise_page(page, assets, _docs_banner(about, names))
        return True
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


COLUMN_WORDS = {"_row_number": "Dòng / row", "unit_code": "Mã đơn vị / unit", "unit_name": "Tên đơn vị / unit name",
                "period": "Kỳ / period", "year": "Năm / year", "observed": "Giá trị / observed"}


def _sample_table(rows: list[dict] | None) -> str:
    if not rows:
        return ""
    rows = rows[:SAMPLE_IN_PAGE]
    cols = list(dict.fromkeys(k for r in rows for k in r if k != "observed"))
    if any("observed" in r for r in rows):
        cols.append("observed")
    head = "".join(f"<th>{_e(COLUMN_WORDS.get(c, c))}</th>" for c in cols)
    def cell(value: object) -> str:
        return _e(json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value)

    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table class='sample'><tr>{head}</tr>{body}</table>"


def _finding_html(r: dict, docs: bool) -> str:
    vi_sev, en_sev = R.SEVERITY_WORDS.get(R.Severity(r["severity"]), (r["severity"], r["severity"]))
    link = ""
    if docs and r.get("gx_result_path"):
        link = f" <a href='data_docs/{quote(portable_path(r['gx_result_path']))}'>Data Docs</a>"
    rows = f"{r['rows_failed']} dòng / rows" if r["severity"] != "reject_file" else ""
    return (
        f"<li class='{_e(r['severity'])}'><span class='sev'>{_e(vi_sev)} / {_e(en_sev)}</span> "
        f"<code>{_e(r['expectation'])}</code> — {_e(r['message_vi'])} / <i>{_e(r['message_en'])}</i> "
        f"<b>{_e(rows)}</b>{link}{_sample_table(r.get('sample_failing_rows'))}</li>"
    )


def rejection(f: dict) -> tuple[str, str, str]:
    """(rule name from the catalog, Vietnamese, English) of a rejected or failed file: the loader's error_code
    named as its file rule (`bad_path` is `unsafe_file_path`), the loader's own text as the detail."""
    rule = R.file_rule_for(f["error_code"])
    if rule is None:
        return f["error_code"] or "file_not_parsed", f["error"] or "", f["error"] or ""
    return rule.name, rule.message_vi, rule.message_en


def _reason_html(f: dict) -> str:
    name, vi, en = rejection(f)
    detail = f" — chi tiết / detail: {_e(f['error'])}" if f["error"] not in (vi, en) else ""
    return f"Lý do: {_e(vi)} / <i>Reason: {_e(en)}</i> (<code>{_e(name)}</code>){detail}"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:90%;vertical-align:top}th{background:#f3f3f3}
.accepted,.success{color:#075}.rejected,.reject_file,.failed,.abandoned{color:#b00}.quarantine_row{color:#a50}.warn{color:#875}
.sev{font-weight:bold}table.sample td{font-family:monospace;font-size:80%}li{margin:.4em 0}
"""


def _dbt_paragraph(dbt: dict | None, failures: list[str]) -> str:
    if not dbt:
        return "<p>dbt: <i>không chạy / not run</i></p>"
    vi, en = DBT_WORDS.get(dbt["mode"], (dbt["mode"], dbt["mode"]))
    status = dbt["status"]
    dbt_failed = [line for line in failures if line.startswith(("task dbt.", "task dbt_refresh"))]
    if status == "running" and dbt_failed:  # closed as failed by `finish`, after this page is first written
        status = "failed"
    shown = "" if dbt["mode"] == "skip" else f" (<span class='{_e(status)}'>{_e(_status_words(status))}</span>)"
    return f"<p>Mô hình dữ liệu / marts (dbt): <b>{_e(vi)} / {_e(en)}</b>{shown} — {_e(dbt['reason'])}</p>"


def _failures_html(status: str, failures: list[str]) -> str:
    """The failed steps of the run (a dbt model or test names its task), or why it was abandoned."""
    if not failures:
        return ""
    items = "".join(f"<li><code>{_e(line[:2000])}</code></li>" for line in failures)
    return (f"<h2 class='failed'>Các bước lỗi / Failed steps</h2><p>Lượt chạy {_e(_status_words(status))}: "
            f"các bước dưới đây không hoàn thành (mô hình hoặc kiểm thử dbt được nêu tên) / the run "
            f"{_e(RUN_STATUS_WORDS.get(status, (status, status))[1])}: these steps did not complete (a dbt model "
            f"or test is named by its task)</p><ul>{items}</ul>")


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
    pipeline = data.get("pipeline") or {}
    status, failures = run_outcome(pipeline)
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
           f"<p><a href='../index.html'>← Các lượt chạy / all runs</a></p>"
           f"<h1>Báo cáo kiểm tra dữ liệu / Validation report</h1><p>Lượt chạy / run <code>{_e(run_id)}</code>; "
           f"bắt đầu / started {_e(local_time(pipeline.get('started_at') or run.get('started_at')))}; kết thúc / ended "
           f"{_e(local_time(pipeline.get('ended_at') or run.get('ended_at')))}; trạng thái / status "
           f"<b class='{_e(status)}'>{_e(_status_words(status))}</b>; "
           f"Great Expectations {_e(run.get('gx_version'))}</p>",
           _failures_html(status, failures),
           "<table><tr>" + "".join(f"<th>{_e(k)}</th>" for k in (
               "Tệp / files", "Nhận / accepted", "Từ chối / rejected", "Dòng / rows", "Nạp / loaded",
               "Cách ly / quarantined", "Cảnh báo / warnings")) + "</tr><tr>" + "".join(
               f"<td>{v}</td>" for v in totals.values()) + "</tr></table>",
           "<p>Mỗi tệp: số dòng nạp + số dòng cách ly = số dòng dữ liệu / for every accepted file, rows loaded + "
           "rows quarantined = data rows in the file. "
           + ("<a href='data_docs/index.html'>GX Data Docs</a>" if docs else
              "GX Data Docs: không có kết quả kiểm tra / nothing validated" if not results else
              "<b>GX Data Docs unavailable</b>")
           + " · <a href='findings.csv'>findings.csv</a> (các lỗi / findings) · "
           "<a href='quarantine.csv'>quarantine.csv</a> (các dòng bị cách ly / quarantined rows)</p>",
           _dbt_paragraph(data.get("dbt"), failures),
           _flags_html(data),
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
    out.append("</table>")
    waiting = (pipeline.get("summary") or {}).get("waiting") or []
    if waiting:
        out.append("<h2>Tệp đang được ghi, để lượt sau / Files still being written, left for a later run</h2><p>"
                   "Các tệp này vừa thay đổi, chưa nạp; lượt chạy sau sẽ nạp khi tệp ổn định / these files changed "
                   "moments ago and were not loaded; a later run loads them once they are still.</p><ul>"
                   + "".join(f"<li><code>{_e(path)}</code></li>" for path in waiting) + "</ul>")
    out.append("<h2>Kết quả theo tệp / Findings per file</h2>")
    for f in files:
        findings = by_file.get(f["file_id"], [])
        out.append(f"<h3 id='file-{f['file_id']}'>{f['file_id']}. {_e(f['file_name'])} "
                   f"<small>({_e(f['kind'])}, {_e(f['path'])})</small></h3>")
        if f["status"] in ("rejected", "failed") and f["error"]:
            out.append(f"<p class='rejected'>{_reason_html(f)}</p>")
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


CSV_DIALECT = {"delimiter": ";"}  # Excel in a Vietnamese locale reads ';' (',' is its decimal mark)


def _csv_writer(handle):
    return csv.writer(handle, **CSV_DIALECT)


def _write_findings_csv(data: dict, path: Path) -> None:
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


def _write_quarantine_csv(dsn: str, run_id: str, path: Path, names: dict[str, str]) -> int:
    """Every quarantined row of the run's files, as it arrived, one column per field, with the rules it failed
    (Excel-safe). A row's period is its kind's period column (year of a PAR score, month, or a dossier's date)."""
    header = quarantine_columns()
    count = 0
    with psycopg.connect(dsn) as conn, path.open("w", encoding="utf-8-sig", newline="") as handle:
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


RUN_WORDS = {"success": ("Thành công", "Succeeded"), "failed": ("Thất bại", "Failed"),
             "running": ("Đang chạy", "Running")}


def write_index(dsn: str, out_dir: Path) -> Path:
    """out_dir/index.html: every run, newest first, with its date, outcome, files, rows, quarantined rows,
    warnings and a link to its report (where one was written)."""
    with psycopg.connect(dsn) as conn:
        runs = _fetch(conn, """
            select p.run_id, p.started_at, p.ended_at, p.status, p.triggered_by,
                   count(f.file_id) as files,
                   coalesce(sum(f.rows_total) filter (where f.status = 'accepted'), 0) as rows_total,
                   coalesce(sum(f.rows_quarantined), 0) as rows_quarantined,
                   coalesce(sum(f.warnings), 0) + coalesce((select sum(r.rows_failed) from audit.validation_results r
                        where r.run_id = p.run_id and r.file_id is null and not r.success), 0) as warnings,
                   count(f.file_id) filter (where f.status in ('rejected', 'failed')) as rejected
            from audit.pipeline_runs p left join audit.submission_files f on f.run_id = p.run_id
            group by p.run_id order by p.started_at desc, p.run_id desc""", ())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in runs:
        folder = safe_dir_name(r["run_id"])
        link = (f"<a href='{quote(folder)}/index.html'>báo cáo / report</a>"
                if (out_dir / folder / "index.html").is_file() else "—")
        vi, en = RUN_WORDS.get(r["status"] or "running", (r["status"], r["status"]))
        rows.append(
            f"<tr><td>{_e(local_time(r['started_at']))}</td><td><code>{_e(r['run_id'])}</code></td>"
            f"<td>{_e(r['triggered_by'])}</td><td class='{_e(r['status'])}'>{_e(vi)} / {_e(en)}</td>"
            f"<td>{r['files']}</td><td>{r['rejected']}</td><td>{r['rows_total']}</td><td>{r['rows_quarantined']}</td>"
            f"<td>{r['warnings']}</td><td>{link}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in (
        "Ngày / date", "Lượt chạy / run", "Khởi chạy / triggered by", "Kết quả / outcome", "Tệp / files",
        "Từ chối / rejected", "Dòng / rows", "Cách ly / quarantined", "Cảnh báo / warnings", "Báo cáo / report"))
    page = (f"<!doctype html><html lang='vi'><head><meta charset='utf-8'><title>Các lượt chạy / Runs</title>"
            f"<style>{CSS}.success{{color:#075}}.failed{{color:#b00}}</style></head><body>"
            f"<h1>Các lượt chạy / Runs</h1><p>{len(runs)} lượt chạy / runs, mới nhất trước / newest first; "
            f"giờ Việt Nam / times in {TIMEZONE}.</p><table><tr>{head}</tr>{''.join(rows)}</table></body></html>")
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def build_report(dsn: str, run_id: str, out_dir: Path) -> Path:
    """Write the run's report folder under out_dir and return the path of its index.html.

    Reads the warehouse, never writes to it: the run's cross-file warnings are a step of the run
    before (`validation.warn_checks`, the nightly's `cross_file_checks` task).
    """
    folder = Path(out_dir) / safe_dir_name(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    data = _collect(dsn, run_id)
    docs = _build_data_docs(dsn, run_id, folder / "data_docs", data)
    _write_findings_csv(data, folder / "findings.csv")
    _write_quarantine_csv(dsn, run_id, folder / "quarantine.csv", data["unit_names"])
    index = folder / "index.html"
    index.write_text(_page(data, run_id, docs), encoding="utf-8")
    from reform_etl import dashboard  # the leader's page beside the report (and in <out_dir>/latest/)

    dashboard.write_for_run(dsn, folder)
    write_index(dsn, out_dir)
    return index


def rewrite_page(dsn: str, run_id: str, index: Path) -> Path:
    """Rewrite a built report's page from the audit as it is now (the run closed: its final outcome)."""
    index = Path(index)
    docs = (index.parent / "data_docs" / "index.html").is_file()
    index.write_text(_page(_collect(dsn, run_id), run_id, docs), encoding="utf-8")
    return index
