"""What many test modules do the same way: open a pipeline run, build dbt into a folder of the test's own."""

from __future__ import annotations

from pathlib import Path

import psycopg

from reform_etl.transform import run_dbt


def open_run(dsn: str, run_id: str) -> None:
    """An audit.pipeline_runs row for `run_id`, as the run's start task writes it (files and results refer to it)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into audit.pipeline_runs (run_id) values (%s)", (run_id,))
        conn.commit()


def dbt_flags(target: Path) -> list[str]:
    """dbt's target and log folders under `target`: a test never writes into the project's own."""
    return ["--target-path", str(target), "--log-path", str(target / "logs")]


def dbt_build(dsn: str, target: Path, *args: str):
    """`dbt build <args>` into `target`; fails the test naming every node that did not pass."""
    result = run_dbt(["build", *args, *dbt_flags(target)], dsn)
    failures = [(r.node.name, str(r.status), r.message) for r in (result.result or [])
                if str(r.status) not in ("success", "pass")]
    assert result.success, failures
    return result
