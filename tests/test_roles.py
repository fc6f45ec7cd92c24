"""Roles of SPEC §5, proven by connecting as each: what it can and cannot read and write."""

from __future__ import annotations

import json
import os
import stat
from urllib.parse import urlsplit

import psycopg
import pytest

from reform_etl import access, cli, warehouse


def as_role(dsn: str, role: str) -> str:
    return warehouse.role_dsn(role, dsn)


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
    """bi_reader and auditor log in as bootstrapped; the loader and transformer as REFORM_<ROLE>_PASSWORD
    makes them in production."""
    with pytest.MonkeyPatch.context() as env:
        for role in ("reform_loader", "reform_transformer"):
            env.setenv(warehouse.password_env(role), f"{role}-test-password")
        warehouse.bootstrap(dsn)
        yield
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        for role in ("reform_loader", "reform_transformer"):
            conn.execute(f"alter role {role} nologin password null")


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


def test_bi_reader_and_auditor_log_in_with_passwords_the_first_bootstrap_generates(dsn, tmp_path, monkeypatch):
    """A warehouse bootstrapped with no password set gives both a strong generated one, in a 0600 file."""
    session_file = os.environ["REFORM_CREDENTIALS"]
    fresh = tmp_path / "warehouse" / "credentials.json"
    monkeypatch.setenv("REFORM_CREDENTIALS", str(fresh))
    try:
        warehouse.bootstrap(dsn)
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
        passwords = json.loads(fresh.read_text())
        for role in warehouse.LOGIN_ROLES:
            assert len(passwords[role]) >= 32
            with psycopg.connect(warehouse.role_dsn(role, dsn)) as conn:
                assert conn.execute("select current_user").fetchone() == (role,)
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(as_role(dsn, role).replace(passwords[role], "not-" + passwords[role])).close()
        warehouse.bootstrap(dsn)  # again: the same passwords
        assert json.loads(fresh.read_text()) == passwords
    finally:
        monkeypatch.setenv("REFORM_CREDENTIALS", session_file)
        warehouse.bootstrap(dsn)  # the session's passwords again, for the other modules


def test_a_password_from_the_environment_wins_and_the_generated_one_is_refused(dsn, monkeypatch):
    generated = warehouse.role_dsn("bi_reader", dsn)
    monkeypatch.setenv("REFORM_BI_READER_PASSWORD", "from-env-only")
    try:
        warehouse.bootstrap(dsn)
        assert ":from-env-only@" in warehouse.role_dsn("bi_reader", dsn)
        with psycopg.connect(warehouse.role_dsn("bi_reader", dsn)) as conn:
            assert conn.execute("select current_user").fetchone() == ("bi_reader",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(generated).close()
    finally:
        monkeypatch.delenv("REFORM_BI_READER_PASSWORD")
        warehouse.bootstrap(dsn)
    with psycopg.connect(generated) as conn:
        assert conn.execute("select current_user").fetchone() == ("bi_reader",)


@pytest.mark.parametrize("role", warehouse.LOGIN_ROLES)
def test_the_dsn_command_prints_a_role_s_dsn(dsn, role, monkeypatch, capsys):
    monkeypatch.setenv("WAREHOUSE_DSN", dsn)
    assert cli.main(["dsn", "--role", role]) == 0
    printed = capsys.readouterr().out.strip()
    with psycopg.connect(printed) as conn:
        assert conn.execute("select current_user, count(*) from marts.probe").fetchone() == (role, 1)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create table marts.not_mine (a int)")


def test_a_role_without_a_password_has_no_dsn_and_says_how_to_get_one(dsn, monkeypatch):
    monkeypatch.delenv("REFORM_REFORM_LOADER_PASSWORD")
    with pytest.raises(LookupError, match="export REFORM_REFORM_LOADER_PASSWORD"):
        warehouse.role_dsn("reform_loader", dsn)


def test_a_run_s_summary_keeps_no_password(dsn, monkeypatch):
    """audit.pipeline_runs, which the auditor reads, holds the warehouse DSN without its password."""
    from reform_etl import runs

    password = urlsplit(dsn).password
    assert password  # the test server trusts no one: its DSN carries the superuser's password
    monkeypatch.setenv("WAREHOUSE_DSN", dsn)
    runs.start_run(dsn, "roles_test_run", triggered_by="test")
    summary = runs.finish_run(dsn, "roles_test_run")
    assert summary["dsn"] == dsn.replace(f":{password}@", ":***@")
    with psycopg.connect(warehouse.role_dsn("auditor", dsn)) as conn:
        stored = conn.execute("select summary::text from audit.pipeline_runs where run_id = 'roles_test_run'")
        assert password not in stored.fetchone()[0]


def test_grant_unit_refuses_a_role_that_cannot_log_in(dsn, monkeypatch, capsys):
    monkeypatch.setenv("WAREHOUSE_DSN", dsn)
    with pytest.raises(access.RoleCannotLogIn, match="cannot log in.*--password-env.*--nologin"):
        access.grant_unit("analyst_nologin_probe", "227", dsn=dsn)
    assert cli.main(["grant-unit", "analyst_nologin_probe", "227"]) == 1
    assert "RoleCannotLogIn" in capsys.readouterr().out
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select 1 from pg_roles where rolname = 'analyst_nologin_probe'").fetchone() is None
    try:
        assert cli.main(["grant-unit", "analyst_nologin_probe", "227", "--nologin"]) == 0
        monkeypatch.setenv("ANALYST_PW", "analyst-test-password")
        assert cli.main(["grant-unit", "analyst_login_probe", "227", "--password-env", "ANALYST_PW"]) == 0
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select rolname, rolcanlogin from pg_roles where rolname like 'analyst_%_probe' "
                                "order by 1").fetchall() == [("analyst_login_probe", True),
                                                             ("analyst_nologin_probe", False)]
        login = as_role(dsn, "bi_reader").replace("bi_reader:", "analyst_login_probe:", 1)
        login = login.replace(warehouse.role_password("bi_reader"), "analyst-test-password")
        with psycopg.connect(login) as conn:
            assert conn.execute("select current_user").fetchone() == ("analyst_login_probe",)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("delete from audit.unit_role_bindings where role_name like 'analyst_%_probe'")
            conn.execute("drop role if exists analyst_nologin_probe")
            conn.execute("drop role if exists analyst_login_probe")


def test_bootstrap_refuses_a_server_older_than_the_sql_needs(dsn, monkeypatch):
    """A WAREHOUSE_DSN pointing at PostgreSQL 15 is refused with its version named, before any SQL of 16 fails."""
    monkeypatch.setattr(warehouse, "MIN_SERVER_VERSION", 10**7)
    with pytest.raises(warehouse.UnsupportedServer, match="needs PostgreSQL 16 or newer"):
        warehouse.bootstrap(dsn)


def test_two_databases_bootstrapped_at_the_same_moment_both_succeed(make_database):
    """Roles are cluster-wide and the bootstrap lock is per database: two pipelines bootstrapping two
    databases of one server at once used to fail one of them with 'tuple concurrently updated' (CI saw
    it with two `reform-etl load` side by side). Each round starts both together; none may fail."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    dsns = [make_database("race_a"), make_database("race_b")]
    rounds = 12
    barrier = Barrier(len(dsns))

    failures: list[str] = []

    def bootstrap_together(dsn: str) -> None:
        for _ in range(rounds):
            barrier.wait(timeout=60)
            try:
                warehouse.bootstrap(dsn)
            except psycopg.Error as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                barrier.abort()  # the other thread stops waiting for this one
                return

    with ThreadPoolExecutor(len(dsns)) as pool:
        for future in [pool.submit(bootstrap_together, dsn) for dsn in dsns]:
            future.exception(timeout=300)
    assert not failures
    for dsn in dsns:
        with psycopg.connect(as_role(dsn, "bi_reader")) as conn:  # the passwords the bootstraps set still work
            assert conn.execute("select current_user").fetchone()[0] == "bi_reader"
