"""The cross-file warning checks of a run (history suites, missing units): warn_checks."""

from __future__ import annotations

import logging

import psycopg

from reform_etl.kinds import KIND_SPECS
from reform_etl.validation import project
from reform_etl.validation import rules as R
from reform_etl.validation.gx import run_suite, store_results
from reform_etl.validation.runs import finish_run, start_run
from reform_etl.validation.verdict import analyze, validate_file

log = logging.getLogger(__name__)


def warn_checks(dsn: str, run_id: str) -> dict:
    """Cross-file and run-level warnings, once per run after every file is validated; closes the run."""
    start_run(dsn, run_id)
    context = project.context_for(dsn)
    totals: dict[str, int] = {}
    with psycopg.connect(dsn) as conn:
        # Files the loader rejected and nobody validated: record their reject rule through the GX file suite too,
        # so audit.validation_results holds one consistent list of findings for the run.
        unrecorded = [file_id for (file_id,) in conn.execute(
            "select f.file_id from audit.submission_files f where f.run_id = %s and f.status = 'rejected' "
            "and not exists (select 1 from audit.validation_results r where r.file_id = f.file_id "
            "and r.run_id = %s) order by f.file_id", (run_id, run_id))]
    for file_id in unrecorded:
        validate_file(dsn, file_id, run_id)
    with psycopg.connect(dsn) as conn:
        history_suites = {k: f"{k}_history" for k in KIND_SPECS if R.history_rules(k)}
        analyze(dsn, "audit.submission_partitions", "audit.submission_files",
                 *(f"quarantine.{k}" for k in history_suites), *(f"raw.{k}" for k in history_suites))
        conn.execute("delete from audit.validation_results where run_id = %s and (file_id is null or suite = any(%s))",
                     (run_id, list(history_suites.values())))
        # This run's files, files this run validated (a crash left them 'loaded' in an earlier run), and
        # accepted files whose own run died before its cross-file checks.
        files = conn.execute(
            "select f.file_id, f.kind from audit.submission_files f where f.status = 'accepted' "
            "and f.kind = any(%s) and (f.run_id = %s "
            "or exists (select from audit.validation_results r where r.file_id = f.file_id and r.run_id = %s) "
            "or not exists (select from audit.validation_results r where r.file_id = f.file_id "
            "and r.suite = f.kind || '_history')) order by f.file_id",
            (list(history_suites), run_id, run_id)).fetchall()
        for file_id, kind in files:
            result = run_suite(context, history_suites[kind], {"file_id": file_id}, run_id)
            for f in store_results(conn, run_id, file_id, kind, result).values():
                totals[f["rule"]] = totals.get(f["rule"], 0) + f["rows_failed"]
            # The latest verdict of each warn rule on the file, whichever run gave it.
            conn.execute(
                "update audit.submission_files set warnings = (select coalesce(sum(rows_failed), 0) from ("
                "select distinct on (suite, expectation) rows_failed from audit.validation_results "
                "where file_id = %s and severity = 'warn' order by suite, expectation, result_id desc) latest) "
                "where file_id = %s", (file_id, file_id))
        has_files = conn.execute("select exists (select 1 from audit.submission_files where run_id = %s "
                                 "and status = 'accepted')", (run_id,)).fetchone()[0]
        # Earlier runs a crash stopped before their run-level checks, whose files this run finished
        # validating: their run-level warnings are computed now, and stored under their own run.
        orphaned = [r for (r,) in conn.execute(
            "select distinct f.run_id from audit.submission_files f where f.status = 'accepted' "
            "and f.run_id <> %s and (f.file_id = any(%s) or exists (select from audit.validation_results r "
            "where r.file_id = f.file_id and r.run_id = %s)) and not exists (select from audit.validation_results r "
            "where r.run_id = f.run_id and r.file_id is null) order by 1",
            (run_id, [file_id for file_id, _ in files], run_id))]
        conn.commit()
        for target in [run_id] * has_files + orphaned:
            start_run(dsn, target)
            result = run_suite(context, "submission_run", {"run_id": target}, target)
            for f in store_results(conn, target, None, None, result).values():
                totals[f["rule"]] = totals.get(f["rule"], 0) + f["rows_failed"]
            conn.commit()
    finish_run(dsn, run_id)
    return totals
