"""Airflow 3 standalone on one machine: nights that run themselves, without Docker.

`reform-etl airflow` starts `airflow standalone` (API server and UI, scheduler, DAG processor,
triggerer, LocalExecutor) against the same warehouse as every other command. Its metadata lives
in a database of its own on the warehouse's server (`<warehouse database>_airflow`), not in
SQLite; its home is `<AIRFLOW_HOME>/standalone`, apart from the in-process runs' home. The
DAGs are unpaused as soon as the API server answers. The admin password and the API's JWT
secret are generated once and kept in that home, readable by the owner only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

from reform_etl.config import settings
from reform_etl.orchestration.airflow_home import airflow_env
from reform_etl.transform.dbt import dbt_env
from reform_etl.transform.manifest import ensure_manifest

ADMIN_USER = "admin"
DEFAULT_PORT = 8080
PORT_ENV = "REFORM_AIRFLOW_PORT"


@dataclass(frozen=True)
class Standalone:
    home: Path
    url: str
    admin_user: str
    admin_password: str
    metadata_database: str
    env: dict[str, str]


def _secret(path: Path, make) -> str:
    """A value generated once and kept in `path` (mode 0600)."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value


def metadata_url(dsn: str, database: str) -> str:
    """The SQLAlchemy URL of the metadata database on the warehouse's server."""
    parts = urlsplit(dsn)
    user = quote(unquote(parts.username or "postgres"), safe="")
    password = f":{quote(unquote(parts.password), safe='')}" if parts.password else ""
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 5432
    return f"postgresql+psycopg2://{user}{password}@{host}:{port}/{database}"


def ensure_metadata_database(dsn: str) -> str:
    """Create `<warehouse database>_airflow` beside the warehouse if missing; return its name."""
    parts = urlsplit(dsn)
    database = f"{(parts.path.lstrip('/') or 'postgres')}_airflow"
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    return database


def prepare(dsn: str, home: Path | None = None, port: int | None = None) -> Standalone:
    """The environment `airflow standalone` runs with, its metadata database created and migrated."""
    home = (home or settings().airflow_home / "standalone").resolve()
    home.mkdir(parents=True, exist_ok=True)
    port = port or int(os.environ.get(PORT_ENV) or DEFAULT_PORT)
    database = ensure_metadata_database(dsn)
    password = _secret(home / "admin_password", lambda: secrets.token_urlsafe(12))
    passwords_file = home / "simple_auth_manager_passwords.json"
    passwords_file.write_text(json.dumps({ADMIN_USER: password}), encoding="utf-8")
    passwords_file.chmod(0o600)
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(airflow_env(home))
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(dsn, database),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Unpaused by `serve` once the API server answers: a task handed over before that fails to start.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": url,
        # The task and triggerer log servers next to the API port, so that two homes never collide.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port + 1),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(port + 2),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        # One machine runs the API server beside dbt and COPY: a busy night must not time a task out.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": os.environ.get("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "60"),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home / "jwt_secret", lambda: secrets.token_urlsafe(32)),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
        **dbt_env(dsn),
        "WAREHOUSE_DSN": dsn,
        # dbt (Cosmos) and airflow itself are found beside this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    ensure_manifest()  # the manifest the DAG files render the dbt group from, ready before their first parse
    return Standalone(home, url, ADMIN_USER, password, database, env)


def airflow_command() -> list[str]:
    beside = Path(sys.executable).parent / "airflow"
    return [str(beside) if beside.exists() else (shutil.which("airflow") or "airflow"), "standalone"]


def _airflow(app: Standalone, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([airflow_command()[0], *args], env=app.env, capture_output=True, text=True, check=False)


def _set_paused(app: Standalone, paused: bool) -> bool:
    """Pause or unpause every reform DAG; False while the DAG processor has not stored them yet."""
    done = _airflow(app, "dags", "pause" if paused else "unpause", "--treat-dag-id-as-regex", "-y", "^reform_")
    return done.returncode == 0 and "reform_nightly" in done.stdout


def _api_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def serve(app: Standalone, ready_timeout: float = 900, on_ready=None) -> int:
    """Run `airflow standalone` until it exits; unpause the DAGs once its API server answers."""
    _set_paused(app, True)  # a restart: nothing is handed over before the API server is back
    process = subprocess.Popen(airflow_command(), env=app.env)
    try:
        deadline = time.monotonic() + ready_timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _api_ready(app.url) and _set_paused(app, False):
                if on_ready:
                    on_ready()
                break
            time.sleep(5)
        return process.wait()
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
