"""Backfill: rebuild the facts of a period range with dbt and record it."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from reform_etl.reference import load_seeds
from reform_etl.transform.dbt import run_dbt
from reform_etl.transform.decision import close_transform, record_transform, transform_ddl, transform_state
from reform_etl.transform.manifest import ensure_manifest

log = logging.getLogger(__name__)


def _month(value: str) -> str:
    value = value.strip()
    if len(value) == 4 and value.isdigit():
        return f"{value}-01"
    datetime.strptime(value, "%Y-%m")
    return value


def backfill(period_from: str, period_to: str, dsn: str | None = None) -> dict:
    """Rebuild the marts of periods [from, to] from raw: `dbt build` with the period window as vars.

    Models that know the window (vars `backfill_from` / `backfill_to`, months YYYY-MM) rebuild just
    those periods; tables that are rebuilt whole anyway ignore it. Seeds load first if they changed.
    The backfill is recorded in audit.pipeline_runs like any run.
    """
    from reform_etl import runs, warehouse

    start, end = _month(period_from), _month(period_to if len(period_to.strip()) != 4 else f"{period_to}-12")
    if start > end:
        raise ValueError(f"backfill window is empty: {start} > {end}")
    dsn = dsn or warehouse.dsn()
    warehouse.bootstrap(dsn)
    run_id = f"backfill__{start}__{end}__{datetime.now(UTC):%Y%m%dT%H%M%S%f}"  # two in one second: two ids
    runs.start_run(dsn, run_id, None, "backfill", owner=runs.this_process())
    started = time.monotonic()
    try:
        ensure_manifest()
        load_seeds(run_id, dsn=dsn)
        _record_backfill(run_id, start, end, dsn)
        dbt_vars = json.dumps({"backfill_from": start, "backfill_to": end})
        run_dbt(["build", "--exclude", "resource_type:seed", "--vars", dbt_vars], dsn, check=True)
    except Exception as exc:
        close_transform(run_id, "failed", ("backfill",), dsn=dsn)
        runs.finish_run(dsn, run_id, "failed", str(exc)[-4000:], _report(dsn, run_id))
        raise
    close_transform(run_id, "success", ("backfill",), dsn=dsn)
    # the same run report as a night's (reports/<run>/index.html), which says how the backfill ended
    summary = runs.finish_run(dsn, run_id, "success", report_path=_report(dsn, run_id))
    summary.update({"period_from": start, "period_to": end, "seconds": round(time.monotonic() - started, 1),
                    "marts": mart_rows(dsn)})
    return summary


def _report(dsn: str, run_id: str) -> str | None:
    from reform_etl import runs

    try:
        return runs.build_report(dsn, run_id)
    except Exception:  # the backfill's own outcome stands without its page
        log.warning("could not write the report of %s", run_id, exc_info=True)
        return None


def mart_rows(dsn: str) -> dict[str, int]:
    """Rows in each table of the marts schema now (what a backfill leaves)."""
    from psycopg import sql

    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        names = [name for (name,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "and table_type = 'BASE TABLE' order by table_name")]
        return {name: conn.execute(sql.SQL("select count(*) from marts.{}").format(sql.Identifier(name))).fetchone()[0]
                for name in names}


def _record_backfill(run_id: str, start: str, end: str, dsn: str) -> None:
    """A backfill rebuilds every model (a window of the facts): a failed or interrupted one makes the
    next night rebuild in full; a successful one is not a full build (facts outside the window keep
    their rows), but it did rebuild the date-dependent models today."""
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        transform_ddl(conn)
        record_transform(conn, run_id, "backfill", f"backfill of {start}..{end}", transform_state(conn), "running")
        conn.commit()
