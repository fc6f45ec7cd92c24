"""Shared fixtures: a real Postgres for every test (embedded by default, WAREHOUSE_DSN if set).

Each test module that asks for `warehouse` gets its own freshly bootstrapped database on one
server per session, so modules never see each other's rows.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from reform_etl import embedded_pg, orchestration, warehouse

REPO = Path(__file__).resolve().parents[1]

# Airflow reads its configuration once, when it is first imported: give the whole session one
# Airflow home (SQLite metadata DB in a temp folder) before any test module imports it, so that
# every module's in-process Airflow talks to the database its fixtures migrate.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="rwh-airflow-", dir="/tmp"))
os.environ.update(orchestration.airflow_env(Path(os.environ["AIRFLOW_HOME"])))
# Test files are written a moment before they are loaded: no quiet period (tests of it set their own).
os.environ.setdefault("REFORM_QUIET_SECONDS", "0")
# The generated passwords (the test server's superuser, bi_reader, auditor) live in a temp file of the
# session, never in the checkout's .warehouse/ nor a file REFORM_CREDENTIALS named outside the tests.
os.environ["REFORM_CREDENTIALS"] = str(Path(tempfile.mkdtemp(prefix="rwh-creds-", dir="/tmp")) / "credentials.json")


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """DSN of the server's maintenance database; the server lives for the whole session."""
    external = os.environ.get("WAREHOUSE_DSN")
    if external:
        yield _with_database(external, "postgres")
        return
    # Short path: the Unix socket path inside the data folder must stay under 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rwh-", dir="/tmp"))
    server = embedded_pg.ensure_running(root / "pgdata", Path(os.environ["REFORM_CREDENTIALS"]))
    yield server.dsn("postgres")  # with the superuser's password: the server trusts no one
    embedded_pg.stop(root / "pgdata", mode="immediate")


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def make_database(pg_admin_dsn: str):
    """Factory: a new, bootstrapped database; dropped at the end of the session."""
    created: list[str] = []

    def _make(label: str = "t") -> str:
        name = f"rt_{re.sub(r'[^a-z0-9]', '_', label.lower())[:30]}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        created.append(name)
        dsn = _with_database(pg_admin_dsn, name)
        warehouse.bootstrap(dsn)
        return dsn

    yield _make
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def warehouse_dsn(make_database, request) -> str:
    """A bootstrapped database of this test module's own."""
    return make_database(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture()
def db(warehouse_dsn: str, monkeypatch) -> Iterator[psycopg.Connection]:
    """A connection to the module's database, with WAREHOUSE_DSN pointing at it for code under test."""
    monkeypatch.setenv("WAREHOUSE_DSN", warehouse_dsn)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture()
def landing(tmp_path: Path, monkeypatch) -> Path:
    """An empty landing folder; loaded files are archived beside it (REFORM_ARCHIVE). A module that needs
    more (a kind's folder, other settings) overrides it and asks for this one."""
    monkeypatch.setenv("REFORM_ARCHIVE", str(tmp_path / "archive"))
    root = tmp_path / "landing"
    root.mkdir()
    return root


@pytest.fixture()
def q(built):
    """Rows of a query on the warehouse of the module's `built` fixture (a dict with its "dsn")."""
    with psycopg.connect(built["dsn"], autocommit=True) as conn:
        yield lambda query, *params: conn.execute(query, params).fetchall()
