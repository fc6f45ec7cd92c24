"""Failure recording: the on_failure_callback of tasks and DAG runs."""

from __future__ import annotations

import logging
from typing import Any

from reform_etl.orchestration.run_ids import run_id_from_context

log = logging.getLogger(__name__)


def _append_error(run_id: str, line: str, *, close: bool) -> None:
    from reform_etl.warehouse import connect

    with connect() as conn:
        conn.execute(
            "insert into audit.pipeline_runs (run_id, triggered_by, status) values (%s, 'airflow', 'running') "
            "on conflict (run_id) do nothing",
            (run_id,),
        )
        conn.execute(
            "update audit.pipeline_runs set error = concat_ws(E'\\n', error, %s::text) "
            "where run_id = %s and coalesce(position(%s::text in error), 0) = 0",
            (line, run_id, line),
        )
        if close:
            conn.execute(
                "update audit.pipeline_runs set status = 'failed', ended_at = now() "
                "where run_id = %s and status = 'running'",
                (run_id,),
            )
        conn.commit()


def record_task_failure(context: Any) -> None:
    """on_failure_callback of every task: the failure goes to audit.pipeline_runs.error and the log."""
    try:
        ti = context["ti"]
        if ti.task_id == "finish":  # finish records its own outcome
            return
        map_index = getattr(ti, "map_index", -1)
        label = ti.task_id + (f"[{map_index}]" if map_index is not None and map_index >= 0 else "")
        exc = context.get("exception")
        line = f"task {label} failed: {type(exc).__name__ if exc else 'error'}: {exc}"
        log.error("%s", line)
        _append_error(run_id_from_context(context), line[:2000], close=False)
    except Exception:  # a callback must never hide the original failure
        log.exception("could not record the task failure in audit")


def record_dag_failure(context: Any) -> None:
    """on_failure_callback of the DAG: close the audit run as failed if `finish` could not."""
    try:
        reason = context.get("reason") or "DAG run failed"
        _append_error(run_id_from_context(context), f"dag run failed: {reason}", close=True)
    except Exception:
        log.exception("could not record the DAG failure in audit")


def recorded_failures(run_id: str) -> list[str]:
    from reform_etl.warehouse import connect

    with connect() as conn:
        row = conn.execute("select error from audit.pipeline_runs where run_id = %s", (run_id,)).fetchone()
    return [line for line in (row[0] or "").splitlines() if line.startswith("task ")] if row else []
