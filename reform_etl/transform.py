"""dbt wiring shared by the CLI, the tests and the Cosmos task group.

dbt reads its connection from `dbt_project/profiles.yml`, which takes everything from the
REFORM_DB_* environment variables; `dbt_env()` derives them from a warehouse DSN so that one
DSN drives the loader, GX, dbt and Airflow alike.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from reform_etl.config import settings

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult


def dbt_env(dsn: str) -> dict[str, str]:
    parts = urlsplit(dsn)
    return {
        "REFORM_DB_HOST": parts.hostname or "127.0.0.1",
        "REFORM_DB_PORT": str(parts.port or 5432),
        "REFORM_DB_USER": unquote(parts.username or "postgres"),
        "REFORM_DB_PASSWORD": unquote(parts.password or ""),
        "REFORM_DB_NAME": parts.path.lstrip("/") or "postgres",
        "DBT_PROFILES_DIR": str(settings().dbt_project),
    }


def run_dbt(args: list[str], dsn: str) -> dbtRunnerResult:
    """Run a dbt command in-process against `dsn` (project dir = settings().dbt_project).

    The REFORM_DB_* variables are set for the duration of the call (dbt reads them through
    profiles.yml) and restored afterwards, so callers in the same process are not affected.
    """
    from dbt.cli.main import dbtRunner

    project = str(settings().dbt_project)
    env = dbt_env(dsn)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        full = [*args]
        if "--project-dir" not in full:
            full += ["--project-dir", project]
        if "--profiles-dir" not in full:
            full += ["--profiles-dir", env["DBT_PROFILES_DIR"]]
        return dbtRunner().invoke(full)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
