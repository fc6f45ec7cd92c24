"""Validation runs (audit.validation_runs): start one, finish it."""

from __future__ import annotations

import datetime as dt
import logging

import psycopg

log = logging.getLogger(__name__)


def start_run(dsn: str, run_id: str, logical_date: dt.datetime | None = None) -> None:
    import great_expectations as gx

    with psycopg.connect(dsn) as conn:
        conn.execute(
            "insert into audit.validation_runs (run_id, logical_date, gx_version) values (%s, %s, %s) "
            "on conflict (run_id) do update set logical_date = coalesce(excluded.logical_date, "
            "audit.validation_runs.logical_date)",
            (run_id, logical_date, gx.__version__),
        )
        conn.commit()


def finish_run(dsn: str, run_id: str, status: str = "success", error: str | None = None) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "update audit.validation_runs set ended_at = now(), status = %s, error = %s, files_validated = "
            "(select count(distinct file_id) from audit.validation_results where run_id = %s and file_id is not null) "
            "where run_id = %s",
            (status, error, run_id, run_id),
        )
        conn.commit()
