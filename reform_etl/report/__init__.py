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

from pathlib import Path

from reform_etl.report.collect import read_run
from reform_etl.report.csv_files import FORMULA_PREFIXES, excel_safe, write_findings_csv, write_quarantine_csv
from reform_etl.report.data_docs import build_data_docs
from reform_etl.report.index import write_index
from reform_etl.report.page import render_page
from reform_etl.report.text import local_time, rejection, safe_dir_name

__all__ = [
    "FORMULA_PREFIXES", "build_report", "excel_safe", "local_time", "read_run", "rejection", "render_page",
    "rewrite_page", "safe_dir_name", "write_index",
]


def build_report(dsn: str, run_id: str, out_dir: Path) -> Path:
    """Write the run's report folder under out_dir and return the path of its index.html.

    Reads the warehouse, never writes to it: the run's cross-file warnings are a step of the run
    before (`validation.warn_checks`, the nightly's `cross_file_checks` task).
    """
    folder = Path(out_dir) / safe_dir_name(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    data = read_run(dsn, run_id)
    docs = build_data_docs(dsn, run_id, folder / "data_docs", data)
    write_findings_csv(data, folder / "findings.csv")
    write_quarantine_csv(dsn, run_id, folder / "quarantine.csv", data["unit_names"])
    index = folder / "index.html"
    index.write_text(render_page(data, run_id, docs), encoding="utf-8")
    from reform_etl import dashboard  # the leader's page beside the report (and in <out_dir>/latest/)

    dashboard.write_for_run(dsn, folder)
    write_index(dsn, out_dir)
    return index


def rewrite_page(dsn: str, run_id: str, index: Path) -> Path:
    """Rewrite a built report's page from the audit as it is now (the run closed: its final outcome)."""
    index = Path(index)
    docs = (index.parent / "data_docs" / "index.html").is_file()
    index.write_text(render_page(read_run(dsn, run_id), run_id, docs), encoding="utf-8")
    return index
