"""One DSN convention: entry points resolve the warehouse once and pass it on; asking for it starts nothing."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from reform_etl import cli, warehouse


def test_asking_for_the_dsn_never_starts_a_server(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("WAREHOUSE_DSN", raising=False)
    monkeypatch.setenv("REFORM_PGDATA", str(tmp_path / "pgdata"))
    with pytest.raises(warehouse.WarehouseNotConfigured, match="WAREHOUSE_DSN"):
        warehouse.dsn()
    assert not (tmp_path / "pgdata").exists()  # no initdb, no server


def test_the_cli_resolves_the_dsn_once_and_passes_it_to_the_command(warehouse_dsn: str, monkeypatch, capsys):
    monkeypatch.setenv("WAREHOUSE_DSN", warehouse_dsn)
    assert cli.main(["dsn"]) == 0
    assert capsys.readouterr().out.strip() == warehouse_dsn
    # `report` of a run reads the warehouse it was given: no run yet there, said plainly
    with psycopg.connect(warehouse_dsn) as conn:
        assert conn.execute("select count(*) from audit.pipeline_runs").fetchone()[0] == 0
    assert cli.main(["report"]) == 1
    assert "no run yet" in capsys.readouterr().out
