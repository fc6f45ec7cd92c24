"""Warehouse access: which Postgres, how to connect, and the idempotent bootstrap."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from reform_etl import credentials, embedded_pg
from reform_etl.config import Settings, settings
from reform_etl.kinds import KIND_SPECS
from reform_etl.raw_tables import partition_by_file, quarantine_table_ddl, raw_table_ddl

ROLES = ("reform_loader", "reform_transformer", "bi_reader", "auditor")
# These log in out of the box: the bootstrap gives each a generated password unless REFORM_<ROLE>_PASSWORD
# gives one. The loader and transformer log in only when their variable is set (the pipeline runs as the owner).
LOGIN_ROLES = ("bi_reader", "auditor")


class WarehouseNotConfigured(RuntimeError):
    """No warehouse DSN: the entry point did not resolve one (`resolve_dsn`) and WAREHOUSE_DSN is unset."""


def dsn(cfg: Settings | None = None) -> str:
    """The warehouse DSN the entry point resolved (WAREHOUSE_DSN); asking never starts a server.

    Raises WarehouseNotConfigured when WAREHOUSE_DSN is unset.
    """
    cfg = cfg or settings()
    if not cfg.warehouse_dsn:
        raise WarehouseNotConfigured(
            "WAREHOUSE_DSN is not set: point it at the warehouse, or start the embedded one with "
            "`reform-etl warehouse start` and use the DSN `reform-etl dsn` prints")
    return cfg.warehouse_dsn


def resolve_dsn(cfg: Settings | None = None) -> str:
    """For entry points (the CLI): WAREHOUSE_DSN if set, else the embedded server, started if it is not running.

    The caller passes the result on explicitly (and exports it as WAREHOUSE_DSN for the Airflow tasks and
    dbt processes it starts). Raises RuntimeError when the embedded server does not start.
    """
    cfg = cfg or settings()
    if cfg.warehouse_dsn:
        return cfg.warehouse_dsn
    server = embedded_pg.ensure_running(cfg.pgdata, cfg.credentials)
    _ensure_database(server.dsn("postgres"), cfg.database)
    return server.dsn(cfg.database)


def password_env(role: str) -> str:
    return f"REFORM_{role.upper()}_PASSWORD"


def role_password(role: str, cfg: Settings | None = None) -> str | None:
    """The password `role` logs in with: REFORM_<ROLE>_PASSWORD, else the generated one (None: neither)."""
    cfg = cfg or settings()
    return os.environ.get(password_env(role)) or credentials.read(cfg.credentials).get(role)


def role_dsn(role: str, dsn_: str | None = None, cfg: Settings | None = None) -> str:
    """`dsn_` (default: the warehouse's) as `role`, with its password; for BI tools and code that reads as it.

    Raises LookupError when the role has no password (not bootstrapped yet, and no variable set).
    """
    cfg = cfg or settings()
    password = role_password(role, cfg)
    if not password and role in LOGIN_ROLES:
        raise LookupError(f"{role} has no password yet: run `reform-etl warehouse start` (the bootstrap "
                          f"generates one into {cfg.credentials}) or export {password_env(role)}")
    if not password:
        raise LookupError(f"{role} logs in only with a password of yours: export {password_env(role)} and run "
                          "`reform-etl warehouse start`")
    parts = urlsplit(dsn_ or dsn(cfg))
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else (parts.hostname or "")
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redacted(dsn_: str) -> str:
    """`dsn_` without its password, for what is printed or stored (audit.pipeline_runs is the auditor's)."""
    parts = urlsplit(dsn_)
    if parts.password is None:
        return dsn_
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def sqlalchemy_url(dsn_: str) -> str:
    """GX and Airflow want a SQLAlchemy URL with an explicit driver."""
    parts = urlsplit(dsn_)
    return urlunsplit(("postgresql+psycopg2", *parts[1:]))


def _ensure_database(admin_dsn: str, database: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))


CONNECT_TIMEOUT_SECONDS = 10  # a server that does not answer fails the attempt, not the night (libpq waits forever)


class WarehouseUnreachable(psycopg.OperationalError):
    """The warehouse did not accept a connection; `down_for`: seconds since the first failed attempt in a row."""

    def __init__(self, message: str, down_for: float = 0.0):
        super().__init__(message)
        self.down_for = down_for


def describe(dsn_: str) -> str:
    """host:port/database of a DSN, never its password: what an error message may name."""
    info = conninfo_to_dict(dsn_)
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def _down_marker(dsn_: str) -> Path:
    digest = hashlib.sha256(describe(dsn_).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"reform-etl-warehouse-down-{digest}"


def _down_for(dsn_: str) -> float:
    """Seconds since the first of the failed connection attempts in a row to this warehouse (on this host,
    across processes: each Airflow task is one)."""
    marker, now = _down_marker(dsn_), time.time()
    try:
        if marker.stat().st_mtime > now - 300:  # failures five minutes apart are two outages, not one
            first = float(marker.read_text())
            os.utime(marker)
            return max(0.0, now - first)
    except (OSError, ValueError):
        pass
    with suppress(OSError):
        marker.write_text(str(now))
    return 0.0


@contextmanager
def connect(dsn_: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A connection to the warehouse; raises WarehouseUnreachable (naming host and port, never the password)
    within CONNECT_TIMEOUT_SECONDS when the server does not answer."""
    target = dsn_ or dsn()
    timeout = {} if "connect_timeout" in conninfo_to_dict(target) else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    try:
        conn = psycopg.connect(target, autocommit=autocommit, application_name="reform-etl", **timeout)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        down_for = _down_for(target)
        raise WarehouseUnreachable(
            f"kho dữ liệu {describe(target)} không phản hồi / the warehouse at {describe(target)} is not reachable"
            f"{f' (for {down_for:.0f} s)' if down_for else ''}: {reason}", down_for) from None
    _down_marker(target).unlink(missing_ok=True)
    try:
        yield conn
    finally:
        conn.close()


MIN_SERVER_VERSION = 160000  # pg_input_is_valid (a date cell's test, 003_normalise.sql) is PostgreSQL 16's


class UnsupportedServer(RuntimeError):
    """The warehouse server is older than the SQL the pipeline runs needs."""


def bootstrap(dsn_: str | None = None) -> None:
    """Create schemas, roles, grants and the raw/audit tables; safe to run any number of times."""
    with connect(dsn_) as conn:
        if conn.info.server_version < MIN_SERVER_VERSION:
            raise UnsupportedServer(
                f"the warehouse needs PostgreSQL 16 or newer; {conn.info.parameter_status('server_version')} "
                "answers at WAREHOUSE_DSN (the embedded warehouse and docker-compose.yml run 16)")
        _ensure_roles(conn, settings())
        # One bootstrap of this database at a time: concurrent `create ... if not exists` can still collide.
        conn.execute("select pg_advisory_xact_lock(hashtext('reform_etl.bootstrap'))")
        for script in sorted(resources.files("reform_etl.sql").iterdir(), key=lambda p: p.name):
            if script.name.endswith(".sql") and script.name != ROLES_SQL:
                conn.execute(script.read_text(encoding="utf-8"))
        for kind, spec in KIND_SPECS.items():
            if spec.by_file:
                partition_by_file(conn, kind)
            conn.execute(raw_table_ddl(kind))
            conn.execute(quarantine_table_ddl(kind))
        conn.execute(
            "grant select, insert, update, delete on all tables in schema raw, audit, quarantine to reform_loader;"
            "grant usage, select on all sequences in schema audit, quarantine to reform_loader;"
            "grant usage, select, update on all sequences in schema raw to reform_loader;"
            "grant select on all tables in schema raw, audit, quarantine to reform_transformer;"
            "grant select on all tables in schema audit, quarantine to auditor;"
        )
        conn.commit()


ROLES_SQL = "roles.sql"
_ROLE_ATTEMPTS = 6


def _ensure_roles(conn: psycopg.Connection, cfg: Settings) -> None:
    """Create the roles and set their passwords, in a transaction of its own.

    Roles live in catalogs every database of the server shares, and the advisory lock above is per
    database: two databases bootstrapped at the same moment (two pipelines, or a test beside the
    nightly) can update the same pg_authid row together, and the server then refuses one with 'tuple
    concurrently updated' (or a duplicate role name). That transaction is simply retried; anything
    else raises.
    """
    script = resources.files("reform_etl.sql").joinpath(ROLES_SQL).read_text(encoding="utf-8")
    for attempt in range(1, _ROLE_ATTEMPTS + 1):
        try:
            with conn.transaction():
                conn.execute(script)
                _set_passwords(conn, cfg)
            return
        except (psycopg.errors.InternalError_, psycopg.errors.UniqueViolation) as exc:
            raced = "concurrently" in str(exc) or "pg_authid" in str(exc)
            if not raced or attempt == _ROLE_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)


def _set_passwords(conn: psycopg.Connection, cfg: Settings) -> None:
    """REFORM_<ROLE>_PASSWORD turns a role into a login role; bi_reader and auditor get a generated
    password (kept in cfg.credentials, mode 0600) where it is unset. Nothing secret lives in the repo."""
    for role in ROLES:
        password = os.environ.get(password_env(role))
        if not password and role in LOGIN_ROLES:
            password = credentials.secret(cfg.credentials, role)
        if password:
            conn.execute(
                sql.SQL("alter role {} login password {}").format(sql.Identifier(role), sql.Literal(password))
            )
