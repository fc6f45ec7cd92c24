"""SQL builders that normalise cells into raw.<kind> (raw.norm_* functions) and reject over-long keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql

from reform_etl.ingest.canonical_lines import KEY_CELL_MAX
from reform_etl.ingest.readers import FileRejected, Table
from reform_etl.kinds import KindSpec, ValueType

NORMALISE_SQL = {
    ValueType.UNIT_CODE: "raw.norm_unit_code",
    ValueType.CODE: "raw.norm_text",
    ValueType.TEXT: "raw.norm_text",
    ValueType.COUNT: "raw.norm_count",
    ValueType.DECIMAL: "raw.norm_decimal",
    ValueType.YEAR: "raw.norm_year",
    ValueType.PERIOD: "raw.norm_period",
    ValueType.DATE: "raw.norm_date",
    ValueType.BOOLEAN: "raw.norm_boolean",
}


ALL_ROWS = sql.SQL("true")
LOOKUP_ROWS = 1000  # up to this many rows (or an eighth of the file) to normalise are looked up by number


def _normalise_unproven(conn: psycopg.Connection, spec: KindSpec, table: Table, columns: list[str], file_id: int,
                        target: sql.Identifier, copied: int, unproven: list[int]) -> int:
    """Check the key lengths of the rows of `target` (raw.<kind>, a file's table or half of it) that the line
    scan did not prove canonical (numbered `unproven`), and normalise them; returns the blank rows dropped."""
    if not unproven:
        return 0
    # A few rows are looked up by number; when many need it, one scan of the file is cheaper.
    rows = unproven if len(unproven) <= max(LOOKUP_ROWS, copied // 8) else None
    if rows is not None and spec.by_file:
        # The file's own table has no index: one scan, which Postgres may spread over its workers (a
        # SELECT), finds the rows by number with their place and key lengths; they are rewritten by place.
        keys = _key_columns(spec, set(columns))
        # The numbers as a literal: a constant array is hashed once (a parameter's is searched for every row).
        found = conn.execute(sql.SQL(
            "select ctid::text, _row_number, {lengths} from {target} where _row_number = any({rows}::integer[])"
        ).format(lengths=sql.SQL(", ").join(_length(sql.Identifier(k)) for k in keys), target=target,
                 rows=sql.Literal(rows))).fetchall()
        _reject_long_keys(keys, sorted((row[1], row[2:]) for row in found))
        return _normalise_in_place(conn, spec, columns, file_id, target, places=[row[0] for row in found])
    source: sql.Composable = target
    where = sql.SQL("_file_id = {}").format(sql.Literal(file_id))
    if rows is not None:  # limit 1: a lookup per row, whatever the planner guesses of the unanalysed file
        source = sql.SQL("unnest({rows}::integer[]) as u (n) cross join lateral "
                         "(select * from {raw} r where r._file_id = {file} and r._row_number = u.n limit 1) r").format(
            rows=sql.Literal(rows), raw=target, file=sql.Literal(file_id))
    check_key_lengths(conn, spec, table, source, sql.SQL("_row_number"), sql.Identifier, sql.SQL("_row_number"),
                       where=where)
    return _normalise_in_place(conn, spec, columns, file_id, target, rows)


def _normalise_in_place(conn: psycopg.Connection, spec: KindSpec, columns: list[str], file_id: int,
                        target: sql.Identifier, rows: list[int] | None = None, places: list[str] | None = None
                        ) -> int:
    """Rewrite the rows of the file (all, those numbered `rows` or those at `places`, ctids) with a value
    not in canonical form, and drop its blank rows (returns how many).

    One scan evaluates each column's normaliser; a canonical value passes its fast path unchanged.
    """
    period = spec.period_column if spec.period_column in columns else None
    period_cell = sql.Identifier(period) if period else sql.NULL

    def normalised(key: str) -> sql.Composable:
        return _normaliser(spec, key, sql.Identifier(key),
                           _normaliser(spec, period, period_cell) if period else sql.NULL)

    def canonical(key: str) -> sql.Composable:
        # The unit code's test takes the period as it is, so that the planner can inline it: when the
        # period itself is not canonical, its own test selects the row anyway.
        return _normaliser(spec, key, sql.Identifier(key), period_cell)

    idents = [sql.Identifier(k) for k in columns]
    changed = sql.SQL(" or ").join(
        sql.SQL("{} is distinct from {}").format(canonical(k), sql.Identifier(k)) for k in columns)
    numbered = sql.SQL(" where")
    if places is not None:  # a TID scan
        numbered = sql.SQL(" where ctid = any({}::tid[]) and").format(sql.Literal(places))
    elif rows is not None:
        numbered = sql.SQL(" from unnest({}::integer[]) as u (n) where _row_number = u.n and").format(
            sql.Literal(rows))
    blank: list[int] = conn.execute(sql.SQL(
        "with fixed as ("
        "  update {table} set {assign}{numbered} _file_id = %s and (num_nonnulls({cols}) = 0 or {changed})"
        "  returning _row_number, num_nonnulls({cols}) = 0 as is_blank"
        ") select coalesce(array_agg(_row_number) filter (where is_blank), '{{}}') from fixed"
    ).format(table=target, cols=sql.SQL(", ").join(idents), changed=changed,
             numbered=numbered,
             assign=sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(k), normalised(k)) for k in columns)),
        (file_id,)).fetchone()[0]
    if blank:  # rows of blank cells are not data rows
        conn.execute(sql.SQL("delete from {} where _file_id = %s and _row_number = any(%s)").format(target),
                     (file_id, blank))
    return len(blank)


def check_key_lengths(conn: psycopg.Connection, spec: KindSpec, table: Table, source: sql.Composable,
                       row_number: sql.Composable, cell: Callable[[str], sql.Composable], order: sql.Composable,
                       where: sql.Composable = ALL_ROWS) -> None:
    """Codes, periods and years are looked up through btree indexes, which cannot hold a value of
    thousands of characters: such a cell is no code, and the file is rejected with its place named
    (instead of the insert failing and stopping the run).

    `source` holds the staged cells (the file's rows: those `where` selects); `cell(key)` names a key's
    cell in it and `row_number` a row's source row number."""
    keys = _key_columns(spec, set(table.mapping.values()))
    lengths = [_length(cell(k)) for k in keys]
    found = conn.execute(sql.SQL(
        # offset 0: the few long cells are sorted, the limit must not walk the file in index order
        "select * from (select {order} as _order, {row_number}, {lengths} from {source} "
        "  where {where} and greatest({lengths}) > %s offset 0) long order by 1 limit 1"
    ).format(row_number=row_number, lengths=sql.SQL(", ").join(lengths), source=source, where=where,
             order=order), (KEY_CELL_MAX,)).fetchone()
    if found:
        _reject_long_keys(keys, [(found[1], found[2:])])


def _key_columns(spec: KindSpec, present: set[str]) -> list[str]:
    """The columns looked up through indexes among those of the file."""
    return [k for k in spec.lookup_columns if k in present]


def _length(cell: sql.Composable) -> sql.Composable:
    return sql.SQL("coalesce(char_length({}), 0)").format(cell)


def _reject_long_keys(keys: list[str], rows: Iterable[tuple[int, Iterable[int]]]) -> None:
    """Reject the file at the first of `rows` (row number, lengths of `keys`) with a cell too long for a key."""
    for row_number, lengths in rows:
        key, length = max(zip(keys, lengths, strict=True), key=lambda item: item[1])
        if length > KEY_CELL_MAX:
            raise FileRejected(
                "value_too_long",
                f"row {row_number}: the {key} cell is {length} characters long; a code, period or year has at "
                f"most {KEY_CELL_MAX} (giá trị mã/kỳ quá dài)")


def _normaliser(spec: KindSpec, key: str, cell: sql.Composable, period: sql.Composable = sql.NULL) -> sql.Composable:
    """The expression normalising a cell of column `key`. A unit code also takes its row's normalised
    period: its leading zeros depend on it (district before 2025-07, commune after)."""
    if key == "unit_code":
        return sql.SQL("raw.norm_unit_code({}, {})").format(cell, period)
    return sql.SQL("{}({})").format(sql.SQL(NORMALISE_SQL[spec.column(key).type]), cell)


def normalise_into_raw(spec: KindSpec, table: Table, columns: list[str], target: sql.Identifier) -> sql.Composed:
    """insert ... select with each column normalised once (offset 0 keeps the inner query as it is)."""
    index_of = {key: index for index, key in table.mapping.items()}

    def source(key: str) -> sql.Identifier:
        return sql.Identifier(f"s{index_of[key]}")

    def inner(key: str) -> sql.Composable:
        if key == "unit_code":
            return sql.SQL("{} as {}").format(source(key), sql.Identifier(key))
        return sql.SQL("{} as {}").format(_normaliser(spec, key, source(key)), sql.Identifier(key))

    def outer(key: str) -> sql.Composable:
        if key == "unit_code":  # with the period normalised by the inner query
            return _normaliser(spec, key, sql.Identifier(key), sql.Identifier(spec.period_column))
        return sql.Identifier(key)

    return sql.SQL(
        "insert into {target} (_file_id, _row_number, {columns}) "
        "select %s, _row_number, {outer} from ("
        "  select coalesce(_row_number, _seq - (select min(_seq) from _landing) + %s) as _row_number, {inner}"
        "  from _landing offset 0"
        ") normalised where num_nonnulls({not_blank}) > 0"  # blank lines are not data rows
    ).format(
        target=target,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        outer=sql.SQL(", ").join(outer(k) for k in columns),
        inner=sql.SQL(", ").join(inner(k) for k in columns),
        not_blank=sql.SQL(", ").join(
            sql.SQL("raw.norm_text({})").format(sql.Identifier(k)) if k == "unit_code" else sql.Identifier(k)
            for k in columns),
    )
