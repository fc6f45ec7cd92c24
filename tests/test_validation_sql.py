"""SQL helpers of the validation (reform_etl/sql/010_validation.sql)."""

from __future__ import annotations

import os

import psycopg
import pytest

EXTERNAL_SERVER = bool(os.environ.get("WAREHOUSE_DSN"))  # read before the fixtures point it at a test database


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-02-29", "2024-02-29"), ("2023-02-29", None), ("2024-04-31", None), ("2024-13-01", None),
    ("abc", None), ("", None), (None, None), ("0000-01-01", None), ("2024-03-05T10:00:00", "2024-03-05"),
    ("2024-02-29T23:59:59", "2024-02-29"), ("2024-03-05 garbage", None), ("1e309", None),
    # a raw date cell is in the loader's canonical form, or it names no date the marts could read
    ("2024-03-05 10:00", None), ("2024-03-05T10:00:00.5+07:00", None), ("2024-03-05T10:00", None),
    # a real day, but no time of day: staging could not read it (the cast would fail the night's dbt run)
    ("2026-09-01T25:00:00", None), ("2026-09-01T10:61:00", None), ("2026-09-01T10:00:61", None),
    ("2026-09-01T24:00:00", None),
    # what PostgreSQL's lenient timestamp input would read as a date
    ("2026-09-1 T10:00:00", None), (" 026-09-01", None), ("+026-09-01", None), ("2026-09-1Z", None),
    ("2026-09-13T16:+6:00", None),
])
def test_try_date(db, text, expected):
    (value,) = db.execute("select audit.try_date(%s)::text", (text,)).fetchone()
    assert value == expected


def test_a_date_cell_is_valid_only_in_canonical_form_whatever_character_replaces_a_digit(db):
    """raw.is_date_cell (validation and staging) against every printable ASCII character put in every place
    of a canonical date and date-time: what it accepts is digits in the canonical shape."""
    (accepted, wrong) = db.execute(
        "with base (b) as (values ('2026-09-13T16:06:00'), ('2026-09-13')), "
        "variants as (select overlay(b placing chr(c) from p for 1) as v from base, generate_series(1, 19) p, "
        "generate_series(32, 126) c where p <= length(b)) "
        "select count(*) filter (where raw.is_date_cell(v)), count(*) filter (where raw.is_date_cell(v) "
        "and v !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2})?$') from variants").fetchone()
    assert accepted > 100 and wrong == 0


def test_the_loaders_scan_proves_valid_exactly_the_date_cells_is_date_cell_accepts(db):
    """The line scan's date form (canonical_lines.VALID_DATE) against raw.is_date_cell: a line it proves lets
    the verdict skip the file's date tests. Every year with the days around the end of February and of the
    year; every month and day of years at each leap rule (and year 0000, which PostgreSQL refuses); every
    hour and minute, at seconds 00, 59, 60 and 99, and every second."""
    import re2

    from reform_etl.ingest.canonical_lines import VALID_DATE

    values = [f"{y:04d}-{md}" for y in range(10000) for md in ("01-01", "02-28", "02-29", "02-30", "12-31")]
    values += [f"{y:04d}-{m:02d}-{d:02d}" for y in (0, 1, 4, 100, 400, 1900, 2000, 2024, 2025, 2100, 9999)
               for m in range(100) for d in range(100)]
    values += [f"2024-02-29T{h:02d}:{m:02d}:{s:02d}" for h in range(100) for m in range(100) for s in (0, 59, 60, 99)]
    values += [f"2025-12-31T23:59:{s:02d}" for s in range(100)] + ["2026-09-13T", "2026-09-13T16:06", "2026-9-13"]
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    form = re2.compile(VALID_DATE, options)
    accepted = [v for (v,) in db.execute(
        "select v from unnest(%s::text[]) with ordinality u (v, n) where raw.is_date_cell(v) order by n",
        (values,)).fetchall()]
    proven = [v for v in values if form.fullmatch(v.encode())]
    assert len(accepted) > 30_000 and proven == accepted


@pytest.mark.parametrize("datestyle", ["ISO, MDY", "SQL, DMY", "German", "Postgres, YMD"])
def test_a_date_cell_reads_the_same_under_every_datestyle(db, datestyle):
    db.execute(f"set datestyle = '{datestyle}'")
    row = db.execute("select raw.is_date_cell('2026-09-13T16:06:00'), raw.is_date_cell('2026-09-13'), "
                     "raw.is_date_cell('2026-13-09'), raw.date_cell_timestamp('2026-09-13T16:06:00') "
                     "= timestamp '2026-09-13 16:06:00'").fetchone()
    assert row == (True, True, False, True)


def test_try_date_runs_inside_a_parallel_query(db):
    """A PL/pgSQL exception handler would fail here: 'cannot start subtransactions during a parallel operation'."""
    db.execute("create temp table t as select case when i % 7 = 0 then '2023-02-30' else '2024-01-0' || (1 + i % 9) "
               "end as d from generate_series(1, 20000) i")
    db.execute("create table public.try_date_probe as select * from t")
    db.execute("analyze public.try_date_probe")
    for setting in ("parallel_setup_cost = 0", "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0",
                    "max_parallel_workers_per_gather = 2"):
        db.execute(f"set {setting}")
    (bad,) = db.execute("select count(*) from public.try_date_probe where audit.try_date(d) is null").fetchone()
    assert bad == 20000 // 7


def test_the_embedded_server_gives_a_parallel_scan_one_worker_per_core_beside_its_leader(db):
    """The validation passes are parallel scans of the file: Postgres' default of two workers put three
    processes on two cores, each pass 10 to 25 % slower."""
    if EXTERNAL_SERVER:
        pytest.skip("a server of its own: its administrator sets its workers")
    (workers,) = db.execute("show max_parallel_workers_per_gather").fetchone()
    assert int(workers) == max(1, (os.cpu_count() or 2) - 1)


def test_gx_file_suite_rejects_what_the_loader_let_through(db, warehouse_dsn, tmp_path, monkeypatch):
    """The submission_file suite re-derives required columns and data rows from the registry record."""
    from pathlib import Path

    from reform_etl import ingest
    from reform_etl import validation as V

    monkeypatch.setenv("REFORM_SEEDS", str(Path(__file__).parent / "bad_inputs" / "seeds"))
    monkeypatch.setenv("REFORM_ARCHIVE", str(tmp_path / "archive"))
    landing = tmp_path / "landing"
    (landing / "it_kpis").mkdir(parents=True)
    (landing / "it_kpis" / "k.csv").write_text("unit_code,period,kpi_code,numerator,denominator\n"
                                               "227,2024-01,DVC_TOAN_TRINH,1,2\n", encoding="utf-8")
    db.execute("insert into audit.pipeline_runs (run_id) values ('gx-reject')")
    (loaded,) = ingest.load_paths([landing], run_id="gx-reject", landing=landing, dsn=warehouse_dsn)
    assert loaded.status == "loaded"
    # a loader bug (simulated): the mapping it recorded lacks the denominator
    db.execute("update audit.submission_files set header_mapping = header_mapping - 'denominator' "
               "where file_id = %s", (loaded.file_id,))
    outcome = V.validate_file(warehouse_dsn, loaded.file_id, "gx-reject")
    assert (outcome["status"], outcome["reason"]) == ("rejected", "missing_required_columns")
    row = db.execute("select status, error_code, rows_loaded from audit.submission_files where file_id = %s",
                     (loaded.file_id,)).fetchone()
    assert row == ("rejected", "missing_required_columns", 0)


def _rules_by_row(db, file_id: int) -> dict[int, list[str]]:
    """The verdict on a record file: its quarantined rows' numbers, each with the rules it failed."""
    return dict(db.execute(
        "select _row_number, array_agg(f->>'rule' order by f->>'rule') from quarantine.dossiers q, "
        "jsonb_array_elements(q.failed_rules) f where q._file_id = %s group by 1", (file_id,)).fetchall())


def _has_proven_dates(db, file_id: int) -> bool:
    return db.execute("select has_proven_dates from audit.submission_files where file_id = %s",
                      (file_id,)).fetchone()[0]


@pytest.mark.parametrize(("many_failing", "in_place_share", "split_bytes"),
                         [(100_000, 2.0, 1 << 40), (0, 2.0, 1 << 40), (100_000, -1.0, 1 << 40), (100_000, 2.0, 1)],
                         ids=["rows-by-number", "file-tested-again", "dates-tested-in-place", "file-in-halves"])
def test_the_verdict_tests_each_column_against_the_values_of_all_date_columns(db, warehouse_dsn, tmp_path,
                                                                               monkeypatch, many_failing,
                                                                               in_place_share, split_bytes):
    """The date sets come from one pass over the distinct values of every date column together, or, for
    columns of mostly distinct values, from each row's own cells (the same verdict). A due date in the future
    (normal) that is another row's receipt date quarantines only that receipt; an impossible date, or time of
    day, is caught in whichever column holds it; duplicate keys are listed once the probe finds fewer keys
    than rows; a unit created in the middle of a month is checked day by day in that month. The failing rows
    are quarantined by number, or, past MANY_FAILING of them, by testing the whole file again. A file loaded
    in two halves (a partitioned table of its own) gets the same verdict."""
    from pathlib import Path

    from reform_etl import ingest, reference
    from reform_etl import validation as V
    from reform_etl.ingest import copy as ingest_copy
    from reform_etl.validation import verdict

    reference.ensure_lookups(warehouse_dsn)
    db.execute("insert into audit.ref_units (unit_code, unit_name, level, valid_from, source) "
               "values ('99991', 'Xã giữa tháng', 'commune', '2026-09-15', 'test') on conflict do nothing")

    monkeypatch.setenv("REFORM_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setattr(verdict, "MANY_FAILING", many_failing)
    monkeypatch.setattr(verdict, "IN_PLACE_DISTINCT_SHARE", in_place_share)
    monkeypatch.setattr(ingest_copy, "SPLIT_COPY_BYTES", split_bytes)
    landing = tmp_path / "landing"
    (landing / "dossiers").mkdir(parents=True)
    unit = "07900"  # Phường Việt Trì, a 2025 commune
    rows = [
        # due in the future: fine (the id differs from case to case: else the same bytes, a duplicate file)
        (f"D1-{many_failing}-{in_place_share}-{split_bytes}", "2026-09-02T08:00:00", "2099-01-01", ""),
        ("D2", "2099-01-01", "2099-01-05", ""),  # received in the future
        ("D3", "2026-09-03", "2026-09-10", "2026-02-30"),  # impossible completion date
        ("D4", "2026-09-03", "2026-02-30", ""),  # the same impossible date, as a due date
        ("D5", "2026-09-04", "2026-09-10", ""),
        ("D5", "2026-09-05", "2026-09-10", ""),  # the same dossier twice
        ("D8", "2026-09-03", "2026-09-06T10:61:00", ""),  # a real day, but no time of day
        ("D9", "2026-09-04T24:00:00", "2026-09-10", ""),  # a receipt at no time of day: no day to place it in
    ]
    lines = ["dossier_id,unit_code,field_code,procedure_code,channel,received_at,due_at,completed_at,status,satisfied",
             *(f"{d},{unit},HT,1.001234,online,{r},{due},{done},processing," for d, r, due, done in rows),
             "D6,99991,HT,1.001234,online,2026-09-14T16:00:00,2026-09-20,,processing,",  # the day before it existed
             "D7,99991,HT,1.001234,online,2026-09-15T08:00:00,2026-09-20,,processing,"]
    path = landing / "dossiers" / "records.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db.execute("insert into audit.pipeline_runs (run_id) values ('verdict-sets') on conflict do nothing")
    (loaded,) = ingest.load_paths([Path(path)], run_id="verdict-sets", landing=landing, dsn=warehouse_dsn)
    halves = db.execute("select count(*) from pg_inherits where inhparent = to_regclass(%s)",
                        (f"raw.dossiers__file_{loaded.file_id}",)).fetchone()[0]
    assert halves == (2 if split_bytes == 1 else 0)
    # lines with an impossible date are not proven canonical: the verdict tests the file's dates itself
    assert _has_proven_dates(db, loaded.file_id) is False
    outcome = V.validate_file(warehouse_dsn, loaded.file_id, "verdict-sets")
    assert outcome["status"] == "accepted" and outcome["rows_quarantined"] == 8
    verdict = _rules_by_row(db, loaded.file_id)
    assert verdict == {3: ["period_in_future"], 4: ["date_invalid"], 5: ["date_invalid"],
                       6: ["duplicate_key_in_file"], 7: ["duplicate_key_in_file"], 8: ["date_invalid"],
                       9: ["period_invalid"], 10: ["unit_not_valid_in_period"]}


@pytest.mark.parametrize(("split_bytes", "odd_line", "proven"), [
    (1 << 40, "", True), (1, "", True),
    (1 << 40, "D10,07900,HT,1.001234,online,03/09/2026,2026-09-10,,processing,", False),
    (1, "D10,07900,HT,1.001234,online,03/09/2026,2026-09-10,,processing,", False),  # in the second half
], ids=["whole", "in-halves", "a-date-to-normalise", "in-halves-a-date-to-normalise"])
def test_a_file_whose_every_date_the_loader_proved_valid_gets_the_same_verdict(db, warehouse_dsn, tmp_path,
                                                                            monkeypatch, split_bytes, odd_line, proven):
    """Where the line scan proved every line canonical (whole, or both halves), every date cell is valid
    (canonical_lines.VALID_DATE): the verdict makes no pass over the date values, and what is left of the date
    rules (a receipt in the future) is tested on each row. A line the loader had to normalise (a dd/mm/yyyy
    date) leaves the file unproven, tested as any other. The verdict is the same either way."""
    from reform_etl import ingest, reference
    from reform_etl import validation as V
    from reform_etl.ingest import copy as ingest_copy

    reference.ensure_lookups(warehouse_dsn)
    db.execute("insert into audit.ref_units (unit_code, unit_name, level, valid_from, source) "
               "values ('99991', 'Xã giữa tháng', 'commune', '2026-09-15', 'test') on conflict do nothing")
    monkeypatch.setenv("REFORM_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setattr(ingest_copy, "SPLIT_COPY_BYTES", split_bytes)
    landing = tmp_path / "landing"
    (landing / "dossiers").mkdir(parents=True)
    lines = ["dossier_id,unit_code,field_code,procedure_code,channel,received_at,due_at,completed_at,status,satisfied",
             f"P1-{split_bytes}-{proven},07900,HT,1.001234,online,2026-09-02T08:00:00,2099-01-01,,processing,",
             "D2,07900,HT,1.001234,online,2099-01-01,2099-01-05,,processing,",  # received in the future
             "D3,07900,HT,1.001234,online,2026-09-03,2026-09-10,2026-09-09T17:30:00,completed,true",
             "D5,07900,HT,1.001234,online,2026-09-04,2026-09-10,,processing,",
             "D5,07900,HT,1.001234,online,2026-09-05,2026-09-10,,processing,",  # the same dossier twice
             "D6,99991,HT,1.001234,online,2026-09-14T16:00:00,2026-09-20,,processing,",  # before the unit existed
             "D7,99991,HT,1.001234,online,2026-09-15T08:00:00,2026-09-20,,processing,",
             *([odd_line] if odd_line else [])]
    path = landing / "dossiers" / "proven.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db.execute("insert into audit.pipeline_runs (run_id) values ('proven-dates') on conflict do nothing")
    (loaded,) = ingest.load_paths([path], run_id="proven-dates", landing=landing, dsn=warehouse_dsn)
    assert _has_proven_dates(db, loaded.file_id) is proven
    with psycopg.connect(warehouse_dsn) as conn:  # a proven file's date sets are all tested on the rows
        sets = V.verdict_sets(conn, "dossiers", loaded.file_id, proven)
    tests = [sets[f"set_{column}_{name}"] for column, name in (("received_at", "invalid"), ("received_at", "future"),
                                                              ("due_at", "invalid"), ("completed_at", "invalid"))]
    assert all(isinstance(t, str) and "is_date_cell" not in t for t in tests) is proven
    outcome = V.validate_file(warehouse_dsn, loaded.file_id, "proven-dates")
    assert outcome["status"] == "accepted" and outcome["rows_quarantined"] == 4
    verdict = _rules_by_row(db, loaded.file_id)
    assert verdict == {3: ["period_in_future"], 5: ["duplicate_key_in_file"], 6: ["duplicate_key_in_file"],
                       7: ["unit_not_valid_in_period"]}


@pytest.mark.parametrize(("channel", "fails"), [
    ("online", False), ("Online", False), ("TRỰC TUYẾN", False), ("bưu chính công ích", False), ("BCCI", False),
    ("fax", True), (None, True), ("online ", False),  # raw.channel_of, staging's reading too, trims
    ("Truc Tiep", False), ("buu chinh cong ich", False),
])
def test_channel_rule_takes_any_case_of_the_known_names(db, channel, fails):
    from reform_etl.validation import rules as R

    [rule] = [r for r in R.row_rules("dossiers") if r.name == "channel_unknown"]
    one_row = "(select %(c)s::text as channel)"
    predicate = R.spelled_out(rule).replace("{rows}", one_row)
    (failed,) = db.execute(f"select coalesce(({predicate}), false) from {one_row} r", {"c": channel}).fetchone()
    assert failed is fails


def test_a_record_file_rejected_at_load_is_validated_without_a_table_of_its_own(db, warehouse_dsn, tmp_path,
                                                                               monkeypatch):
    """Its rows never reached raw (the load rolled back, its table with it): the file suite still runs."""
    from reform_etl import ingest
    from reform_etl import validation as V

    monkeypatch.setenv("REFORM_ARCHIVE", str(tmp_path / "archive"))
    landing = tmp_path / "landing"
    (landing / "dossiers").mkdir(parents=True)
    path = landing / "dossiers" / "header_only.csv"
    path.write_text("dossier_id,unit_code,field_code,procedure_code,channel,received_at,due_at,completed_at,"
                    "status,satisfied,note_rejected_at_load\n", encoding="utf-8")
    db.execute("insert into audit.pipeline_runs (run_id) values ('rejected-record') on conflict do nothing")
    (loaded,) = ingest.load_paths([path], run_id="rejected-record", landing=landing, dsn=warehouse_dsn)
    assert (loaded.status, loaded.error_code) == ("rejected", "empty")
    outcome = V.validate_file(warehouse_dsn, loaded.file_id, "rejected-record")
    assert outcome["status"] == "rejected"
