"""The small text helpers the page, the Data Docs banners, the CSVs and the runs index share."""

from __future__ import annotations

import html
from datetime import datetime

from reform_etl.config import as_local
from reform_etl.validation import rules as R
from reform_etl.validation.gx import portable_name


def esc(value: object) -> str:
    """HTML-escaped text of a value; None is empty."""
    return html.escape("" if value is None else str(value))


def safe_dir_name(run_id: str) -> str:
    """A run id as one folder name (Airflow run ids hold ':' and '+'; nothing may climb out with '..')."""
    return portable_name(run_id)


def local_time(value: datetime | str | None) -> str:
    """A timestamp in the provinces' time zone, to the second, with the zone: '2026-11-23 01:00:05 +07'."""
    if value is None or value == "":
        return ""
    return as_local(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def units_text(units: list[str] | None, names: dict[str, str]) -> str:
    units = [u for u in (units or []) if u]
    if not units:
        return "—"
    shown = [f"{u} {names.get(u, '')}".strip() for u in units[:3]]
    more = f" … (+{len(units) - 3})" if len(units) > 3 else ""
    return "; ".join(shown) + more


def period_text(f: dict) -> str:
    if not f["period_from"]:
        return "—"
    return f["period_from"] if f["period_from"] == f["period_to"] else f"{f['period_from']} → {f['period_to']}"


def rejection(f: dict) -> tuple[str, str, str]:
    """(rule name from the catalog, Vietnamese, English) of a rejected or failed file: the loader's error_code
    named as its file rule (`bad_path` is `unsafe_file_path`), the loader's own text as the detail."""
    rule = R.file_rule_for(f["error_code"])
    if rule is None:
        return f["error_code"] or "file_not_parsed", f["error"] or "", f["error"] or ""
    return rule.name, rule.message_vi, rule.message_en
