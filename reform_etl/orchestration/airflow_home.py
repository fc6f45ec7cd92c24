"""The local Airflow home: its environment, its folders and its metadata database."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from reform_etl.config import settings

log = logging.getLogger(__name__)


def repo_root() -> Path:
    return settings().home


def dags_folder() -> Path:
    return Path(os.environ.get("REFORM_DAGS_FOLDER") or repo_root() / "dags").resolve()


def airflow_bin() -> str:
    beside = Path(sys.executable).parent / "airflow"
    return str(beside) if beside.exists() else "airflow"


def airflow_env(home: Path | None = None) -> dict[str, str]:
    """The environment an in-process (laptop) Airflow runs with; values already set win, except the home."""
    home = (home or settings().airflow_home).resolve()
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
    }
    defaults = {
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        # In-process runs print every task's log to the terminal at INFO; set INFO to see them.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # Cosmos writes its partial-parse / manifest caches here rather than in /tmp.
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos_cache"),
        "AIRFLOW__COSMOS__ENABLE_CACHE": "True",
        "AIRFLOW__COSMOS__PROPAGATE_LOGS": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",  # no phoning home from a government warehouse
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "NO_PROXY": "*",  # macOS: forking after proxy lookup crashes
    }
    for key, value in defaults.items():
        env[key] = os.environ.get(key, value)
    return env


def prepare_airflow(home: Path | None = None) -> Path:
    """Point this process at the local Airflow home and migrate its metadata DB when needed.

    Must run before `airflow` is imported in this process (Airflow reads its config on import).
    """
    current = os.environ.get("AIRFLOW_HOME")
    if "airflow.configuration" in sys.modules and current:
        # Airflow read its configuration on import: this process keeps the home it started with.
        if home is not None and Path(current).resolve() != home.resolve():
            log.warning("Airflow already configured with AIRFLOW_HOME=%s; keeping it", current)
        home = Path(current)
    env = airflow_env(home)
    os.environ.update(env)
    path = Path(env["AIRFLOW_HOME"])
    path.mkdir(parents=True, exist_ok=True)
    migrate_if_needed(path, env)
    return path


def migrate_if_needed(home: Path, env: dict[str, str] | None = None) -> bool:
    """`airflow db migrate` once per (Airflow version, metadata DB); returns whether it ran."""
    from importlib.metadata import version

    env = env or airflow_env(home)
    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    stamp = f"{version('apache-airflow-core')} {conn}"
    marker = home / ".migrated"
    sqlite_file = Path(conn.removeprefix("sqlite:///")) if conn.startswith("sqlite:///") else None
    if marker.exists() and marker.read_text() == stamp and (sqlite_file is None or sqlite_file.exists()):
        return False
    started = time.monotonic()
    proc = subprocess.run(
        [airflow_bin(), "db", "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    marker.write_text(stamp)
    log.info("airflow db migrate took %.1f s", time.monotonic() - started)
    return True
