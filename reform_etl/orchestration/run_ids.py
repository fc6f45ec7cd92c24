"""Our audit run ids, derived from Airflow's DAG runs: one per DAG and night."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reform_etl.config import TIMEZONE


def run_id_for(dag_id: str, logical_date: datetime | None, airflow_run_id: str) -> str:
    """Our run id: the DAG and the moment it is for, so re-running a night re-uses its audit row.

    To the microsecond when the logical date has one (a run started by hand: two started in the same
    second are two runs); a scheduled night keeps its whole-second id.
    """
    if logical_date is None:
        return f"{dag_id}__{airflow_run_id}"
    import pendulum

    local = pendulum.instance(logical_date).in_timezone(TIMEZONE)
    return f"{dag_id}__{local.format('YYYY-MM-DDTHH:mm:ss' + ('.SSSSSS' if local.microsecond else '') + 'Z')}"


def run_id_from_context(context: Any) -> str:
    dag_run = context["dag_run"]
    return run_id_for(dag_run.dag_id, context.get("logical_date"), dag_run.run_id)
