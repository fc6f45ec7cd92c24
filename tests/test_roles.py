"""Roles of SPEC §5, proven by connecting as each: what it can and cannot read and write."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from reform_etl import warehouse


def as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, f"{role}@{parts.hostname}:{parts.port}", parts.path, "", ""))


@pytest.fixture(scope="module")
def dsn(make_database) -> str:
    dsn = make_database("roles")
    with psycopg.connect(dsn, autocommit=True) as conn:
        file_id = conn.execute(
            "insert into audit.submission_files (path, file_name, sha256, size_bytes, received_at, status) "
            "values ('x', 'x', 'roles-test', 1, now(), 'loaded') returning file_id").fetchone()[0]
        conn.execute("insert into raw.it_kpis (_file_id, _row_number, unit_code) values (%s, 2, '227')", (file_id,))
        conn.execute("create table marts.probe (unit_code text)")
        conn.execute("insert into marts.probe values ('227')")
        conn.execute("grant select on marts.probe to bi_reader, auditor")
    return dsn


@pytest.fixture(scope="module", autouse=True)
def login_roles(dsn, pg_admin_dsn):
    """Make the roles login roles for this test, as REFORM_<ROLE>_PASSWORD does in production."""
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        for role in warehouse.ROLES:
            conn.execute(f"alter role {role} login")
    yield
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        for role in warehouse.ROLES:
            conn.execute(f"alter role {role} nologin")


def can(dsn: str, role: str, statement: str) -> bool:
    try:
        with psycopg.connect(as_role(dsn, role)) as conn:
            conn.execute(statement)
            conn.rollback()
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


CASES = [
    ("reform_loader", "insert into raw.it_kpis (_file_id, _row_number) "
                      "select file_id, 99 from audit.submission_files limit 1", True),
    ("reform_loader", "update audit.submission_files set warnings = 0", True),
    ("reform_loader", "create table marts.x (a int)", False),
    ("reform_loader", "select * from marts.probe", False),
    ("reform_transformer", "select * from raw.it_kpis", True),
    ("reform_transformer", "select * from audit.v_submission_partitions", True),
    ("reform_transformer", "create table staging.x (a int)", True),
    ("reform_transformer", "insert into raw.it_kpis (_file_id, _row_number) values (1, 1)", False),
    ("bi_reader", "select * from marts.probe", True),
    ("bi_reader", "select * from raw.it_kpis", False),
    ("bi_reader", "select * from audit.submission_files", False),
    ("bi_reader", "select * from quarantine.it_kpis", False),
    ("bi_reader", "insert into marts.probe values ('1')", False),
    ("auditor", "select * from audit.submission_files", True),
    ("auditor", "select * from quarantine.it_kpis", True),
    ("auditor", "select * from marts.probe", True),
    ("auditor", "select * from raw.it_kpis", False),
    ("auditor", "delete from audit.submission_files", False),
]


@pytest.mark.parametrize("role, statement, allowed", CASES, ids=[f"{r}:{s[:40]}" for r, s, _ in CASES])
def test_role_privileges(dsn, role, statement, allowed):
    assert can(dsn, role, statement) is allowed


def test_passwords_come_from_the_environment(dsn, monkeypatch, pg_admin_dsn):
    monkeypatch.setenv("REFORM_BI_READER_PASSWORD", "from-env-only")
    warehouse.bootstrap(dsn)
    with psycopg.connect(pg_admin_dsn) as conn:
        login, has_password = conn.execute(
            "select rolcanlogin, rolpassword is not null from pg_authid where rolname = 'bi_reader'").fetchone()
        conn.execute("alter role bi_reader password null")
        conn.commit()
    assert login and has_password


def test_bootstrap_refuses_a_server_older_than_the_sql_needs(dsn, monkeypatch):
    """A WAREHOUSE_DSN pointing at PostgreSQL 15 is refused with its version named, before any SQL of 16 fails."""
    monkeypatch.setattr(warehouse, "MIN_SERVER_VERSION", 10**7)
    with pytest.raises(warehouse.UnsupportedServer, match="needs PostgreSQL 16 or newer"):
        warehouse.bootstrap(dsn)
