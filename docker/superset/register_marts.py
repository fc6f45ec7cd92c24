"""Register the warehouse in Superset as bi_reader, and every table of `marts` as a dataset.

Run by bootstrap.sh inside the Superset image (`python register_marts.py`: it makes its own app
context). Idempotent: the database entry is updated in place and a dataset that exists is
refreshed. Descriptions come from the warehouse itself (dbt persist_docs: COMMENT ON TABLE /
COLUMN, Vietnamese / English), so Superset shows what psql's `\\d+` shows.
"""

import os

from sqlalchemy import create_engine, text

NAME = "Kho CCHC (marts) / Reform warehouse (marts)"


def warehouse_uri() -> str:
    host = os.environ.get("WAREHOUSE_HOST", "postgres")
    port = os.environ.get("WAREHOUSE_PORT", "5432")
    return f"postgresql+psycopg2://bi_reader:{os.environ['BI_READER_PASSWORD']}@{host}:{port}/reform"


def descriptions(uri: str) -> tuple[list[tuple[str, str]], dict[tuple[str, str], str]]:
    """(marts tables with their comment, {(table, column): comment}), read as bi_reader."""
    with create_engine(uri).connect() as conn:
        tables = conn.execute(text("""
            select c.relname, obj_description(c.oid, 'pg_class') from pg_class c
            where c.relnamespace = 'marts'::regnamespace and c.relkind in ('r', 'p', 'v')
            order by c.relname""")).all()
        columns = {(t, c): d for t, c, d in conn.execute(text("""
            select c.relname, a.attname, col_description(c.oid, a.attnum) from pg_class c
            join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            where c.relnamespace = 'marts'::regnamespace""")).all()}
    return [tuple(t) for t in tables], columns


def register() -> None:
    """Create or update the database entry and one dataset per marts table (needs an app context)."""
    from superset import db
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.core import Database

    uri = warehouse_uri()
    database = db.session.query(Database).filter_by(database_name=NAME).one_or_none()
    if database is None:
        database = Database(database_name=NAME)
        db.session.add(database)
    database.set_sqlalchemy_uri(uri)
    database.expose_in_sqllab = True
    database.allow_dml = False  # bi_reader cannot write anyway; Superset need not offer it
    db.session.commit()

    tables, columns = descriptions(uri)
    for table_name, description in tables:
        dataset = db.session.query(SqlaTable).filter_by(
            database_id=database.id, schema="marts", table_name=table_name).one_or_none()
        if dataset is None:
            dataset = SqlaTable(table_name=table_name, schema="marts", database=database)
            db.session.add(dataset)
        dataset.description = description
        dataset.fetch_metadata()  # columns and types from the database
        for column in dataset.columns:
            column.description = columns.get((table_name, column.column_name))
        print(f"dataset marts.{table_name}: {len(dataset.columns)} columns")
    db.session.commit()


if __name__ == "__main__":
    from superset.app import create_app

    with create_app().app_context():
        register()
