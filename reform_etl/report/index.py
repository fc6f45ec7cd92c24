"""`<out_dir>/index.html`: every run, newest first, linked to its report."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from reform_etl.config import TIMEZONE
from reform_etl.report.collect import connect, fetch
from reform_etl.report.page import CSS
from reform_etl.report.text import esc, local_time, safe_dir_name

RUN_WORDS = {"success": ("Thành công", "Succeeded"), "failed": ("Thất bại", "Failed"),
             "running": ("Đang chạy", "Running")}


def write_index(dsn: str, out_dir: Path) -> Path:
    """out_dir/index.html: every run, newest first, with its date, outcome, files, rows, quarantined rows,
    warnings and a link to its report (where one was written)."""
    with connect(dsn) as conn:
        runs = fetch(conn, """
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
            f"<tr><td>{esc(local_time(r['started_at']))}</td><td><code>{esc(r['run_id'])}</code></td>"
            f"<td>{esc(r['triggered_by'])}</td><td class='{esc(r['status'])}'>{esc(vi)} / {esc(en)}</td>"
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
