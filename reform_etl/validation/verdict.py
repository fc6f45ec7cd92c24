"""The verdict of one file: its shape (reject rules), the verdict sets, quarantine SQL, and validate_file."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from reform_etl import reference
from reform_etl.kinds import KIND_SPECS, ValueType
from reform_etl.raw_tables import file_table_name, prefer_parallel
from reform_etl.validation import project
from reform_etl.validation import rules as R
from reform_etl.validation.gx import ValidationError, run_suite, store_results
from reform_etl.validation.runs import start_run

log = logging.getLogger(__name__)


LOADER_CODES = {code for rule in R.FILE_RULES for code in rule.loader_codes}
UNSAFE_PATH_CODES = next(rule.loader_codes for rule in R.FILE_RULES if rule.name == "unsafe_file_path")


def file_shape(row: dict) -> dict[str, bool]:
    """The booleans the `submission_file` suite checks: the loader's verdict, re-derived where it can be."""
    code = row["error_code"]
    kind = row["kind"]
    spec = KIND_SPECS.get(kind) if kind else None
    mapping = row["header_mapping"] or {}
    keys = list(mapping.values())
    loaded = row["status"] in ("loaded", "accepted")
    return {
        "path_is_safe": code not in UNSAFE_PATH_CODES and ".." not in Path(row["path"]).parts,
        "is_readable": code != "unreadable",
        "is_within_limits": code != "file_too_large",
        "has_unit_and_period": code not in ("unit_unresolved", "period_unresolved"),
        "kind_matches": code != "wrong_kind" and (spec is not None or code is not None),
        "has_header": code != "no_header",
        "has_required_columns": code != "missing_columns"
        and (not loaded or spec is None or set(spec.required) <= set(keys)),
        "has_unique_columns": code != "duplicate_columns" and len(keys) == len(set(keys)),
        "has_data_rows": code != "empty" and (not loaded or (row["rows_total"] or 0) >= 1),
        "is_parsed": code is None or code in LOADER_CODES,
    }


# ------------------------------------------------------------------ quarantine

def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_rows(kind: str, file_id: int) -> str:
    return f"(select * from raw.{kind} where _file_id = {int(file_id)})"


MANY_FAILING = 100_000  # failing rows beyond which the quarantine statement tests the whole file again
# A column whose distinct values are more than this share of its file's rows is tested row by row: a pass
# over its distinct values would hash nearly every row, in tables too large for the CPU's caches, and then
# test them one at a time in the leader, slower than testing the rows in place; a column of few distinct
# values (date-times to the minute) is faster tested value by value.
IN_PLACE_DISTINCT_SHARE = 0.1

Sets = dict[str, list[list[str | None]] | str]  # a set's failing values by column, or its test of row r in place


def _parallel_settings(conn: psycopg.Connection) -> None:
    """Local to the connection's transaction: parallel plans, and room for a large file's groups to stay
    hashed in memory."""
    prefer_parallel(conn)
    conn.execute("set local work_mem = '256MB'")


def _mostly_distinct(conn: psycopg.Connection, kind: str, file_id: int, columns: list[str]) -> set[str]:
    """The columns of a record file whose values are mostly distinct, by the planner statistics of the
    file's own table (validate_file analyses it first). Other kinds share one table across files: none."""
    if not KIND_SPECS[kind].by_file or not columns:
        return set()
    # The file's table, or, for a file loaded in halves, its partitioned table (statistics of the whole)
    stats = conn.execute(
        "select s.attname, s.n_distinct, f.rows_total from pg_stats s, audit.submission_files f "
        "where s.schemaname = 'raw' and s.tablename = %s and s.attname = any(%s) and f.file_id = %s",
        (file_table_name(kind, file_id), columns, file_id)).fetchall()
    # n_distinct < 0 is minus the share of rows; otherwise a count of values
    return {column for column, n_distinct, rows in stats
            if (-n_distinct if n_distinct < 0 else n_distinct / max(rows or 1, 1)) > IN_PLACE_DISTINCT_SHARE}


def verdict_sets(conn: psycopg.Connection, kind: str, file_id: int, proven_dates: bool = False) -> Sets:
    """Each set of failing values the kind's rules read (Rule.sets), computed once for the file: its
    columns, each as a list (usually empty), or, for a set whose test runs on each row in place, that test
    (a column of mostly distinct values: see IN_PLACE_DISTINCT_SHARE; or a date column of a file whose
    every date cell the loader proved valid, `proven_dates`: what is left of its test then costs less
    than a pass over the values, and usually nothing).

    Separate statements, so that Postgres may spread each over its parallel workers (it runs no part
    of an INSERT in parallel). The sets of columns' values are all found on one pass over the distinct
    values of those columns together: a test is of the value alone, so a value of another column that
    fails a column's test can only match that column's rows where they hold that same failing value.
    (Finding the other sets meanwhile on a second connection gained nothing: that pass keeps both
    cores busy.)
    """
    sets: dict[str, R.ValueSet] = {}
    for rule in R.row_rules(kind):
        for name, value_set in rule.sets.items():
            if sets.setdefault(name, value_set) != value_set:
                raise ValidationError(f"{kind}: two rules read set {name} with different queries")
    columns = list(dict.fromkeys(value_set.column for value_set in sets.values() if value_set.column))
    spec = KIND_SPECS[kind]
    valid_dates = {c for c in columns if proven_dates and spec.column(c).type is ValueType.DATE}
    in_place = valid_dates | _mostly_distinct(conn, kind, file_id, [c for c in columns if c not in valid_dates])
    columns = [column for column in columns if column not in in_place]
    tests = {name: value_set.test for name, value_set in sets.items() if value_set.column in columns}
    others = {name: value_set for name, value_set in sets.items() if not value_set.column}
    rows_src = _file_rows(kind, file_id)

    def column_sets() -> Sets:
        if not tests:
            return {}
        distinct_tests = list(dict.fromkeys(tests.values()))  # the same test of several columns runs once
        flags = ", ".join(f"coalesce(({test}), false) as _f{i}" for i, test in enumerate(distinct_tests))
        any_failed = " or ".join(f"_f{i}" for i in range(len(distinct_tests)))
        # A scan per column (a parallel append) costs less than unpacking each row. offset 0: each test
        # runs on the distinct values, not pushed onto every row.
        cells = " union all ".join(f"select x.{column} as v from {rows_src} x where x.{column} is not null"
                                   for column in columns)
        distinct = f"(select distinct t.v from ({cells}) t offset 0)"
        # The planner, without statistics of expressions, guesses 200 values and sorts the workers' distinct
        # values to merge them: hashing is cheaper (tens of thousands of date-times).
        conn.execute("set local enable_sort = off")
        rows = conn.execute(
            f"select * from (select d.v, {flags} from {distinct} d where d.v is not null) t where {any_failed}"
        ).fetchall()
        conn.execute("set local enable_sort = on")
        return {name: [[row[0] for row in rows if row[1 + distinct_tests.index(test)]]]
                for name, test in tests.items()}

    def other_sets() -> Sets:
        found: Sets = {}
        for name, value_set in others.items():
            if value_set.probe and not conn.execute(value_set.probe.replace("{rows}", rows_src)).fetchone()[0]:
                found[name] = [[] for _ in range(value_set.width)]
                continue
            cur = conn.execute(value_set.query.replace("{rows}", rows_src))
            rows = cur.fetchall()
            found[name] = [[row[i] for row in rows] for i in range(len(cur.description))]
        return found

    _parallel_settings(conn)
    return {**column_sets(), **other_sets(), **{name: value_set.in_place(value_set.column in valid_dates)
                                                for name, value_set in sets.items() if value_set.column in in_place}}


def _verdict_flags(kind: str, file_id: int, sets: Sets) -> tuple[list[R.Rule], list[str], list[list[str | None]]]:
    """The quarantine rules of the kind, their flags (true when row r of the file fails the rule) and
    the flags' parameters: each set a rule reads, computed by verdict_sets (its values come from the
    file: parameters, never SQL text), or its test of row r's own cell where verdict_sets left it to
    the rows, or false for an empty set."""
    rules = [r for r in R.row_rules(kind) if r.severity is R.Severity.QUARANTINE_ROW]
    rows_src = _file_rows(kind, file_id)
    params: list[list[str | None]] = []

    def values(match) -> str:
        columns = sets[match.group(1)]
        assert not isinstance(columns, str)  # a set tested in place was replaced by its test
        params.extend(columns)
        placeholders = ", ".join(["%s::text[]"] * len(columns))
        return f"(select * from unnest({placeholders}))"

    def predicate(rule: R.Rule) -> str:
        text = rule.predicate
        for name, value_set in rule.sets.items():
            found = sets[name]
            if isinstance(found, str):
                text = text.replace(value_set.member, found)
            elif not any(found):  # x in (an empty set) is false, null x too: the planner drops the test
                text = text.replace(value_set.member, "false")
        return R.SET.sub(values, text).replace("{rows}", rows_src)

    flags = [f"coalesce(({predicate(rule)}), false)" for rule in rules]
    return rules, flags, params


def failing_rows(conn: psycopg.Connection, kind: str, file_id: int, sets: Sets) -> list[int]:
    """The row numbers of the file's rows that fail a quarantine rule (usually none).

    A SELECT, unlike the INSERT that quarantines them, may run on the parallel workers; its filter
    runs there too (no flags to bring back: each predicate is evaluated once per row either way)."""
    _, flags, params = _verdict_flags(kind, file_id, sets)
    any_failed = " or ".join(flags)
    return [row[0] for row in conn.execute(
        f"select r._row_number from raw.{kind} r where r._file_id = {int(file_id)} and ({any_failed})", params)]


def quarantine_sql(kind: str, file_id: int, run_id: str, sets: Sets,
                   rows: list[int] | None = None) -> tuple[str, list]:
    """The verdict: the file's rows that fail a rule (those numbered `rows`, found by failing_rows; all
    of the file's rows are tested when None) are copied, with every rule they failed and the observed
    values, to quarantine.<kind>.

    Each predicate is evaluated once per row (`offset 0` keeps the planner from inlining the flags
    into both the filter and the JSON). Returns the statement and its parameters.
    """
    spec = KIND_SPECS[kind]
    file_id = int(file_id)
    rules, flags, params = _verdict_flags(kind, file_id, sets)
    named = ", ".join(f"{flag} as _f{i}" for i, flag in enumerate(flags))
    failed = ", ".join(
        f"case when r._f{i} then jsonb_build_object('rule', {_lit(rule.name)}, 'severity', {_lit(str(rule.severity))}, "
        f"'message_vi', {_lit(rule.message_vi)}, 'message_en', {_lit(rule.message_en)}, "
        f"'observed', {rule.observed}) end"
        for i, rule in enumerate(rules))
    any_failed = " or ".join(f"r._f{i}" for i in range(len(rules)))
    cols = ", ".join(spec.keys)
    rcols = ", ".join(f"r.{c}" for c in spec.keys)
    return (
        f"insert into quarantine.{kind} (_file_id, _row_number, {cols}, failed_rules, run_id) "
        f"select r._file_id, r._row_number, {rcols}, to_jsonb(array_remove(array[{failed}], null)), {_lit(run_id)} "
        f"from (select r.*, {named} from raw.{kind} r where r._file_id = {file_id} "
        f"and (%s::integer[] is null or r._row_number = any(%s::integer[])) offset 0) r "
        f"where {any_failed}"
    ), [*params, rows, rows]


def verdict_counts(conn: psycopg.Connection, kind: str, file_id: int) -> dict[str, int]:
    """Rows of a file in quarantine per rule they failed."""
    return dict(conn.execute(
        f"select f.value->>'rule', count(*) from quarantine.{kind} q, jsonb_array_elements(q.failed_rules) f "
        "where q._file_id = %s group by 1", (file_id,)).fetchall())


# ------------------------------------------------------------------ entry points

def analyze(dsn: str, *tables: str, statistics_target: int | None = None) -> None:
    """Fresh planner statistics, committed (GX queries on its own connections). The loader has just COPYed
    into tables autovacuum has not seen yet; without statistics the planner picks nested loops over whole
    files: seconds per rule instead of milliseconds. A `statistics_target` below the default (100) samples
    fewer rows (300 per unit of it)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if statistics_target:
            conn.execute(f"set default_statistics_target = {int(statistics_target)}")
        for table in tables:
            if conn.execute("select to_regclass(%s) is null", (table,)).fetchone()[0]:
                continue  # a record file rejected at load has no table of its own
            schema, name = table.split(".")
            stale = conn.execute(
                "select coalesce(last_analyze, last_autoanalyze) is null "
                "or n_mod_since_analyze > greatest(500, n_live_tup / 10) "
                "from pg_stat_user_tables where schemaname = %s and relname = %s", (schema, name)).fetchone()
            if stale is None or stale[0]:
                conn.execute(f"analyze {table}")


def _file_row(conn: psycopg.Connection, file_id: int) -> dict:
    cur = conn.execute(
        "select file_id, kind, path, status, rows_total, header_mapping, error_code, error, has_proven_dates "
        "from audit.submission_files where file_id = %s", (file_id,))
    row = cur.fetchone()
    if row is None:
        raise ValidationError(f"no file {file_id} in audit.submission_files")
    return dict(zip([d.name for d in cur.description], row, strict=True))


def _analyze_rows(dsn: str, kind: str, file_id: int) -> None:
    """Fresh statistics of the table holding the file's rows of `kind` (see analyze)."""
    if KIND_SPECS[kind].by_file:
        # Only the file's own table (the parent's would sample all history), on a 3,000-row sample (a
        # tenth of the time): row counts, null fractions and the uniqueness of the dossier ids are what
        # the plans of its scans and of dbt's merge need.
        analyze(dsn, f"raw.{file_table_name(kind, file_id)}", statistics_target=10)
    else:
        analyze(dsn, f"raw.{kind}")


def validate_file(dsn: str, file_id: int, run_id: str) -> dict:
    """Validate one registered file; see the module docstring. Idempotent for (file, run)."""
    import pandas as pd

    started = time.perf_counter()
    with psycopg.connect(dsn) as conn, ThreadPoolExecutor(max_workers=1, thread_name_prefix="analyze") as side:
        row = _file_row(conn, file_id)
        kind = row["kind"]
        # The server analyses the file's rows on a connection of its own while GX gets ready here and judges
        # the file's shape: the two take one core each.
        analysed = (side.submit(_analyze_rows, dsn, kind, file_id)
                    if kind in KIND_SPECS and row["status"] not in ("duplicate", "failed") else None)
        reference.ensure_lookups(dsn)
        start_run(dsn, run_id)
        context = project.context_for(dsn)
        if row["status"] in ("duplicate", "failed"):
            return {"file_id": file_id, "status": row["status"], "rows_quarantined": 0, "warnings": 0}
        conn.execute("delete from audit.validation_results where run_id = %s and file_id = %s", (run_id, file_id))
        if kind in KIND_SPECS:
            conn.execute(f"delete from quarantine.{kind} where _file_id = %s", (file_id,))
            conn.commit()

        shape = file_shape(row)
        shape_result = run_suite(context, "submission_file", {"dataframe": pd.DataFrame([shape])}, run_id)
        if analysed is not None:
            analysed.result()
        if row["status"] == "rejected" or not all(er.success for er in shape_result.results):
            findings = store_results(conn, run_id, file_id, kind, shape_result, counts_rows=False)
            failed = [f for f in findings.values() if not f["success"]]
            first = failed[0] if failed else {"rule": "file_not_parsed", "message_vi": "", "message_en": ""}
            if row["status"] != "rejected":  # GX caught what the loader let through
                conn.execute(
                    "update audit.submission_files set error_code = %s, error = %s where file_id = %s",
                    (first["rule"], f"{first['message_en']} ({first['message_vi']})", file_id))
            conn.execute(
                "update audit.submission_files set status = 'rejected', rows_loaded = 0, rows_quarantined = 0, "
                "warnings = 0 where file_id = %s", (file_id,))
            conn.commit()
            return {"file_id": file_id, "status": "rejected", "rows_quarantined": 0, "warnings": 0,
                    "reason": first["rule"]}

        # The verdict first, committed alone (GX reads it on its own connection): a crash after it leaves
        # the file 'loaded' (never read by staging) with no results, and its next validation redoes it.
        # Then the kind's suite, one expectation per rule, over the file's batch and its verdict; every
        # result of the file is committed with its final status, in one transaction.
        sets = verdict_sets(conn, kind, file_id, row["has_proven_dates"])
        failing = failing_rows(conn, kind, file_id, sets)
        quarantined = 0
        if failing:  # (a file failing almost whole is tested again whole rather than by a huge list)
            statement, params = quarantine_sql(kind, file_id, run_id, sets,
                                               failing if len(failing) <= MANY_FAILING else None)
            quarantined = conn.execute(statement, params).rowcount
        conn.commit()
        store_results(conn, run_id, file_id, kind, shape_result, counts_rows=False)
        result = run_suite(context, kind, {"file_id": file_id}, run_id)
        findings = store_results(conn, run_id, file_id, kind, result)
        counts = verdict_counts(conn, kind, file_id)
        for f in findings.values():
            if f["severity"] == R.Severity.QUARANTINE_ROW and counts.get(f["rule"], 0) != f["rows_failed"]:
                raise ValidationError(f"file {file_id}: rule {f['rule']} failed {f['rows_failed']} rows in GX "
                                      f"but {counts.get(f['rule'], 0)} in the quarantine statement")
        warnings = sum(f["rows_failed"] for f in findings.values() if f["severity"] == R.Severity.WARN)
        conn.execute(
            "update audit.submission_files set status = 'accepted', rows_quarantined = %s, "
            "rows_loaded = rows_total - %s, warnings = %s where file_id = %s",
            (quarantined, quarantined, warnings, file_id))
        conn.commit()
    log.info("validated file %s (%s) in %.2fs: %s quarantined, %s warnings", file_id, kind,
             time.perf_counter() - started, quarantined, warnings)
    return {"file_id": file_id, "status": "accepted", "rows_quarantined": quarantined, "warnings": warnings}
