"""Reference data for validation: the dbt seeds, copied into audit.ref_* before validating.

Validation runs before dbt (it decides what dbt may read), so it cannot use dbt's seed tables;
it reads the same seed CSVs from `seeds/` (REFORM_SEEDS) instead. A seed set is reloaded only
when its bytes change (sha256 kept in audit.ref_sources), under an advisory lock.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import date, timedelta
from pathlib import Path

import psycopg

from reform_etl.config import settings

SOURCES = {
    "units": ("units.csv", "departments.csv", "portal_units.csv"),
    "criteria": ("par_criteria.csv", "par_frameworks.csv"),
    "kpis": ("kpis.csv",),
    "fields": ("fields.csv",),
    "service_index_metrics": ("service_index_metrics.csv", "service_index_groups.csv"),
}


# The cross-file warnings look rows up by unit and period in raw; these keep them index lookups.
LOOKUP_INDEXES = (
    "create index if not exists par_scores_key on raw.par_scores (unit_code, year, criterion_code)",
    "create index if not exists dossier_stats_unit_period on raw.dossier_stats (unit_code, period)",
)


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(handle)]


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    return h.hexdigest()


def _valid_to_exclusive(text: str) -> date | None:
    if not text or text.startswith("9999"):
        return None
    return date.fromisoformat(text) + timedelta(days=1)


def _units(folder: Path) -> list[tuple]:
    rows = []
    for name in SOURCES["units"]:
        for r in _read(folder / name):
            if name == "portal_units.csv":  # a commune by its portal id (H44.125), valid as the commune is
                r = {**r, "unit_code": r.get("portal_code", ""), "unit_name": r.get("portal_name"), "level": "portal"}
            if not r.get("unit_code"):
                continue
            level = r.get("level") or ("department" if name == "departments.csv" else None)
            rows.append((r["unit_code"], r.get("unit_name"), level, r.get("province_code"),
                         date.fromisoformat(r.get("valid_from") or "1900-01-01"),
                         _valid_to_exclusive(r.get("valid_to", "")), name))
    # one row per (code, valid_from): the seed may list a code twice (e.g. a department in two provinces)
    return list({(r[0], r[4]): r for r in rows}.values())


def _criteria(folder: Path) -> list[tuple]:
    frameworks = {f["framework_code"]: f for f in _read(folder / "par_frameworks.csv")}
    rows = {}
    for r in _read(folder / "par_criteria.csv"):
        fw = frameworks.get(r.get("framework_code", ""), {})
        year_from = int(fw.get("year_from") or 0)
        year_to = int(fw.get("year_to") or 9999)
        points = r.get("max_points") or None
        rows[(r.get("framework_code", ""), r["criterion_code"], year_from)] = (
            r["criterion_code"], points, year_from, year_to, r.get("framework_code", ""))
    return list(rows.values())


def _service_index_codes(folder: Path) -> list[tuple]:
    """Metric codes, then group codes not already a metric's (ONLINE_SERVICE is both)."""
    rows = {r["metric_code"]: (r["metric_code"], r.get("name_vi")) for r in _read(folder / "service_index_metrics.csv")
            if r.get("metric_code")}
    for r in _read(folder / "service_index_groups.csv"):
        if r.get("group_code"):
            rows.setdefault(r["group_code"], (r["group_code"], r.get("name_vi")))
    return list(rows.values())


def ensure_loaded(dsn: str, seeds: Path | None = None) -> dict[str, int]:
    """Load (or refresh) audit.ref_* from the seed CSVs; returns rows per reference table."""
    folder = seeds or settings().seeds
    loaders = {
        "units": ("ref_units", "unit_code, unit_name, level, province_code, valid_from, valid_to, source", _units),
        "criteria": ("ref_criteria", "criterion_code, max_points, year_from, year_to, framework_code", _criteria),
        "kpis": ("ref_kpis", "kpi_code, kpi_name",
                 lambda f: [(r["kpi_code"], r.get("kpi_name_vi")) for r in _read(f / "kpis.csv") if r.get("kpi_code")]),
        "fields": ("ref_fields", "field_code, field_name",
                   lambda f: [(r["field_code"], r.get("field_name_vi")) for r in _read(f / "fields.csv")
                              if r.get("field_code")]),
        "service_index_metrics": ("ref_service_index_metrics", "metric_code, metric_name", _service_index_codes),
    }
    counts = {}
    with psycopg.connect(dsn) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext('reform_etl.validation.refdata'))")
        for statement in LOOKUP_INDEXES:
            conn.execute(statement)
        for name, (table, columns, load) in loaders.items():
            digest = _digest([folder / f for f in SOURCES[name]])
            current = conn.execute("select sha256, rows from audit.ref_sources where name = %s", (name,)).fetchone()
            if current and current[0] == digest:
                counts[table] = current[1]
                continue
            rows = load(folder)
            conn.execute(f"truncate audit.{table}")
            with conn.cursor().copy(f"copy audit.{table} ({columns}) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute(
                "insert into audit.ref_sources (name, sha256, rows) values (%s, %s, %s) "
                "on conflict (name) do update set sha256 = excluded.sha256, rows = excluded.rows, loaded_at = now()",
                (name, digest, len(rows)),
            )
            counts[table] = len(rows)
        conn.commit()
    return counts
