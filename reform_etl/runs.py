"""Pipeline run records (audit.pipeline_runs) and the steps of a run as plain functions the tasks and CLI call.

Each step takes ids and paths (not objects) so that Airflow can map and retry it, and each is
idempotent: running a step again for the same run changes nothing it already did. Each takes the
warehouse DSN its entry point resolved (the CLI, a task body), never looks for one itself.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from psycopg.types.json import Jsonb

from reform_etl import ingest, progress
from reform_etl.config import settings
from reform_etl.transform.decision import transform_summary
from reform_etl.warehouse import connect, redacted

OWNER_ENV = "REFORM_RUN_OWNER"  # host:pid of the process that drives a run in-process (set by the local runner)
STALE_AFTER_HOURS_ENV = "REFORM_STALE_RUN_HOURS"  # a run silent this long is abandoned (default 6)


def this_process() -> str:
    """host:pid of this process: the owner of a run it drives from start to finish."""
    return f"{socket.gethostname()}:{os.getpid()}"


def start_run(dsn: str, run_id: str, logical_date: datetime | None = None, triggered_by: str = "cli",
              owner: str | None = None) -> list[str]:
    """Record the run; a re-run of the same run id keeps its history and is marked running again.

    `owner` (host:pid, default $REFORM_RUN_OWNER) names the process that drives the whole run, when one
    does (the CLI, the in-process runner); a run spread over Airflow's task processes has none.
    Runs left `running` by a process that died are marked abandoned first (mark_abandoned); returns them.
    """
    owner = owner or os.environ.get(OWNER_ENV) or None
    abandoned = mark_abandoned(dsn, except_run=run_id)
    with connect(dsn) as conn:
        conn.execute(
            "insert into audit.pipeline_runs (run_id, logical_date, triggered_by, owner, heartbeat_at) "
            "values (%s, %s, %s, %s, now()) "
            "on conflict (run_id) do update set status = 'running', ended_at = null, error = null, "
            "owner = excluded.owner, heartbeat_at = now()",
            (run_id, logical_date, triggered_by, owner),
        )
        conn.commit()
    return abandoned


def _alive(owner: str) -> bool | None:
    """Whether the owner process still runs: None when it cannot be told (another host, no owner)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_abandoned(dsn: str, except_run: str | None = None) -> list[str]:
    """Close as `abandoned` the runs still `running` that no process drives any more, with when and why:
    their owner process on this host is gone, or (no owner to ask) no step of theirs has been heard of
    for REFORM_STALE_RUN_HOURS. Their validation runs are closed the same way. Returns their run ids."""
    stale_hours = float(os.environ.get(STALE_AFTER_HOURS_ENV) or 6)
    with connect(dsn) as conn:
        running = conn.execute(
            "select run_id, owner, coalesce(heartbeat_at, started_at), "
            "coalesce(heartbeat_at, started_at) < now() - make_interval(secs => %s) "
            "from audit.pipeline_runs where status = 'running' and run_id is distinct from %s",
            (stale_hours * 3600, except_run)).fetchall()
        reasons: dict[str, str] = {}
        for run_id, owner, last_seen, stale in running:
            alive = _alive(owner) if owner else None
            seen = f"{last_seen:%Y-%m-%d %H:%M:%S %Z}"
            if alive is False:
                reasons[run_id] = (f"tiến trình {owner} của lượt chạy không còn (bị dừng) / the run's process {owner} "
                                   f"is gone (killed or crashed); last step at {seen}")
            elif alive is None and stale:
                reasons[run_id] = (f"không có hoạt động từ {seen} (quá {stale_hours:g} giờ) / "
                                   f"no step since {seen} (more than {stale_hours:g} h)")
        for run_id, why in reasons.items():
            line = f"abandoned: {why}"
            conn.execute(
                "update audit.pipeline_runs set status = 'abandoned', ended_at = now(), "
                "error = concat_ws(E'\\n', error, %s::text) where run_id = %s and status = 'running'",
                (line, run_id))
            conn.execute(
                "update audit.validation_runs set status = 'abandoned', ended_at = now(), "
                "error = concat_ws(E'\\n', error, %s::text) where run_id = %s and ended_at is null",
                (line, run_id))
        conn.commit()
    return sorted(reasons)


def heartbeat(dsn: str, run_id: str | None) -> None:
    """A step of the run is under way: it is not abandoned (mark_abandoned)."""
    if not run_id:
        return
    with connect(dsn) as conn:
        conn.execute("update audit.pipeline_runs set heartbeat_at = now() where run_id = %s", (run_id,))
        conn.commit()


def discover(dsn: str, landing: str | Path, run_id: str | None = None) -> list[str]:
    """The files to load now; those still being written are noted on the run (its summary and report list
    them) and left for a later run."""
    found = ingest.discover_files(Path(landing), dsn=dsn)
    if run_id:
        heartbeat(dsn, run_id)
        _note_waiting(dsn, run_id, [str(p) for p in found.waiting])
    progress.total("files", len(found.fresh))
    return [str(p) for p in found.fresh]


def _label(path: str | Path) -> str:
    """`kind/file name`: a file as the progress shows it."""
    return "/".join(Path(path).parts[-2:])


def load_file(dsn: str, path: str, run_id: str, landing: str | Path) -> dict:
    heartbeat(dsn, run_id)
    progress.current("files", _label(path))
    result = ingest.load_file(Path(path), run_id=run_id, landing=Path(landing), dsn=dsn)
    if result.status == "waiting":  # it changed while it was read: listed with the files still being written
        _note_waiting(dsn, run_id, [result.path])
    progress.step("files", _label(path))
    if result.status == "loaded":  # it goes on to validation
        progress.total("validated", 1, add=True)
    return result.as_dict()


def _note_waiting(dsn: str, run_id: str, paths: list[str]) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "update audit.pipeline_runs set summary = coalesce(summary, '{}'::jsonb) || jsonb_build_object("
            "'waiting', (select coalesce(jsonb_agg(distinct p), '[]'::jsonb) from (select jsonb_array_elements_text("
            "coalesce(summary -> 'waiting', '[]'::jsonb)) union select unnest(%s::text[])) w (p))) where run_id = %s",
            (paths, run_id))
        conn.commit()


def validate_file(dsn: str, file_id: int, run_id: str) -> dict:
    from reform_etl import validation

    heartbeat(dsn, run_id)
    progress.current("validated", f"file #{file_id}")
    result = validation.validate_file(dsn, file_id, run_id)
    progress.step("validated")
    return result


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

    heartbeat(dsn, run_id)
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
        # "file #N replaces file #M for unit U, period P: 12 rows → 1", as the warning stored them
        replacements = [detail for (detail,) in conn.execute(
            "select s ->> 'detail' from audit.validation_results r, jsonb_array_elements(r.sample_failing_rows) s "
            "where r.run_id = %s and r.expectation = 'correction_fewer_rows' and not r.success "
            "order by r.file_id, r.result_id", (run_id,))]
    return {
        "run_id": run_id,
        "files_seen": sum(by_status.values()),
        "files_loaded": by_status.get("loaded", 0) + by_status.get("accepted", 0),
        "files_rejected": by_status.get("rejected", 0),
        "files_duplicate": by_status.get("duplicate", 0),
        "files_failed": by_status.get("failed", 0),
        "rows": rows,
        "rejected": rejected,
        "replacements": replacements,
    }


def finish_run(dsn: str, run_id: str, status: str = "success", error: str | None = None,
               report_path: str | None = None) -> dict:
    summary = run_summary(dsn, run_id)
    with connect(dsn) as conn:  # what discover noted: files still being written, left for a later run
        noted = conn.execute("select summary -> 'waiting' from audit.pipeline_runs where run_id = %s",
                             (run_id,)).fetchone()
    summary["waiting"] = (noted[0] if noted else None) or []
    summary["files_waiting"] = len(summary["waiting"])
    summary["report"] = report_path
    summary["dsn"] = redacted(dsn)  # the auditor reads this table: no password in it
    summary["dbt"] = transform_summary(run_id, dsn)  # full build / refresh / skipped, and why
    with connect(dsn) as conn:
        conn.execute(
            "update audit.pipeline_runs set status = %s, ended_at = %s, error = %s, summary = %s where run_id = %s",
            (status, datetime.now(UTC), error, Jsonb(summary), run_id),
        )
        conn.commit()
    if report_path and Path(report_path).is_file():  # the page says how the run ended, not how it was going
        from reform_etl import report

        report.rewrite_page(dsn, run_id, Path(report_path))
    _refresh_run_index(dsn)
    return summary


def _refresh_run_index(dsn: str) -> None:
    """reports/index.html with this run's outcome (the run's report was written before it ended)."""
    from reform_etl import report

    try:
        report.write_index(dsn, settings().reports)
    except Exception:  # the list of runs is a convenience: the run's own record stands
        logging.getLogger(__name__).warning("could not refresh the index of runs", exc_info=True)
