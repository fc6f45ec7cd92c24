"""The dbt runners (in-process and subprocess) and the one environment helper they share.

dbt reads its connection from `dbt_project/profiles.yml`, which takes everything from the
REFORM_DB_* environment variables; `dbt_env()` derives them from a warehouse DSN so that one
DSN drives the loader, GX, dbt and Airflow alike.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from reform_etl.config import settings
from reform_etl.transform import project as dbt_project

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult

log = logging.getLogger(__name__)


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
    with environment(env):
        full = [*args]
        if "--project-dir" not in full:
            full += ["--project-dir", project]
        if "--profiles-dir" not in full:
            full += ["--profiles-dir", env["DBT_PROFILES_DIR"]]
        return dbtRunner().invoke(full)


def dbt_environment(dsn: str | None = None) -> dict[str, str]:
    """Environment for a dbt process: the REFORM_DB_* of `dsn` (or placeholders when only parsing)."""
    env = dbt_env(dsn or "postgresql://postgres@127.0.0.1:5432/postgres")
    if dsn is None:  # parsing never connects; keep whatever the caller already had
        env = {k: os.environ.get(k, v) for k, v in env.items()}
    env["DBT_PROFILES_DIR"] = str(settings().dbt_project)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    return {**os.environ, **env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}


def run_dbt_cli(args: list[str], dsn: str | None = None, timeout: float = 1800,
                project: Path | None = None) -> subprocess.CompletedProcess:
    """Run the dbt executable in a subprocess on the project; raises RuntimeError when it fails."""
    project = project or dbt_project.project_dir()
    profiles = dbt_project.profiles_yml(project).parent
    cmd = [dbt_project.dbt_executable(), *args, "--project-dir", str(project), "--profiles-dir", str(profiles)]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=dbt_environment(dsn), capture_output=True, text=True, timeout=timeout, cwd=project)
    if proc.returncode != 0:
        raise RuntimeError(f"`dbt {' '.join(args)}` failed ({proc.returncode}):\n{proc.stdout[-4000:]}{proc.stderr}")
    return proc
