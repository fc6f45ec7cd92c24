"""The run's GX Data Docs, working offline: built for this run only, every page pointed at the shared
local assets in `<out_dir>/_assets/` (no CDN), saved under portable names, with a banner naming its file(s)."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote, unquote

from reform_etl.report.text import esc, period_text, safe_dir_name, units_text
from reform_etl.validation.gx import portable_name

log = logging.getLogger(__name__)

ASSETS = Path(__file__).parent.parent / "report_assets"
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
        f"<li>#{f['file_id']} <b>{esc(f['file_name'])}</b> — {esc(f['kind'])}, {esc(units_text(f['units'], names))}, "
        f"{esc(period_text(f))}</li>" for f in files)
    return (f"<div class='container-fluid alert alert-info' style='margin:0'><b>Tệp / file:</b>"
            f"<ul style='margin:0'>{items}</ul></div>") if items else ""


def build_data_docs(dsn: str, run_id: str, target: Path, data: dict) -> bool:
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
