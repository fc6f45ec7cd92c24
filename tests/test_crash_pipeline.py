"""Crash safety of the whole pipeline, with real processes killed by SIGKILL (issue 7, item 1).

Faults injected (each on its own database of the session's embedded Postgres, compared with an
uninterrupted run of the same files on a fresh database):

1. ``kill -9`` of a ``reform-etl load`` process while it validates: struck when the run's other files
   are 'accepted' and the last one, the file with rows to quarantine, is still 'loaded' while the
   validating connection holds uncommitted rows in audit.validation_results (its verdict, the
   quarantine rows GX reads, is committed; GX has run on it; its results and counts are not).
   Then ``reform-etl load`` again: the file the crash left 'loaded' is validated by the next run.
2. ``kill -9`` of a ``dbt build`` process while it builds the marts: struck when the dimensions and at
   least one fact/report table exist but not all marts, and a statement on a marts relation is
   running. Then ``dbt build`` again (incremental facts that exist take their incremental path).

Data: a small slice of the sample province (3 files, ~3.9k rows) and one hand-made II.06a file
with rows to quarantine, so the module stays near two minutes on two cores. The row counts before
the kill, after it and after the re-run are printed (``pytest -s``) and asserted.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from reform_etl import sample
from reform_etl.config import settings
from reform_etl.transform import dbt_env

pytestmark = pytest.mark.slow

SAMPLE_FILES = ("par_scores/2024_tu_danh_gia.csv", "dossier_stats/2025_6thang_dau.csv",
                "it_kpis/cntt_cap_huyen_2024-2025.xlsx")
BAD_FILE = "2024_h2_co_loi.csv"
HEADER = ["unit_code", "period", "field_code", "received_carried_over", "received_online", "received_direct",
          "received_postal", "resolved_early", "resolved_on_time", "resolved_late", "pending_in_time",
          "pending_overdue"]
# Rows 2-3 good; row 4 an unknown unit; row 5 unbalanced (received 10, resolved + pending 9);
# rows 6-7 the same key twice; row 8 a negative count.
BAD_ROWS = [
    ["227", "2024-07", "", 0, 5, 5, 0, 4, 4, 0, 2, 0],
    ["227", "2024-08", "", 2, 5, 5, 0, 4, 6, 0, 2, 0],
    ["99999", "2024-07", "", 0, 5, 5, 0, 4, 4, 0, 2, 0],
    ["227", "2024-09", "", 0, 5, 5, 0, 4, 4, 0, 1, 0],
    ["227", "2024-10", "", 0, 5, 5, 0, 4, 4, 0, 2, 0],
    ["227", "2024-10", "", 0, 5, 5, 0, 4, 4, 0, 2, 0],
    ["227", "2024-11", "", 0, -5, 5, 0, 0, 0, 0, 0, 0],
]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    sample.generate(root / "sample")
    landing = root / "landing"
    for name in SAMPLE_FILES:
        (landing / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / "sample" / name, landing / name)  # keeps the sample's arrival time (mtime)
    bad = landing / "dossier_stats" / BAD_FILE
    with bad.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *BAD_ROWS])
    stamp = time.time() - 3600  # arrives last: loaded last, validated last
    os.utime(bad, (stamp, stamp))
    return landing


def _env(dsn: str, tmp: Path) -> dict[str, str]:
    return dict(os.environ, WAREHOUSE_DSN=dsn, REFORM_ARCHIVE=str(tmp / "archive"),
                REFORM_REPORTS=str(tmp / "reports"), PYTHONWARNINGS="ignore")


def _load(landing: Path, dsn: str, tmp: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reform_etl.cli", "load", str(landing), "--landing", str(landing)],
        env=_env(dsn, tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


# Seeds, models and snapshots; dbt's data tests change no rows and the dbt modules run them already
# (two builds with 300 tests each would double this module's time on two shared cores).
NO_TESTS = ("--exclude-resource-type", "test")


def _dbt_build(dsn: str, tmp: Path, *extra: str) -> subprocess.Popen:
    target = tmp / "dbt-target"
    project = str(settings().dbt_project)
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("dbt")), "build", "--project-dir", project,
         "--profiles-dir", project, "--target-path", str(target), "--log-path",
         str(target / "logs"), *extra],
        env={**_env(dsn, tmp), **dbt_env(dsn)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=tmp, start_new_session=True)


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    output = process.communicate(timeout=timeout)[0]
    assert process.returncode == 0, output[-4000:]
    return output


def _kill_9(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the process and anything it started, nothing else
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def _wait_for(dsn: str, query: str, process: subprocess.Popen, what: str, params: tuple | None = None,
              timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute(query, params).fetchone()[0]:
                return
            if process.poll() is not None:
                pytest.fail(f"the process ended before {what}: {process.stdout.read()[-3000:]}")
            time.sleep(0.01)
    pytest.fail(f"{what}: not seen in {timeout}s")


def _wait_until_alone(dsn: str) -> None:
    """The server has noticed the dead client: no other session on the database, its transaction rolled back."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(300):
            others = conn.execute("select count(*) from pg_stat_activity where datname = current_database() "
                                  "and pid <> pg_backend_pid()").fetchone()[0]
            if not others:
                return
            time.sleep(0.1)
    pytest.fail("sessions of the killed process are still open")


def run_level_warnings(dsn: str) -> dict[str, int]:
    """Rows flagged by the run-level rules (a unit missing for a period others reported), over all runs."""
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute(
            "select suite || '.' || expectation, sum(rows_failed)::int from audit.validation_results "
            "where file_id is null group by 1 order by 1").fetchall())


def state(dsn: str) -> dict:
    """Per file (by name): registry status and counts, raw rows (and distinct row numbers), quarantine rows."""
    with psycopg.connect(dsn) as conn:
        files = {
            name: {"status": status, "rows_total": total, "rows_loaded": loaded, "rows_quarantined": quarantined,
                   "warnings": warnings, "raw": 0, "raw_distinct": 0, "quarantine": 0, "quarantine_distinct": 0}
            for name, status, total, loaded, quarantined, warnings in conn.execute(
                "select file_name, status, rows_total, rows_loaded, rows_quarantined, warnings "
                "from audit.submission_files order by file_id")
        }
        registered = conn.execute("select count(*), count(distinct file_name) from audit.submission_files").fetchone()
        assert registered[0] == registered[1], "a file is registered twice"
        for kind in ("par_scores", "dossier_stats", "it_kpis", "dossiers"):
            for schema in ("raw", "quarantine"):
                for name, rows, distinct in conn.execute(
                        f"select f.file_name, count(*), count(distinct t._row_number) from {schema}.{kind} t "
                        f"join audit.submission_files f on f.file_id = t._file_id group by 1"):
                    files[name][schema] = rows
                    files[name][f"{schema}_distinct"] = distinct
    return files


def _show(label: str, files: dict) -> None:
    print(f"\n{label}:")
    for name, row in files.items():
        print(f"  {name}: {row}")


# The other files are accepted; the file with rows to quarantine is being validated (GX results written,
# not committed).
VALIDATING = f"""
select exists (select from audit.submission_files where status = 'accepted')
   and (select array_agg(file_name) from audit.submission_files where status = 'loaded') = array['{BAD_FILE}']
   and exists (select from quarantine.dossier_stats q join audit.submission_files f on f.file_id = q._file_id
               where f.file_name = '{BAD_FILE}')
   and exists (select from pg_locks l join pg_class c on c.oid = l.relation
               where c.relname = 'validation_results' and l.mode = 'RowExclusiveLock' and l.granted
                 and l.pid <> pg_backend_pid())
"""


@pytest.fixture(scope="module")
def loads(make_database, landing, tmp_path_factory) -> dict:
    """Two databases, the same files: an uninterrupted `reform-etl load` on one; on the other a load
    killed mid-validation, then run again. The two run side by side (two cores)."""
    reference = {"dsn": make_database("crash_reference"), "tmp": tmp_path_factory.mktemp("reference")}
    dsn, tmp = make_database("crash_validate"), tmp_path_factory.mktemp("killed")
    reference_loader = _load(landing, reference["dsn"], reference["tmp"])
    loader = _load(landing, dsn, tmp)
    _wait_for(dsn, VALIDATING, loader, "the last file's validation in progress")
    _kill_9(loader)
    _wait_until_alone(dsn)
    after_kill = state(dsn)
    rerun = _load(landing, dsn, tmp)
    _finish(reference_loader)
    _finish(rerun)
    reference["files"] = state(reference["dsn"])
    after_rerun = state(dsn)
    _show("uninterrupted run", reference["files"])
    _show("after kill -9 during validation", after_kill)
    _show("after the next `reform-etl load`", after_rerun)
    return {"dsn": dsn, "tmp": tmp, "after_kill": after_kill, "after_rerun": after_rerun, "reference": reference}


def test_kill_9_during_validation_then_rerun_equals_an_uninterrupted_run(loads):
    """Fault: SIGKILL to `reform-etl load` while GX validates a file (after another file was accepted).

    After the kill every file is loaded exactly once in raw, the validated file(s) are 'accepted' with
    their quarantine rows, the one being validated is still 'loaded' (never read by staging) with its
    verdict and no results or counts (its last transaction rolled back). The next `reform-etl load`
    loads nothing again, validates what was left 'loaded', and every file's raw/quarantine counts,
    status and rows_loaded / rows_quarantined / warnings equal those of the uninterrupted run.

    Counts seen (raw / quarantine / status): uninterrupted 1040 + 78 + 2808 + 7 raw, 5 quarantined,
    4 accepted, 2 warnings; after the kill 3933 raw, the bad file's 5 verdict rows, 3 accepted + the
    bad file 'loaded', 0 warnings (the cross-file checks never ran); after the re-run the uninterrupted figures exactly,
    and the run-level warnings (12 rows of units missing for a period) too.
    """
    after_kill, after_rerun = loads["after_kill"], loads["after_rerun"]
    expected = loads["reference"]["files"]
    assert set(after_kill) == set(expected)  # every file registered once, in the killed run
    statuses = {row["status"] for row in after_kill.values()}
    assert statuses == {"accepted", "loaded"}, after_kill
    for name, row in after_kill.items():
        assert row["raw"] == row["raw_distinct"] == expected[name]["raw"], name  # loading was complete
        if row["status"] == "accepted":
            assert row["quarantine"] == expected[name]["quarantine"], name
        else:  # the file being validated: only its verdict was committed, none of its results or counts
            assert row["quarantine"] == expected[name]["quarantine"] and not row["rows_quarantined"], (name, row)
    with psycopg.connect(loads["dsn"]) as conn:
        orphans = conn.execute(
            "select count(*) from audit.validation_results r join audit.submission_files f using (file_id) "
            "where f.status = 'loaded'").fetchone()[0]
    assert orphans == 0, "results of a rolled-back validation are visible"

    assert after_rerun == expected
    # the run-level warnings of the killed run's files (computed by the next run) equal the uninterrupted run's
    reference_warnings = run_level_warnings(loads["reference"]["dsn"])
    assert reference_warnings and run_level_warnings(loads["dsn"]) == reference_warnings
    assert all(row["status"] == "accepted" for row in after_rerun.values())
    assert any(row["quarantine"] for row in after_rerun.values())  # the case has rows to quarantine
    for row in after_rerun.values():
        assert row["raw"] == row["raw_distinct"] == row["rows_total"]
        assert row["quarantine"] == row["quarantine_distinct"] == row["rows_quarantined"]
        assert row["rows_loaded"] + row["rows_quarantined"] == row["rows_total"]


# ------------------------------------------------------------------ dbt


def marts_digests(dsn: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of every marts table's sorted rows, without the load-time watermark (`loaded_at`)."""
    from psycopg import sql

    out = {}
    with psycopg.connect(dsn) as conn:
        tables = [t for (t,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "and table_type = 'BASE TABLE' order by 1")]
        for table in tables:
            columns = [c for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'marts' "
                "and table_name = %s and column_name <> 'loaded_at' order by ordinal_position", (table,))]
            out[table] = conn.execute(sql.SQL(
                "select count(*), coalesce(md5(string_agg(r::text, '|' order by r::text)), '') "
                "from (select {} from {}) r").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("marts", table))).fetchone()
    return out


def test_kill_9_during_dbt_build_then_build_again_equals_an_uninterrupted_build(loads):
    """Fault: SIGKILL to `dbt build` while it builds the marts (dimensions and some facts exist, not all).

    After the kill some marts are missing; a second `dbt build` succeeds and every
    marts table has the same rows (count and md5 of the sorted rows, `loaded_at` left out) as an
    uninterrupted build of the same files on another database.

    Counts seen: after the kill 6 of 14 marts tables (the 5 dimensions and one fact), no
    fct_criteria_scores / fct_it_adoption / rpt_*; after the second build every table equal to the
    reference (e.g. fct_criteria_scores 1040, fct_it_adoption 2808, fct_dossier_throughput 80,
    rpt_service_index 2340, rpt_submission_status 5761 rows, same md5).
    """
    dsn, tmp, reference = loads["dsn"], loads["tmp"], loads["reference"]
    marts = sorted(p.stem for p in (settings().dbt_project / "models" / "marts").rglob("*.sql"))
    building = (
        "select (select count(*) from information_schema.tables where table_schema = 'marts' "
        "        and table_name = any(%s::text[])) between %s and %s "
        "   and exists (select from pg_stat_activity where datname = current_database() "
        "               and pid <> pg_backend_pid() and state = 'active' and query ilike '%%marts%%')"
    )
    reference_build = _dbt_build(reference["dsn"], reference["tmp"], *NO_TESTS)  # uninterrupted, side by side
    dbt = _dbt_build(dsn, tmp, *NO_TESTS)
    # Strike once the dimensions and at least one fact or report are built, before the last mart.
    first = sum(t.startswith("dim_") for t in marts) + 1
    _wait_for(dsn, building, dbt, "a dbt build half-way through the marts", (marts, first, len(marts) - 1))
    _kill_9(dbt)
    _wait_until_alone(dsn)
    partial = marts_digests(dsn)
    print(f"\nafter kill -9 of dbt build: {len(partial)} of {len(marts)} marts tables: "
          f"{ {t: c for t, (c, _) in partial.items()} }")
    assert first <= len(set(partial) & set(marts)) < len(marts)
    rebuild = _dbt_build(dsn, tmp, *NO_TESTS)
    _finish(reference_build)
    _finish(rebuild)
    expected, rebuilt = marts_digests(reference["dsn"]), marts_digests(dsn)
    print(f"after dbt build again: { {t: c for t, (c, _) in rebuilt.items()} }")
    assert set(expected) == set(marts)
    for table in ("fct_criteria_scores", "rpt_par_index", "fct_dossier_throughput", "fct_it_adoption",
                  "rpt_service_index", "rpt_submission_status"):
        assert expected[table][0] > 0, (table, expected)  # rows to compare
    assert rebuilt == expected
