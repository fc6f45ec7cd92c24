"""The run's page (`<run>/index.html`): totals, files, findings with sample rows, flags, the rule catalog."""

from __future__ import annotations

import json
from urllib.parse import quote

from reform_etl.report.data_docs import portable_path
from reform_etl.report.text import esc, local_time, period_text, rejection, units_text
from reform_etl.transform.decision import DBT_WORDS
from reform_etl.validation import rules as R

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
                   + "".join(f"<li class='warn'>{esc(t)}</li>" for t in replaced) + "</ul>")
    par = data.get("par_incomplete") or []
    if par:
        names = data["unit_names"]
        out.append("<h2>Điểm CCHC chưa đủ tiêu chí: thứ hạng tạm tính / Incomplete PAR scores: provisional rank"
                   "</h2><ul>" + "".join(
                       f"<li class='warn'>{esc(p['unit_code'])} {esc(names.get(p['unit_code'], ''))} {p['year']}: "
                       f"{p['leaves_scored']}/{p['leaves_expected']} tiêu chí thành phần có điểm / leaves scored; "
                       f"thiếu / missing: {esc(p['missing_criteria'])}; hạng tạm tính / provisional rank "
                       f"{esc(p['rank_in_province'])} (tiêu chí thiếu tính 0 điểm / missing leaves count 0)</li>"
                       for p in par) + "</ul>")
    return "\n".join(out)


COLUMN_WORDS = {"_row_number": "Dòng / row", "unit_code": "Mã đơn vị / unit", "unit_name": "Tên đơn vị / unit name",
                "period": "Kỳ / period", "year": "Năm / year", "observed": "Giá trị / observed"}


def _sample_table(rows: list[dict] | None) -> str:
    if not rows:
        return ""
    rows = rows[:SAMPLE_IN_PAGE]
    cols = list(dict.fromkeys(k for r in rows for k in r if k != "observed"))
    if any("observed" in r for r in rows):
        cols.append("observed")
    head = "".join(f"<th>{esc(COLUMN_WORDS.get(c, c))}</th>" for c in cols)
    def cell(value: object) -> str:
        return esc(json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value)

    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table class='sample'><tr>{head}</tr>{body}</table>"


def _finding_html(r: dict, docs: bool) -> str:
    vi_sev, en_sev = R.SEVERITY_WORDS.get(R.Severity(r["severity"]), (r["severity"], r["severity"]))
    link = ""
    if docs and r.get("gx_result_path"):
        link = f" <a href='data_docs/{quote(portable_path(r['gx_result_path']))}'>Data Docs</a>"
    rows = f"{r['rows_failed']} dòng / rows" if r["severity"] != "reject_file" else ""
    return (
        f"<li class='{esc(r['severity'])}'><span class='sev'>{esc(vi_sev)} / {esc(en_sev)}</span> "
        f"<code>{esc(r['expectation'])}</code> — {esc(r['message_vi'])} / <i>{esc(r['message_en'])}</i> "
        f"<b>{esc(rows)}</b>{link}{_sample_table(r.get('sample_failing_rows'))}</li>"
    )


def _reason_html(f: dict) -> str:
    name, vi, en = rejection(f)
    detail = f" — chi tiết / detail: {esc(f['error'])}" if f["error"] not in (vi, en) else ""
    return f"Lý do: {esc(vi)} / <i>Reason: {esc(en)}</i> (<code>{esc(name)}</code>){detail}"


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
    shown = "" if dbt["mode"] == "skip" else f" (<span class='{esc(status)}'>{esc(_status_words(status))}</span>)"
    return f"<p>Mô hình dữ liệu / marts (dbt): <b>{esc(vi)} / {esc(en)}</b>{shown} — {esc(dbt['reason'])}</p>"


def _failures_html(status: str, failures: list[str]) -> str:
    """The failed steps of the run (a dbt model or test names its task), or why it was abandoned."""
    if not failures:
        return ""
    items = "".join(f"<li><code>{esc(line[:2000])}</code></li>" for line in failures)
    return (f"<h2 class='failed'>Các bước lỗi / Failed steps</h2><p>Lượt chạy {esc(_status_words(status))}: "
            f"các bước dưới đây không hoàn thành (mô hình hoặc kiểm thử dbt được nêu tên) / the run "
            f"{esc(RUN_STATUS_WORDS.get(status, (status, status))[1])}: these steps did not complete (a dbt model "
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
        f"<tr><td>{esc(units_text([r['unit_code']], names))}</td><td>{esc(r['period'])}</td><td>{esc(r['level'])}</td>"
        f"<td>{esc(r['code'])}</td><td>{esc(r['our_score'])}</td><td>{esc(r['published_score'])}</td>"
        f"<td>{esc(r['difference'])}</td></tr>" for r in rows)
    return head + "<table><tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>" + body + "</table>"


def render_page(data: dict, run_id: str, docs: bool) -> str:
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
           f"Validation report — {esc(run_id)}</title><style>{CSS}</style></head><body>",
           f"<p><a href='../index.html'>← Các lượt chạy / all runs</a></p>"
           f"<h1>Báo cáo kiểm tra dữ liệu / Validation report</h1><p>Lượt chạy / run <code>{esc(run_id)}</code>; "
           f"bắt đầu / started {esc(local_time(pipeline.get('started_at') or run.get('started_at')))}; "
           f"kết thúc / ended "
           f"{esc(local_time(pipeline.get('ended_at') or run.get('ended_at')))}; trạng thái / status "
           f"<b class='{esc(status)}'>{esc(_status_words(status))}</b>; "
           f"Great Expectations {esc(run.get('gx_version'))}</p>",
           _failures_html(status, failures),
           "<table><tr>" + "".join(f"<th>{esc(k)}</th>" for k in (
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
            f"<tr><td><a href='#file-{f['file_id']}'>{f['file_id']}</a></td><td>{esc(f['file_name'])}</td>"
            f"<td>{esc(f['kind'])}</td><td>{esc(units_text(f['units'], names))}</td><td>{esc(period_text(f))}</td>"
            f"<td class='{esc(f['status'])}'>{esc(vi)} / {esc(en)}</td><td>{esc(f['rows_total'])}</td>"
            f"<td>{esc(f['rows_loaded'])}</td><td>{esc(f['rows_quarantined'])}</td><td>{esc(f['warnings'])}</td></tr>")
    out.append("</table>")
    waiting = (pipeline.get("summary") or {}).get("waiting") or []
    if waiting:
        out.append("<h2>Tệp đang được ghi, để lượt sau / Files still being written, left for a later run</h2><p>"
                   "Các tệp này vừa thay đổi, chưa nạp; lượt chạy sau sẽ nạp khi tệp ổn định / these files changed "
                   "moments ago and were not loaded; a later run loads them once they are still.</p><ul>"
                   + "".join(f"<li><code>{esc(path)}</code></li>" for path in waiting) + "</ul>")
    out.append("<h2>Kết quả theo tệp / Findings per file</h2>")
    for f in files:
        findings = by_file.get(f["file_id"], [])
        out.append(f"<h3 id='file-{f['file_id']}'>{f['file_id']}. {esc(f['file_name'])} "
                   f"<small>({esc(f['kind'])}, {esc(f['path'])})</small></h3>")
        if f["status"] in ("rejected", "failed") and f["error"]:
            out.append(f"<p class='rejected'>{_reason_html(f)}</p>")
        if f["status"] == "duplicate":
            out.append(f"<p>Trùng nội dung với tệp / same bytes as file #{esc(f['duplicate_of'])}: không nạp lại / "
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
        out.append(f"<tr><td>{esc(suite)}</td><td>{esc(kind)}</td><td><code>{esc(rule.name)}</code></td>"
                   f"<td class='{rule.severity}'>{esc(vi_sev)} / {esc(en_sev)}</td><td>{esc(rule.message_vi)}</td>"
                   f"<td>{esc(rule.message_en)}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)
