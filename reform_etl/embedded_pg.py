"""The embedded warehouse: a real PostgreSQL 16 from the `pgserver` wheel, served on TCP.

`pgserver.get_server()` only listens on a Unix socket, and both Cosmos' asset URIs and GX's
SQLAlchemy URLs need a host, so we drive the wheel's own `initdb` / `pg_ctl` binaries
ourselves and listen on 127.0.0.1 with a free port (plus a socket in the data folder).
The server outlives the command that started it, so `reform-etl dsn` and BI tools can connect
after `make run`; `reform-etl warehouse stop` stops it.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import fasteners

with warnings.catch_warnings():
    # pgserver computes a runtime folder at import and warns when XDG_RUNTIME_DIR is unset; we never use it.
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH

SUPERUSER = "postgres"
_SYSTEM_USER = "pgserver"  # postgres refuses to run as root
# The server runs on this machine: a parallel scan takes a worker per core beside the leader's, which
# scans too. Postgres' default (2) put three processes on two cores: each scan of a large file 10 to 25 %
# slower than with one worker (scripts/bench.py, 1M records).
PARALLEL_WORKERS = max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    host: str
    port: int

    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(_SYSTEM_USER)
    return _SYSTEM_USER


def _prepare_permissions(pgdata: Path, user: str) -> None:
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    entry = pwd.getpwnam(user)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _pg(binary: str, *args: str, user: str | None, timeout: float = 60) -> None:
    cmd = [str(POSTGRES_BIN_PATH / binary), *args]
    proc = subprocess.run(cmd, user=user, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running(pgdata: Path) -> EmbeddedServer | None:
    """Read postmaster.pid (pid, data dir, start time, port, socket dir, listen addr, ...)."""
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, port, host = int(lines[0]), int(lines[3]), lines[5].strip() or "127.0.0.1"
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    server = EmbeddedServer(pgdata, host, port)
    return server if _accepts(server) else None


def _accepts(server: EmbeddedServer) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=1):
            return True
    except OSError:
        return False


def ensure_running(pgdata: Path) -> EmbeddedServer:
    """Start the embedded server for `pgdata` unless it already runs; idempotent and process-safe."""
    pgdata = pgdata.resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(pgdata.parent / f".{pgdata.name}.lock")):
        server = _running(pgdata)
        if server:
            return server
        user = _run_as()
        if user:
            _prepare_permissions(pgdata, user)
        if not (pgdata / "PG_VERSION").exists():
            _pg("initdb", "-D", str(pgdata), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                "--locale=C.UTF-8", user=user, timeout=120)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)  # stale after a crash or kill -9
        last_error: Exception | None = None
        for _ in range(3):  # the free port can be taken between probe and bind
            port = _free_port()
            options = (f"-h 127.0.0.1 -p {port} -k {pgdata} -c max_connections=200 -c shared_buffers=256MB "
                       f"-c max_parallel_workers_per_gather={PARALLEL_WORKERS}")
            try:
                _pg("pg_ctl", "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-t", "60",
                    "-o", options, "start", user=user, timeout=90)
            except RuntimeError as exc:
                last_error = exc
                continue
            for _ in range(100):
                server = _running(pgdata)
                if server:
                    return server
                time.sleep(0.1)
        raise RuntimeError(f"embedded PostgreSQL did not start in {pgdata}: {last_error}; see server.log")


def stop(pgdata: Path, mode: str = "fast") -> bool:
    """Stop the server if it runs; returns whether it was running."""
    pgdata = pgdata.resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    _pg("pg_ctl", "-D", str(pgdata), "-m", mode, "-w", "stop", user=_run_as(), timeout=90)
    return True
