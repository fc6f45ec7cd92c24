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

ROLES = ("reform_loader", "reform_transformer", "bi_reader", "auditor")
# These log in out of the box: the bootstrap gives each a generated password unless REFORM_<ROLE>_PASSWORD
# gives one. The loader and transformer log in only when their variable is set (the pipeline runs as the owner).
LOGIN_ROLES = ("bi_reader", "auditor")
LINEAGE_COLUMNS = ("_file_id", "_row_number")


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


def raw_table_ddl(kind: str) -> sql.Composed:
    """raw.<kind>: the cells as text, by file and source row.

    No foreign key to audit.submission_files: the loader writes the _file_id it registered in the same
    transaction, and a per-row RI check was half the cost of loading a record-level file. The lineage
    columns' defaults let a clean CSV be COPYed in as it is: the file id is a setting of the loading
    transaction (unset, an insert without it fails), the row number the kind's sequence, which the
    loader restarts at each file's first body line.

    A kind held by file (KindSpec.by_file) is partitioned by file id instead, without a key: each
    file is a table of its own (file_table_ddl), COPYed with FREEZE and no index to maintain (the
    primary key's b-tree was a third of a record-level file's load), then attached. A file's rows
    are read by pruning to its partition.
    """
    spec = KIND_SPECS[kind]
    columns = [sql.SQL("{} text").format(sql.Identifier(key)) for key in spec.keys]
    sequence = sql.Identifier(f"{kind}__row_seq")
    if spec.by_file:
        return sql.SQL(
            "create table if not exists raw.{table} ("
            "_file_id bigint not null, _row_number integer not null, {columns}) partition by list (_file_id); "
            "create sequence if not exists raw.{sequence} as integer cache 1000; "
            "alter table raw.{table} alter column _row_number set default nextval({sequence_name}::regclass)"
        ).format(table=sql.Identifier(kind), columns=sql.SQL(", ").join(columns), sequence=sequence,
                 sequence_name=sql.Literal(f"raw.{kind}__row_seq"))
    return sql.SQL(
        "create table if not exists raw.{table} ("
        "_file_id bigint not null, "
        "_row_number integer not null, {columns}, "
        "primary key (_file_id, _row_number)); "
        # a column the kind gained since the table was created (par_scores.max_points)
        "alter table raw.{table} {add_columns}; "
        "alter table raw.{table} drop constraint if exists {fkey}; "
        # cached: a file's numbers are drawn by one session, restarted (and the cache dropped) by setval
        "create sequence if not exists raw.{sequence} as integer cache 1000; "
        "alter table raw.{table} alter column _file_id set default current_setting('reform.file_id')::bigint, "
        "alter column _row_number set default nextval({sequence_name}::regclass)"
    ).format(table=sql.Identifier(kind), columns=sql.SQL(", ").join(columns),
             fkey=sql.Identifier(f"{kind}__file_id_fkey"), sequence=sequence,
             add_columns=sql.SQL(", ").join(sql.SQL("add column if not exists {} text").format(sql.Identifier(key))
                                            for key in spec.keys),
             sequence_name=sql.Literal(f"raw.{kind}__row_seq"))


def prefer_parallel(conn: psycopg.Connection) -> None:
    """For the rest of the transaction, let Postgres spread a scan of a large file over its parallel
    workers (each hashes or sorts its share of the rows) more readily than its defaults do."""
    conn.execute("set local parallel_setup_cost = 100")
    conn.execute("set local parallel_tuple_cost = 0.001")


def file_table_name(kind: str, file_id: int) -> str:
    """The table holding one file's rows of a kind held by file (a partition of raw.<kind>), in schema raw."""
    return f"{kind}__file_{int(file_id)}"


def file_table(kind: str, file_id: int) -> sql.Identifier:
    return sql.Identifier("raw", file_table_name(kind, file_id))


def file_table_ddl(kind: str, file_id: int) -> sql.Composed:
    """A new table for one file's rows, attached to raw.<kind> once they are in (attach_file_table)."""
    return _rows_table_ddl(file_table(kind, file_id), kind, file_id)


def _rows_table_ddl(table: sql.Identifier, kind: str, file_id: int, check: sql.Composable | None = None,
                    partitioned: bool = False) -> sql.Composed:
    """A table of one file's rows (or of some of them: `check`), shaped like raw.<kind>. Its file id is the
    column's default (no function call per row) and a CHECK, which lets the attach skip the scan that would
    prove the partition's bound (named: a partition must have its parent's CHECK constraint, by name)."""
    return sql.SQL(
        "create table {table} (like raw.{kind} including defaults, constraint of_the_file check (_file_id = {file_id})"
        "{check}){partitioned}; alter table {table} alter column _file_id set default {file_id}"
    ).format(table=table, kind=sql.Identifier(kind), file_id=sql.Literal(int(file_id)),
             check=sql.SQL(", check ({})").format(check) if check is not None else sql.SQL(""),
             partitioned=sql.SQL(" partition by range (_row_number)") if partitioned else sql.SQL(""))


def attach_file_table(kind: str, file_id: int) -> sql.Composed:
    return sql.SQL("alter table raw.{table} attach partition {file_table} for values in ({file_id})").format(
        table=sql.Identifier(kind), file_table=file_table(kind, file_id), file_id=sql.Literal(int(file_id)))


# A large clean file is COPYed as two halves at once, each by a server process of its own, into a table of
# its own; the file's table is then partitioned by row number, with the halves as its partitions.
HALF_PATTERN = r"^{kind}__file_[0-9]+__half_2$"  # (a regular expression of table names)


def half_table(kind: str, file_id: int, half: int) -> sql.Identifier:
    return sql.Identifier("raw", f"{file_table_name(kind, file_id)}__half_{half}")


def halved_file_table_ddl(kind: str, file_id: int, second_row: int) -> sql.Composed:
    """The file's table, partitioned by row number, and its first half (rows before `second_row`), for the
    loading transaction; the second half is made by half_table_ddl."""
    return sql.SQL("{}; {}").format(_rows_table_ddl(file_table(kind, file_id), kind, file_id, partitioned=True),
                                    half_table_ddl(kind, file_id, 1, second_row))


def half_table_ddl(kind: str, file_id: int, half: int, second_row: int) -> sql.Composed:
    """A half of the file's rows. Its CHECK on the row number lets the attach skip its scan. The first half's
    rows are numbered by the kind's sequence, as a whole file's are; the second's by an identity of its own,
    from `second_row` (the two are COPYed at the same time)."""
    row = sql.Literal(int(second_row))
    bound = sql.SQL("_row_number < {}").format(row) if half == 1 else sql.SQL("_row_number >= {}").format(row)
    numbering = sql.SQL("") if half == 1 else sql.SQL(
        "; alter table {half} alter column _row_number drop default; "
        "alter table {half} alter column _row_number add generated by default as identity "
        "(start with {second_row} cache 1000)"
    ).format(half=half_table(kind, file_id, half), second_row=row)
    return sql.SQL("{}{}").format(_rows_table_ddl(half_table(kind, file_id, half), kind, file_id, bound), numbering)


def attach_halves(kind: str, file_id: int, second_row: int) -> sql.Composed:
    return sql.SQL(
        "alter table {file_table} attach partition {first} for values from (minvalue) to ({second_row}); "
        "alter table {file_table} attach partition {second} for values from ({second_row}) to (maxvalue)"
    ).format(file_table=file_table(kind, file_id), first=half_table(kind, file_id, 1),
             second=half_table(kind, file_id, 2), second_row=sql.Literal(int(second_row)))


def _partition_by_file(conn: psycopg.Connection, kind: str) -> None:
    """A warehouse made before raw.<kind> was held by file keeps its rows: its table becomes the
    partition of the file ids it holds (or is dropped when empty) under the new partitioned table."""
    found = conn.execute("select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                         "where n.nspname = 'raw' and c.relname = %s", (kind,)).fetchone()
    if found is None or found[0] != "r":
        return
    legacy_name = f"{kind}__before_by_file"
    legacy = sql.Identifier("raw", legacy_name)
    conn.execute(sql.SQL("alter table raw.{} rename to {}").format(sql.Identifier(kind), sql.Identifier(legacy_name)))
    conn.execute(raw_table_ddl(kind))
    file_ids = [row[0] for row in conn.execute(sql.SQL("select distinct _file_id from {} order by 1").format(legacy))]
    if file_ids:
        conn.execute(sql.SQL("alter table raw.{} attach partition {} for values in ({})").format(
            sql.Identifier(kind), legacy, sql.SQL(", ").join(map(sql.Literal, file_ids))))
    else:
        conn.execute(sql.SQL("drop table {}").format(legacy))


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
                _partition_by_file(conn, kind)
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


def quarantine_table_ddl(kind: str) -> sql.Composed:
    """quarantine.<kind>: the raw row as it arrived, plus every rule it failed (filled by validation)."""
    spec = KIND_SPECS[kind]
    columns = [sql.SQL("{} text").format(sql.Identifier(key)) for key in spec.keys]
    return sql.SQL(
        "create table if not exists quarantine.{table} ("
        "_file_id bigint not null references audit.submission_files (file_id), "
        "_row_number integer not null, {columns}, "
        "failed_rules jsonb not null, "  # [{rule, severity, message_vi, message_en, observed}]
        "quarantined_at timestamptz not null default now(), "
        "run_id text, "
        "primary key (_file_id, _row_number)); "
        "alter table quarantine.{table} {add_columns}"
    ).format(table=sql.Identifier(kind), columns=sql.SQL(", ").join(columns),
             add_columns=sql.SQL(", ").join(sql.SQL("add column if not exists {} text").format(sql.Identifier(key))
                                            for key in spec.keys))
