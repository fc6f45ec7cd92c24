"""The one dbt runner (in-process) and the one environment helper.

dbt reads its connection from `dbt_project/profiles.yml`, which takes everything from the
REFORM_DB_* environment variables; `dbt_env()` derives them from a warehouse DSN so that one
DSN drives the loader, GX, dbt and Airflow alike. Cosmos runs the DAGs' dbt tasks the same way
(in-process dbtRunner, the same profile).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from reform_etl.transform import project as dbt_project

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult

log = logging.getLogger(__name__)

# What `dbt parse` connects to when no DSN is given: nothing (parsing never connects).
_PARSE_ONLY_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def dbt_env(dsn: str | None, project: Path | None = None) -> dict[str, str]:
    """REFORM_DB_* of `dsn` for profiles.yml, and where the profile is; None: whatever the process has."""
    parts = urlsplit(dsn or _PARSE_ONLY_DSN)
    env = {
        "REFORM_DB_HOST": parts.hostname or "127.0.0.1",
        "REFORM_DB_PORT": str(parts.port or 5432),
        "REFORM_DB_USER": unquote(parts.username or "postgres"),
        "REFORM_DB_PASSWORD": unquote(parts.password or ""),
        "REFORM_DB_NAME": parts.path.lstrip("/") or "postgres",
    }
    if dsn is None:  # parsing never connects; keep whatever the caller already had
        env = {k: os.environ.get(k, v) for k, v in env.items()}
    env["DBT_PROFILES_DIR"] = str(dbt_project.profiles_yml(project).parent)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "False"
    return env


def run_dbt(args: list[str], dsn: str | None = None, *, project: Path | None = None,
            check: bool = False) -> dbtRunnerResult:
    """Run a dbt command in-process against `dsn` (None: only parsing) on the project (default DBT_PROJECT_DIR).

    The REFORM_DB_* variables are set for the duration of the call (dbt reads them through
    profiles.yml) and restored afterwards, so callers in the same process are not affected.
    `check`: raise RuntimeError when the command fails (else the caller reads `.success`).
    """
    from dbt.cli.main import dbtRunner

    from reform_etl import progress

    project = project or dbt_project.project_dir()
    env = dbt_env(dsn, project)
    full = [*args]
    if "--project-dir" not in full:
        full += ["--project-dir", str(project)]
    if "--profiles-dir" not in full:
        full += ["--profiles-dir", env["DBT_PROFILES_DIR"]]
    log.info("running dbt %s", " ".join(args))
    with environment(env):
        result = dbtRunner(callbacks=[progress.dbt_callback]).invoke(full)  # models built / to build
    if check and not result.success:
        failed = [f"{r.node.name}: {r.message}" for r in (getattr(result.result, "results", None) or [])
                  if str(getattr(r.status, "value", r.status)) in ("error", "fail")]
        raise RuntimeError(f"`dbt {' '.join(args)}` failed: {result.exception or failed}")
    return result
