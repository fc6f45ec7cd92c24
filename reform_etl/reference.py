"""The reference data: the seed CSVs of `seeds/` are its source; one fingerprint, one record, one loader API.

The seeds reach the warehouse two ways, each recorded in audit.reference_loads (sql/005_reference.sql)
with the fingerprint of the seed files it loaded:

* `load_seeds` (target 'dbt'): `dbt seed` into the dbt project's tables, which the models read. The
  view audit.reference_data_loads is these loads: the nightly dbt decision compares its last one.
* `ensure_lookups` (target 'lookups'): audit.ref_*, which validation reads. Validation runs before dbt
  (it decides what dbt may read), so it cannot use dbt's seed tables; it copies the same CSVs.

Each is reloaded only when the seed files' fingerprint differs from its own last load.
(`python -m reform_etl.reference_data` generates some of the seed CSVs; it is not run by the pipeline.)
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Callable
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from reform_etl.config import settings

log = logging.getLogger(__name__)

DBT, LOOKUPS = "dbt", "lookups"  # audit.reference_loads.target

# The cross-file warnings look rows up by unit and period in raw; these keep them index lookups.
LOOKUP_INDEXES = (
    "create index if not exists par_scores_key on raw.par_scores (unit_code, year, criterion_code)",
    "create index if not exists dossier_stats_unit_period on raw.dossier_stats (unit_code, period)",
)


def seeds_fingerprint(folder: Path | None = None) -> str:
    """sha256 over the seed files' names and bytes: changes exactly when a seed file changes."""
    digest = hashlib.sha256()
    folder = folder or settings().seeds
    for path in sorted(folder.rglob("*.csv")) if folder.is_dir() else []:
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _seed_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.csv"))


def _ensure_ddl(conn: psycopg.Connection) -> None:
    """audit.reference_loads, for a warehouse bootstrapped before it existed (bootstrap creates it)."""
    if conn.execute("select to_regclass('audit.reference_loads')").fetchone()[0] is None:
        conn.execute("select pg_advisory_xact_lock(hashtext('reform_etl.bootstrap'))")
        conn.execute(resources.files("reform_etl.sql").joinpath("005_reference.sql").read_text(encoding="utf-8"))


def _last_load(conn: psycopg.Connection, target: str) -> tuple | None:
    """(fingerprint, rows) of the last load of `target`."""
    _ensure_ddl(conn)
    return conn.execute(
        "select fingerprint, rows from audit.reference_loads where target = %s order by load_id desc limit 1",
        (target,),
    ).fetchone()


def _record(conn: psycopg.Connection, target: str, fingerprint: str, folder: Path, run_id: str | None = None,
            rows: dict[str, int] | None = None) -> None:
    conn.execute(
        "insert into audit.reference_loads (target, fingerprint, run_id, seeds, rows) values (%s, %s, %s, %s, %s)",
        (target, fingerprint, run_id, Jsonb(_seed_names(folder)), Jsonb(rows) if rows is not None else None),
    )


# --- dbt's seed tables ---------------------------------------------------------------------------

def last_seeds_fingerprint(dsn: str | None = None) -> str | None:
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        row = _last_load(conn, DBT)
        conn.commit()
    return row[0] if row else None


def seeds_changed(dsn: str | None = None) -> bool:
    return last_seeds_fingerprint(dsn) != seeds_fingerprint()


def record_seeds_loaded(run_id: str | None, dsn: str | None = None) -> str:
    from reform_etl.warehouse import connect

    folder = settings().seeds
    fingerprint = seeds_fingerprint(folder)
    with connect(dsn) as conn:
        _ensure_ddl(conn)
        _record(conn, DBT, fingerprint, folder, run_id)
        conn.commit()
    return fingerprint


def load_seeds(run_id: str | None = None, force: bool = False, dsn: str | None = None) -> bool:
    """`dbt seed` when the seed files differ from the last load into this warehouse; returns whether it ran."""
    from reform_etl import warehouse
    from reform_etl.transform.dbt import run_dbt  # transform re-exports this module: imported when used

    dsn = dsn or warehouse.dsn()
    if not force and not seeds_changed(dsn):
        log.info("reference data unchanged since its last load; dbt seed skipped")
        return False
    run_dbt(["seed", "--full-refresh"], dsn, check=True)
    record_seeds_loaded(run_id, dsn)
    return True


# --- audit.ref_*: validation's lookups ------------------------------------------------------------

def read_seed(path: Path) -> list[dict[str, str]]:
    """A seed CSV's rows, keys and cells stripped; no rows when the file is missing."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(handle)]


def _valid_to_exclusive(text: str) -> date | None:
    if not text or text.startswith("9999"):
        return None
    return date.fromisoformat(text) + timedelta(days=1)


def unit_rows(folder: Path) -> list[tuple]:
    """audit.ref_units rows: (code, name, level, province, valid_from, valid_to exclusive, source file)."""
    rows = []
    for name in ("units.csv", "departments.csv", "portal_units.csv"):
        for r in read_seed(folder / name):
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


def _criterion_rows(folder: Path) -> list[tuple]:
    frameworks = {f["framework_code"]: f for f in read_seed(folder / "par_frameworks.csv")}
    rows = {}
    for r in read_seed(folder / "par_criteria.csv"):
        fw = frameworks.get(r.get("framework_code", ""), {})
        year_from = int(fw.get("year_from") or 0)
        year_to = int(fw.get("year_to") or 9999)
        points = r.get("max_points") or None
        rows[(r.get("framework_code", ""), r["criterion_code"], year_from)] = (
            r["criterion_code"], points, year_from, year_to, r.get("framework_code", ""))
    return list(rows.values())


def _coded_rows(file: str, code: str, name: str) -> Callable[[Path], list[tuple]]:
    return lambda folder: [(r[code], r.get(name)) for r in read_seed(folder / file) if r.get(code)]


def _service_index_rows(folder: Path) -> list[tuple]:
    """Metric codes, then group codes not already a metric's (ONLINE_SERVICE is both)."""
    rows = {row[0]: row for row in _coded_rows("service_index_metrics.csv", "metric_code", "name_vi")(folder)}
    for row in _coded_rows("service_index_groups.csv", "group_code", "name_vi")(folder):
        rows.setdefault(row[0], row)
    return list(rows.values())


# audit.ref_* table -> (its columns, its rows from the seed folder)
LOOKUP_TABLES: dict[str, tuple[str, Callable[[Path], list[tuple]]]] = {
    "ref_units": ("unit_code, unit_name, level, province_code, valid_from, valid_to, source", unit_rows),
    "ref_criteria": ("criterion_code, max_points, year_from, year_to, framework_code", _criterion_rows),
    "ref_kpis": ("kpi_code, kpi_name", _coded_rows("kpis.csv", "kpi_code", "kpi_name_vi")),
    "ref_fields": ("field_code, field_name", _coded_rows("fields.csv", "field_code", "field_name_vi")),
    "ref_service_index_metrics": ("metric_code, metric_name", _service_index_rows),
}


def ensure_lookups(dsn: str, seeds: Path | None = None) -> dict[str, int]:
    """Load (or refresh) audit.ref_* from the seed CSVs when they changed; returns rows per reference table."""
    folder = seeds or settings().seeds
    fingerprint = seeds_fingerprint(folder)
    with psycopg.connect(dsn) as conn:
        # One loader at a time: the files of a run are validated side by side.
        conn.execute("select pg_advisory_xact_lock(hashtext('reform_etl.reference.lookups'))")
        for statement in LOOKUP_INDEXES:
            conn.execute(statement)
        last = _last_load(conn, LOOKUPS)
        if last and last[0] == fingerprint and last[1] is not None:
            conn.commit()
            return dict(last[1])
        counts = {}
        for table, (columns, rows_of) in LOOKUP_TABLES.items():
            rows = rows_of(folder)
            conn.execute(f"truncate audit.{table}")
            with conn.cursor().copy(f"copy audit.{table} ({columns}) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
            counts[table] = len(rows)
        _record(conn, LOOKUPS, fingerprint, folder, rows=counts)
        conn.commit()
    return counts
