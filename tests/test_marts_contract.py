"""What a BI tool reads from the database itself: every mart's and column's description (Vietnamese and
English), a primary key on every mart, foreign keys from facts and reports to the dimensions, not null on
the grain, `unit_name` on the reports; and the keys survive a second nightly build (incremental marts
are not recreated, while a dimension's rebuild drops the keys that point at it)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from reform_etl.transform import run_dbt
from tests.test_dbt_marts import built  # noqa: F401  (the hand-made dataset, built once for this module)

pytestmark = pytest.mark.slow

MARTS = Path(__file__).parents[1] / "dbt_project" / "models" / "marts"
REPORTS = ["rpt_par_index", "rpt_content_area_scores", "rpt_submission_status", "rpt_reconciliation"]


def documented() -> dict[str, dict]:
    """Every mart of the YAML: its description, its columns' descriptions, its declared constraints."""
    models: dict[str, dict] = {}
    for path in MARTS.glob("*/_*__models.yml"):
        for m in yaml.safe_load(path.read_text(encoding="utf-8"))["models"]:
            models[m["name"]] = m
    return models


def declared_keys(model: dict) -> tuple[list[str], dict[str, str]]:
    """(primary key columns, {fk column: referenced model}) as the contract declares them."""
    pk, fks = [], {}
    for col in model["columns"]:
        for c in col.get("constraints", []):
            if c["type"] == "primary_key":
                pk.append(col["name"])
            elif c["type"] == "foreign_key":
                fks[col["name"]] = c["to"].split("'")[1]
    return pk, fks


def database_keys(conn: psycopg.Connection) -> dict[str, dict]:
    """Per marts table: its primary key columns, {fk column: referenced table}, its not-null columns."""
    keys: dict[str, dict] = {}
    for table, kind, cols, target in conn.execute("""
        select c.conrelid::regclass::text, c.contype,
               array(select a.attname from unnest(c.conkey) k join pg_attribute a
                     on a.attrelid = c.conrelid and a.attnum = k order by a.attname)::text[],
               c.confrelid::regclass::text
        from pg_constraint c join pg_class t on t.oid = c.conrelid
        where t.relnamespace = 'marts'::regnamespace and c.contype in ('p', 'f')"""):
        entry = keys.setdefault(table.split(".")[-1], {"pk": [], "fk": {}})
        if kind == "p":
            entry["pk"] = list(cols)
        else:
            entry["fk"][cols[0]] = target.split(".")[-1]
    return keys


def test_every_mart_and_column_carries_its_bilingual_description_in_the_database(built):  # noqa: F811
    models = documented()
    with psycopg.connect(built["dsn"]) as conn:
        tables = dict(conn.execute("""
            select c.relname, obj_description(c.oid, 'pg_class') from pg_class c
            where c.relnamespace = 'marts'::regnamespace and c.relkind in ('r', 'p', 'v')""").fetchall())
        columns = {(t, c): d for t, c, d in conn.execute("""
            select c.relname, a.attname, col_description(c.oid, a.attnum) from pg_class c
            join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            where c.relnamespace = 'marts'::regnamespace and c.relkind in ('r', 'p', 'v')""")}
        described = conn.execute("""
            select count(*) from pg_description d join pg_class c on c.oid = d.objoid
            where d.classoid = 'pg_class'::regclass and d.objsubid > 0
              and c.relnamespace = 'marts'::regnamespace""").fetchone()[0]
    assert set(tables) == set(models)
    for name, model in models.items():
        assert (tables[name] or "").strip() == model["description"].strip(), name
        assert " / " in tables[name], name  # Vietnamese / English
        for col in model["columns"]:
            assert (columns[(name, col["name"])] or "").strip() == col["description"].strip(), (name, col["name"])
    assert described == sum(len(m["columns"]) for m in models.values())
    assert described == len(columns)  # no undocumented column either


def test_every_mart_has_its_declared_primary_and_foreign_keys(built):  # noqa: F811
    models = documented()
    with psycopg.connect(built["dsn"]) as conn:
        keys = database_keys(conn)
    for name, model in models.items():
        pk, fks = declared_keys(model)
        assert pk, f"{name} declares no primary key"
        assert keys[name]["pk"] == pk, name
        assert keys[name]["fk"] == fks, name
        if name.startswith(("fct_", "rpt_")):
            assert fks.get("unit_key") == "dim_unit", name
    assert keys["fct_dossier_throughput"]["fk"] == {
        "unit_key": "dim_unit", "period_key": "dim_period", "field_code": "dim_field"}
    assert keys["fct_it_adoption"]["fk"]["kpi_code"] == "dim_kpi"
    assert keys["fct_criteria_scores"]["fk"]["criterion_key"] == "dim_criterion"


def test_the_grain_is_not_null_and_the_keys_are_enforced(built):  # noqa: F811
    with psycopg.connect(built["dsn"]) as conn:
        nullable = dict(conn.execute("""
            select table_name || '.' || column_name, is_nullable from information_schema.columns
            where table_schema = 'marts'""").fetchall())
        for col in ["fct_dossier_throughput.unit_code", "fct_dossier_throughput.period",
                    "fct_dossier_throughput.field_code", "rpt_par_index.unit_code", "rpt_par_index.year",
                    "rpt_submission_status.kind", "dim_unit.unit_key", "fct_criteria_scores.criterion_key"]:
            assert nullable[col] == "NO", col
        # unit_key stays nullable in facts: a unit missing from the registry keeps its rows (a warning)
        assert nullable["fct_dossier_throughput.unit_key"] == "YES"
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("update marts.fct_it_adoption set kpi_code = 'NO_SUCH_KPI' where true")
        conn.rollback()


def test_reports_carry_the_unit_name(built):  # noqa: F811
    with psycopg.connect(built["dsn"]) as conn:
        for report in REPORTS:
            rows = conn.execute(f"""
                select count(*), count(*) filter (where r.unit_name = u.unit_name)
                from marts.{report} r join marts.dim_unit u using (unit_key)""").fetchone()
            assert rows[0] == rows[1], report
        assert conn.execute("select count(*) from marts.rpt_par_index").fetchone()[0] > 0
        assert conn.execute("select count(*) from marts.rpt_par_index where unit_name is null").fetchone()[0] == 0


def test_the_keys_survive_the_next_night(built):  # noqa: F811
    """A second build rebuilds the dimensions (dropping with CASCADE the keys that point at them) but not
    the incremental facts: their foreign keys come back from the contract."""
    with psycopg.connect(built["dsn"]) as conn:
        before = database_keys(conn)
    result = run_dbt(["build", "--exclude", "resource_type:test", *built["flags"]], built["dsn"])
    assert result.success
    with psycopg.connect(built["dsn"]) as conn:
        after = database_keys(conn)
        incremental = [r[0] for r in conn.execute("""
            select c.relname from pg_class c where c.relnamespace = 'marts'::regnamespace
              and c.relname in ('fct_criteria_scores', 'fct_dossier_throughput', 'fct_it_adoption',
                                'fct_dossier_records_monthly')""")]
    assert len(incremental) == 4
    assert after == before


def _key_names(dsn: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("""
            select conrelid::regclass::text, conname from pg_constraint
            where connamespace = 'marts'::regnamespace and contype in ('p', 'f') order by 1, 2""").fetchall()
    names: dict[str, list[str]] = {}
    for table, name in rows:
        names.setdefault(table, []).append(name)
    return names


def test_keys_are_named_after_their_mart_not_dbts_temporary_table(built):  # noqa: F811
    """What `\\d+` and a BI tool show: `rpt_par_index_pkey`, not `rpt_par_index__dbt_tmp_pkey1`, after the
    first build and after a rebuild (a table mart is swapped in from `<mart>__dbt_tmp` every time)."""
    for _ in range(2):
        names = _key_names(built["dsn"])
        assert names and not [n for ns in names.values() for n in ns if "dbt_tmp" in n], names
        assert "rpt_par_index_pkey" in names["marts.rpt_par_index"], names["marts.rpt_par_index"]
        assert all(n.startswith(t.split(".", 1)[1] + "_") for t, ns in names.items() for n in ns), names
        assert run_dbt(["build", "--exclude", "resource_type:test", *built["flags"]], built["dsn"]).success
