"""Pipeline run records (audit.pipeline_runs) and the steps of a run as plain functions the tasks and CLI call.

Each step takes ids and paths (not objects) so that Airflow can map and retry it, and each is
idempotent: running a step again for the same run changes nothing it already did. Each takes the
warehouse DSN its entry point resolved (the CLI, a task body), never looks for one itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from psycopg.types.json import Jsonb

from reform_etl import ingest
from reform_etl.config import settings
from reform_etl.transform.decision import transform_summary
from reform_etl.warehouse import connect, redacted


def start_run(dsn: str, run_id: str, logical_date: datetime | None = None, triggered_by: str = "cli") -> None:
    """Record the run; a re-run of the same run id keeps its history and is marked running again."""
    with connect(dsn) as conn:
        conn.execute(
            "insert into audit.pipeline_runs (run_id, logical_date, triggered_by) values (%s, %s, %s) "
            "on conflict (run_id) do update set status = 'running', ended_at = null, error = null",
            (run_id, logical_date, triggered_by),
        )
        conn.commit()


def discover(landing: str | Path) -> list[str]:
    return [str(p) for p in ingest.discover(Path(landing))]


def load_file(dsn: str, path: str, run_id: str, landing: str | Path) -> dict:
    return ingest.load_file(Path(path), run_id=run_id, landing=Path(landing), dsn=dsn).as_dict()


def validate_file(dsn: str, file_id: int, run_id: str) -> dict:
    from reform_etl import validation

    return validation.validate_file(dsn, file_id, run_id)


def warn_checks(dsn: str, run_id: str) -> dict:
    """Cross-file warnings (carried over vs last month's pending, missing units...), once per run."""
    from reform_etl import validation

    return validation.warn_checks(dsn, run_id)


def files_awaiting_validation(dsn: str) -> list[int]:
    """Files loaded by a run that stopped before validating them (a crash, a kill): validate them now."""
    with connect(dsn) as conn:
        return [row[0] for row in conn.execute(
            "select file_id from audit.submission_files where status = 'loaded' order by file_id")]


def build_report(dsn: str, run_id: str) -> str:
    from reform_etl import report

    return str(report.build_report(dsn, run_id, settings().reports))


def run_summary(dsn: str, run_id: str) -> dict:
    """Files seen / loaded / rejected and rows per kind for one run, from the registry."""
    with connect(dsn) as conn:
        # A file retried within the run (its load failed, the re-run loaded it) counts once, as it ended.
        by_status = dict(
            conn.execute(
                "select status, count(*) from (select distinct on (path) status from audit.submission_files "
                "where run_id = %s order by path, file_id desc) latest group by status", (run_id,)
            ).fetchall()
        )
        rows = {
            kind: {"rows_total": total, "rows_loaded": loaded, "rows_quarantined": quarantined, "warnings": warnings}
            for kind, total, loaded, quarantined, warnings in conn.execute(
                "select kind, sum(rows_total)::int, sum(rows_loaded)::int, sum(rows_quarantined)::int, "
                "sum(warnings)::int from audit.submission_files "
                "where run_id = %s and status in ('loaded', 'accepted') group by kind order by kind",
                (run_id,),
            )
        }
        rejected = [
            {"path": path, "error_code": code, "error": error}
            for path, code, error in conn.execute(
                "select path, error_code, error from (select distinct on (path) * from audit.submission_files "
                "where run_id = %s order by path, file_id desc) latest "
                "where status in ('rejected', 'failed') order by file_id",
                (run_id,),
            )
        ]
    return {
        "run_id": run_id,
        "files_seen": sum(by_status.values()),
        "files_loaded": by_status.get("loaded", 0) + by_status.get("accepted", 0),
        "files_rejected": by_status.get("rejected", 0),
        "files_duplicate": by_status.get("duplicate", 0),
        "files_failed": by_status.get("failed", 0),
        "rows": rows,
        "rejected": rejected,
    }


def finish_run(dsn: str, run_id: str, status: str = "success", error: str | None = None,
               report_path: str | None = None) -> dict:
    summary = run_summary(dsn, run_id)
    summary["report"] = report_path
    summary["dsn"] = redacted(dsn)  # the auditor reads this table: no password in it
    summary["dbt"] = transform_summary(run_id, dsn)  # full build / refresh / skipped, and why
    with connect(dsn) as conn:
        conn.execute(
            "update audit.pipeline_runs set status = %s, ended_at = %s, error = %s, summary = %s where run_id = %s",
            (status, datetime.now(UTC), error, Jsonb(summary), run_id),
        )
        conn.commit()
    return summary
