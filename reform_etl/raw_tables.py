"""How raw and quarantine hold a kind's rows: raw.<kind> (one table, or one partition per file, in two
halves when large) and quarantine.<kind>; the DDL the bootstrap and the loader run."""

from __future__ import annotations

import psycopg
from psycopg import sql

from reform_etl.kinds import KIND_SPECS


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


def partition_by_file(conn: psycopg.Connection, kind: str) -> None:
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
