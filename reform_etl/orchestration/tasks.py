"""The task bodies the DAG files call (the DAG files stay thin).

A task body is an entry point: it takes the warehouse DSN from WAREHOUSE_DSN (the worker's
environment; `reform-etl run` exports the one it resolved) and passes it on explicitly.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reform_etl import warehouse
from reform_etl.config import settings
from reform_etl.jsonable import jsonable
from reform_etl.orchestration.callbacks import recorded_failures
from reform_etl.orchestration.run_ids import run_id_from_context
from reform_etl.transform.decision import (
    DBT_GROUP_ID,
    DBT_REFRESH_TASK_ID,
    DBT_WORDS,
    build_selected,
    close_transform,
    decide_dbt,
    transform_ddl,
)

log = logging.getLogger(__name__)


# psycopg errors that mean "the connection went away", worth a retry with backoff.
TRANSIENT_SQLSTATE_CLASSES = ("08", "57P", "53")
# A warehouse that has refused every connection this long is down, not restarting: the tasks still to
# run fail at once (the night fails within a minute, saying where it looked), and the next night recovers.
WAREHOUSE_DOWN_BUDGET_SECONDS = 40


def is_transient(exc: BaseException) -> bool:
    """Connection lost / server shutting down / too many connections: retry with backoff (a warehouse
    unreachable for longer than WAREHOUSE_DOWN_BUDGET_SECONDS is not)."""
    import psycopg

    from reform_etl.warehouse import WarehouseUnreachable

    if isinstance(exc, WarehouseUnreachable):
        return exc.down_for < WAREHOUSE_DOWN_BUDGET_SECONDS
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | ConnectionError | TimeoutError):
        sqlstate = getattr(exc, "sqlstate", None)
        return sqlstate is None or sqlstate.startswith(TRANSIENT_SQLSTATE_CLASSES)
    return False


def transient_only(fn: Callable) -> Callable:
    """Let transient errors through (Airflow retries them with backoff); fail anything else for good."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if is_transient(exc):
                raise
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


def resolve_landing(conf_landing: str | None) -> str:
    return str(Path(conf_landing).resolve()) if conf_landing else str(settings().landing)


def task_start(context: Any) -> dict:
    from reform_etl import runs

    run_id = run_id_from_context(context)
    dag_run = context["dag_run"]
    conf = getattr(dag_run, "conf", None) or {}
    landing = resolve_landing(conf.get("landing") or context["params"].get("landing"))
    run_type = getattr(dag_run, "run_type", None) or "airflow"
    # The scheduler's own runs say `scheduled` (the enum's value, not its repr), a UI trigger `manual`...
    triggered_by = conf.get("triggered_by") or str(getattr(run_type, "value", run_type))
    runs.start_run(warehouse.dsn(), run_id, context.get("logical_date"), triggered_by)
    log.info("run %s: landing folder %s", run_id, landing)
    return {"run_id": run_id, "landing": landing}


@transient_only
def task_discover(run: dict) -> list[str]:
    from reform_etl import runs

    paths = runs.discover(warehouse.dsn(), run["landing"], run["run_id"])
    log.info("%d new file(s) in %s", len(paths), run["landing"])
    return paths


def file_label(path: str) -> str:
    """`kind/file name`: how a mapped load task is labelled in the UI."""
    parts = Path(path).parts
    return "/".join(parts[-2:])


@transient_only
def task_load(run: dict, path: str) -> dict:
    from reform_etl import runs

    result = runs.load_file(warehouse.dsn(), path, run["run_id"], run["landing"])
    log.info("%s: %s (%s of %s rows)", path, result.get("status"), result.get("rows_loaded"), result.get("rows_total"))
    return jsonable(result)


@transient_only
def task_validate(run: dict, loaded: dict) -> dict:
    from reform_etl import runs

    if loaded.get("status") != "loaded" or loaded.get("file_id") is None:
        return {"file_id": loaded.get("file_id"), "status": loaded.get("status"), "skipped": True}
    result = runs.validate_file(warehouse.dsn(), int(loaded["file_id"]), run["run_id"])
    log.info("file %s: %s, %s row(s) quarantined", loaded["file_id"], result.get("status"),
             result.get("rows_quarantined"))
    return jsonable(result)


@transient_only
def task_cross_file_checks(run: dict) -> dict:
    """The run's cross-file and run-level warning checks (validation.warn_checks); rule -> rows failed."""
    from reform_etl import runs

    totals = runs.warn_checks(warehouse.dsn(), run["run_id"])
    log.info("cross-file checks: %s", ", ".join(f"{rule} {n}" for rule, n in totals.items()) or "nothing to check")
    return jsonable(totals)


@transient_only
def task_decide_dbt(run: dict, seeds_reloaded: bool | None) -> str | None:
    """The branch between the gates and dbt: the task id(s) to follow (None: skip every dbt task)."""
    decision = decide_dbt(run["run_id"], bool(seeds_reloaded), dsn=warehouse.dsn())
    print(f"dbt {decision.mode}: {decision.reason}")
    # The group id: Airflow's branch expands a task group into its root tasks.
    return {"full": DBT_GROUP_ID, "partial": DBT_REFRESH_TASK_ID, "refresh": DBT_REFRESH_TASK_ID,
            "skip": None}[decision.mode]


@transient_only
def task_marts_built(run: dict) -> int:
    """After every dbt task succeeded: the full build is what the next night compares against.

    The run's last full decision, even if `finish` already marked it failed: an operator who clears
    the failed dbt tasks of a night in the UI and gets them to succeed has built the marts.
    """
    with warehouse.connect(warehouse.dsn()) as conn:
        transform_ddl(conn)
        closed = conn.execute(
            "update audit.transform_runs set status = 'success', ended_at = now() where transform_id = "
            "(select max(transform_id) from audit.transform_runs where run_id = %s and mode = 'full')",
            (run["run_id"],),
        ).rowcount
        conn.commit()
    return closed


@transient_only
def task_build_selected(run: dict) -> str:
    """A partial build or a refresh: `dbt build --select` of the run's decision, in this one task."""
    return build_selected(run["run_id"], dsn=warehouse.dsn())


@transient_only
def task_report(run: dict) -> str:
    """The run's report. Every dbt task is done by now: a full build `marts_built` did not close failed."""
    from reform_etl import runs

    close_transform(run["run_id"], "failed", ("full",), dsn=warehouse.dsn())
    return runs.build_report(warehouse.dsn(), run["run_id"])


def task_finish(run: dict | None, report_path: str | None, context: Any) -> dict:
    """Close the run in audit, log a one-paragraph summary; fail the DAG run if any task failed."""
    from reform_etl import runs

    run_id = run["run_id"] if run else run_id_from_context(context)
    dsn = warehouse.dsn()
    # A full build whose tasks did not all succeed is not trusted by the next night.
    close_transform(run_id, "failed", dsn=dsn)
    failures = recorded_failures(run_id)
    status = "failed" if failures else "success"
    summary = runs.finish_run(dsn, run_id, status, "\n".join(failures) or None, report_path)
    paragraph = summary_paragraph(summary, status)
    log.info("%s", paragraph)
    print(paragraph)
    if failures:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"run {run_id} finished with {len(failures)} failed task(s): {failures[0]}")
    return jsonable(summary)


def summary_paragraph(summary: dict, status: str) -> str:
    rows = summary.get("rows") or {}
    rows_text = ", ".join(f"{kind} {v.get('rows_loaded') or 0:,}" for kind, v in rows.items()) or "none"
    return (
        f"Run {summary.get('run_id')} {status}: {summary.get('files_seen', 0)} file(s) seen, "
        f"{summary.get('files_loaded', 0)} loaded, {summary.get('files_rejected', 0)} rejected, "
        f"{summary.get('files_duplicate', 0)} duplicate, {summary.get('files_failed', 0)} failed, "
        f"{summary.get('files_waiting', 0)} still being written (left for a later run); "
        f"rows loaded per kind: {rows_text}. {dbt_text(summary.get('dbt'))} "
        f"Report: {summary.get('report') or 'not built'}. Warehouse: {summary.get('dsn')}."
    )


def dbt_text(dbt: dict | None) -> str:
    """One sentence: what dbt did in a run and why (from audit.transform_runs)."""
    if not dbt:
        return "dbt: not run."
    words = DBT_WORDS.get(dbt.get("mode"), (None, dbt.get("mode")))[1]
    status = "" if dbt.get("mode") == "skip" else f" ({dbt.get('status')})"
    return f"dbt: {words}{status}, because {dbt.get('reason')}."
