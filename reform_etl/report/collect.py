"""What the run left in the warehouse, read once for the page, the Data Docs and findings.csv (read only)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from reform_etl.kinds import KIND_SPECS


def identity_columns(kind: str) -> list[str]:
    """The columns that say whose row it is: unit, period (or year, or date) and the kind's key."""
    spec = KIND_SPECS[kind]
    return list(dict.fromkeys(("unit_code", spec.period_column, *spec.key)))


def connect(dsn: str) -> psycopg.Connection:
    """A read-only session: rendering the report never writes to the warehouse (Postgres refuses any write)."""
    conn = psycopg.connect(dsn)
    conn.read_only = True
    return conn


def fetch(conn: psycopg.Connection, query: str, params: tuple) -> list[dict]:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def read_run(dsn: str, run_id: str) -> dict:
    """The run, its files, results (samples with whose rows they are), dbt decision, flags and unit names."""
    with connect(dsn) as conn:
        run = fetch(conn, "select * from audit.validation_runs where run_id = %s", (run_id,))
        pipeline = fetch(conn, "select * from audit.pipeline_runs where run_id = %s", (run_id,))
        files = fetch(conn, """
            select f.file_id, f.kind, f.path, f.file_name, f.status, f.rows_total, f.rows_loaded, f.rows_quarantined,
                   f.warnings, f.error_code, f.error, f.duplicate_of, f.received_at,
                   (select array_agg(distinct p.unit_code order by p.unit_code) from audit.submission_partitions p
                     where p.file_id = f.file_id) as units,
                   (select min(p.period) from audit.submission_partitions p where p.file_id = f.file_id) as period_from,
                   (select max(p.period) from audit.submission_partitions p where p.file_id = f.file_id) as period_to
            from audit.submission_files f
            where f.run_id = %s or f.file_id in (select file_id from audit.validation_results where run_id = %s)
            order by f.file_id""", (run_id, run_id))
        results = fetch(conn, """
            select r.*, f.file_name from audit.validation_results r
            left join audit.submission_files f using (file_id)
            where r.run_id = %s order by r.file_id nulls last, r.result_id""", (run_id,))
        # What dbt did in this run (reform_etl.transform.decision.decide_dbt): full build, refresh or skipped.
        dbt = fetch(conn, "select mode, status, reason from audit.transform_runs where run_id = %s "
                     "order by transform_id desc limit 1", (run_id,)) if conn.execute(
            "select to_regclass('audit.transform_runs')").fetchone()[0] else []
        par_incomplete = _par_incomplete(conn, run_id)
        # Decision 766: where our score and the portal's published score differ by more than 0.01 (after dbt).
        reconciliation = fetch(conn, "select unit_code, period, level, code, our_score, published_score, difference "
                                "from marts.rpt_service_index_reconciliation order by unit_code, period, level, code "
                                "limit 200", ()) if conn.execute(
            "select to_regclass('marts.rpt_service_index_reconciliation')").fetchone()[0] else []
        unit_names = dict(conn.execute(
            "select distinct on (unit_code) unit_code, unit_name from audit.ref_units "
            "order by unit_code, valid_from desc").fetchall())
        for r in results:
            if not r["success"] and r["sample_failing_rows"]:
                r["sample_failing_rows"] = _identify_sample(conn, r, unit_names)
    return {"run": run[0] if run else {}, "pipeline": pipeline[0] if pipeline else {}, "files": files,
            "results": results, "unit_names": unit_names, "dbt": dbt[0] if dbt else None,
            "reconciliation": reconciliation,
            "par_incomplete": par_incomplete}


def _par_incomplete(conn: psycopg.Connection, run_id: str) -> list[dict]:
    """rpt_par_index rows of the unit-years this run's PAR files report that miss leaves (none before dbt built it)."""
    if not conn.execute("select to_regclass('marts.rpt_par_index')").fetchone()[0]:
        return []
    return fetch(conn, """
        select i.unit_code, i.year, i.leaves_scored, i.leaves_expected, i.missing_criteria, i.rank_in_province
        from marts.rpt_par_index i
        where not i.is_complete and exists (
            select 1 from audit.submission_partitions p, audit.submission_files f
            where f.file_id = p.file_id and p.kind = 'par_scores' and p.unit_code = i.unit_code
              and p.period = lpad(i.year::text, 4, '0')
              and (f.run_id = %s or f.file_id in (select file_id from audit.validation_results where run_id = %s)))
        order by i.year, i.unit_code""", (run_id, run_id))


def _identify_sample(conn: psycopg.Connection, result: dict, names: dict[str, str]) -> list:
    """The sample failing rows of a result with whose rows they are: the unit (code and name), period and key
    of each row, read from raw by its row number (GX's sample holds the row number and the failing columns)."""
    sample = result["sample_failing_rows"]
    if not isinstance(sample, list) or not all(isinstance(s, dict) for s in sample):
        return sample
    kind, file_id = result.get("kind"), result.get("file_id")
    found: dict[int, dict] = {}
    if kind in KIND_SPECS and file_id is not None and all("_row_number" in s for s in sample):
        cols = identity_columns(kind)
        query = sql.SQL("select _row_number, {} from {} where _file_id = %s and _row_number = any(%s)").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier("raw", kind))
        for number, *values in conn.execute(query, (file_id, [s["_row_number"] for s in sample])):
            found[number] = dict(zip(cols, values, strict=True))
    out = []
    for s in sample:
        who = found.get(s.get("_row_number"), {})
        row = {"_row_number": s["_row_number"]} if "_row_number" in s else {}
        row |= who | {k: v for k, v in s.items() if k not in row and k not in who}
        if row.get("unit_code"):  # the unit's name right after its code
            at = list(row).index("unit_code") + 1
            items = list(row.items())
            row = dict(items[:at] + [("unit_name", names.get(row["unit_code"], ""))] + items[at:])
        out.append(row)
    return out
