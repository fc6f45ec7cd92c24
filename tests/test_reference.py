"""Reference data: one fingerprint of the seed CSVs, one record (audit.reference_loads), two targets.

validation's lookups (audit.ref_*) and dbt's seed tables each reload when the seeds' fingerprint differs
from their own last load; the dbt decision reads only the dbt loads (audit.reference_data_loads).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from reform_etl import reference, warehouse
from reform_etl.transform.decision import transform_state

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def _rows(dsn: str, query: str, *args) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchall()


def test_lookups_reload_when_a_seed_changes_and_leave_the_dbt_record_alone(warehouse_dsn, tmp_path):
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    state_before = _state(warehouse_dsn)

    counts = reference.ensure_lookups(warehouse_dsn, seeds)
    assert counts == {table: _rows(warehouse_dsn, f"select count(*) from audit.{table}")[0][0]
                      for table in reference.LOOKUP_TABLES}
    assert counts["ref_units"] > 4000 and counts["ref_kpis"] > 0
    assert reference.ensure_lookups(warehouse_dsn, seeds) == counts  # unchanged seeds: no reload
    loads = _rows(warehouse_dsn, "select fingerprint from audit.reference_loads where target = 'lookups'")
    assert loads == [(reference.seeds_fingerprint(seeds),)]

    kpis = seeds / "kpis.csv"
    added = "\nKPI_TEST,Chỉ số thử,Test KPI\n"
    kpis.write_text(kpis.read_text(encoding="utf-8").rstrip("\n") + added, encoding="utf-8")
    again = reference.ensure_lookups(warehouse_dsn, seeds)
    assert again["ref_kpis"] == counts["ref_kpis"] + 1
    assert _rows(warehouse_dsn, "select 1 from audit.ref_kpis where kpi_code = 'KPI_TEST'") == [(1,)]
    assert len(_rows(warehouse_dsn, "select 1 from audit.reference_loads where target = 'lookups'")) == 2

    # validation's loads are not dbt's: the nightly decision sees no new seed load
    assert _rows(warehouse_dsn, "select count(*) from audit.reference_data_loads") == [(0,)]
    assert _state(warehouse_dsn) == state_before


def test_a_dbt_seed_load_is_recorded_under_the_same_fingerprint(warehouse_dsn, monkeypatch):
    monkeypatch.setenv("REFORM_SEEDS", str(SEEDS))
    before = _rows(warehouse_dsn, "select count(*) from audit.reference_data_loads")[0][0]
    assert reference.seeds_changed(warehouse_dsn) or before
    fingerprint = reference.record_seeds_loaded("test-run", warehouse_dsn)
    assert fingerprint == reference.seeds_fingerprint(SEEDS)
    assert reference.last_seeds_fingerprint(warehouse_dsn) == fingerprint
    assert not reference.seeds_changed(warehouse_dsn)
    load_id, run_id = _rows(warehouse_dsn, "select load_id, run_id from audit.reference_data_loads "
                                           "order by load_id desc limit 1")[0]
    assert run_id == "test-run"
    assert _state(warehouse_dsn) == f"{load_id}:{fingerprint}"


def test_a_warehouse_with_the_old_record_tables_keeps_its_dbt_loads(make_database):
    dsn = make_database("old_reference")
    with psycopg.connect(dsn) as conn:  # the tables as they were before audit.reference_loads
        conn.execute("drop view audit.reference_data_loads; drop table audit.reference_loads")
        conn.execute("create table audit.reference_data_loads (load_id bigserial primary key, "
                     "fingerprint text not null, loaded_at timestamptz not null default now(), run_id text, "
                     "seeds jsonb)")
        conn.execute("insert into audit.reference_data_loads (load_id, fingerprint, run_id) "
                     "values (3, 'old-a', 'r1'), (7, 'old-b', 'r2')")
        conn.execute("create table audit.ref_sources (name text primary key, sha256 text not null, "
                     "rows integer not null, loaded_at timestamptz not null default now())")
        conn.commit()
    assert _state(dsn) == "7:old-b"

    warehouse.bootstrap(dsn)
    assert _state(dsn) == "7:old-b"  # the last full build's seeds_fingerprint still names the last load
    assert _rows(dsn, "select load_id, target, fingerprint, run_id from audit.reference_loads order by 1") == [
        (3, "dbt", "old-a", "r1"), (7, "dbt", "old-b", "r2")]
    assert _rows(dsn, "select to_regclass('audit.ref_sources')") == [(None,)]
    reference.record_seeds_loaded("r3", dsn)
    assert _rows(dsn, "select max(load_id) from audit.reference_data_loads") == [(8,)]


def _state(dsn: str) -> str | None:
    """The seeds part of the dbt decision's state, as transform/decision.py reads it."""
    with psycopg.connect(dsn) as conn:
        return transform_state(conn)["seeds_fingerprint"]
