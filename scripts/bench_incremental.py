"""The nightly figures of `make bench`: an incremental dbt run with 1x and 10x history, and a no-op run.

* incremental_1x_s / incremental_10x_s: wall time (median of 5 nights) of the nightly dbt run of the record-level
  dossier models and their parents (`dbt run --select +fct_dossier_records_monthly
  +rpt_reconciliation`) after one day of new records is loaded and validated on top of a history
  of BASE (1x) or 10 x BASE (10x) dossiers. BASE is BENCH_INCREMENTAL_BASE (default 200,000,
  and never more than BENCH_ROWS): 10 x 1M would take longer to set up on 2 cores than the rest of
  the bench. More history means a longer history at the same daily volume (BASE / 60 a day: 60
  days for 1x, 600 days for 10x), as in a real province; the new day is the same in both.
  The day's file holds the dossiers received that day and the dossiers of the last three weeks
  completed that day (resubmitted records: the latest file wins), so that it touches the
  current and the previous month. History is realistic: a dossier older than five weeks is
  closed, except 0.5 % left open (pending overdue for ever). History is loaded by the real loader
  and marked accepted without the GX run, built by a first dbt run, then vacuumed and analysed as
  autovacuum would have long before (set-up, not measured); the new day is loaded and validated as
  the nightly DAG does.
* noop_run_s: wall time of `reform-etl run --landing <empty folder>` (the Airflow DAG in-process,
  nothing new to load, the dbt decision and the run report) on the 1x warehouse, as a subprocess:
  a true no-op night. The set-up above builds the marts with plain dbt, which the nightly does not
  trust (audit.transform_runs has no full build, the seeds were not loaded by the pipeline), so a
  first `reform-etl run` (reported as noop_first_run_s, dbt mode full) brings the warehouse to
  where a nightly left it; the second, the same local day, is the measured no-op (dbt mode skip;
  any other mode is reported as an error, e.g. when the two runs straddle midnight in Hà Nội). The
  Airflow home is kept in .bench/airflow, so only a first bench also initialises it.
"""

from __future__ import annotations

import csv
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

HEADER = [
    "dossier_id",
    "unit_code",
    "field_code",
    "procedure_code",
    "channel",
    "received_at",
    "due_at",
    "completed_at",
    "status",
    "satisfied",
]
FIELDS = ["HT", "CT", "DD", "XD", "HKD", "LDXH", "TP", "GT", "MT", "NN"]  # codes of seeds/fields.csv
SELECT = ["--select", "+fct_dossier_records_monthly", "+rpt_reconciliation"]
HISTORY_DAYS_1X = 60
# nightly runs measured per history size (one new day each); the median is reported (one night to the next of the
# same bench differs by up to a quarter here: dbt's own work for 18 models, not the SQL, is most of a night)
NIGHTS = 5


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _row(
    rng: random.Random, dossier_id: str, unit: str, received: datetime, as_of: datetime, open_share: float = 0.005
) -> list[str]:
    due = received + timedelta(days=rng.choice((3, 5, 7, 10, 15)))
    completed = received + timedelta(days=rng.randrange(0, (due - received).days + 4), hours=rng.randrange(8))
    if completed >= as_of or rng.random() < open_share:
        completed_text, status = "", "processing"
    else:
        completed_text, status = _iso(completed), "completed"
    return [
        dossier_id,
        unit,
        rng.choice(FIELDS),
        f"1.{rng.randrange(1000, 9999):06d}",
        rng.choice(("online", "online", "direct", "postal")),
        _iso(received),
        _iso(due),
        completed_text,
        status,
        rng.choice(("true", "false", "")),
    ]


def generate_history(folder: Path, rows: int, days: int, day: datetime, communes: list[str]) -> list[Path]:
    """`rows` dossiers received over the `days` days before `day`, one file per month of receipt."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("history_*.csv"):  # an earlier bench's months (another day): not this history
        stale.unlink()
    rng = random.Random(rows)
    start = day - timedelta(days=days)
    per_minute = rows / (days * 24 * 60)
    files: dict[str, tuple] = {}
    for n in range(rows):
        received = start + timedelta(minutes=int(n / per_minute))
        month = f"{received:%Y-%m}"
        if month not in files:
            handle = (folder / f"history_{month}.csv").open("w", newline="", encoding="utf-8")
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            files[month] = (handle, writer)
        files[month][1].writerow(_row(rng, f"H{n:010d}", communes[n % len(communes)], received, day))
    for handle, _ in files.values():
        handle.close()
    return sorted(folder.glob("history_*.csv"))


def generate_day(path: Path, history: list[Path], rows: int, day: datetime, communes: list[str], skip: int = 0) -> Path:
    """One day: `rows` new dossiers received that day, and up to rows / 2 open dossiers of the last
    three weeks completed that day (the same dossier ids, in a later file; the first `skip` such
    dossiers are left alone, so that consecutive days complete different ones)."""
    rng = random.Random(day.toordinal())
    completions: list[list[str]] = []
    recent = (day - timedelta(days=21)).isoformat()
    seen = 0
    for file in history[-2:]:
        with file.open(encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                if not record["completed_at"] and record["received_at"] >= recent and len(completions) < rows // 2:
                    seen += 1
                    if seen <= skip:
                        continue
                    record["completed_at"] = _iso(day + timedelta(hours=9 + rng.randrange(8)))
                    record["status"] = "completed"
                    completions.append([record[c] for c in HEADER])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(rows):
            received = day + timedelta(minutes=int(n * 24 * 60 / rows))
            unit = communes[n % len(communes)]
            writer.writerow(_row(rng, f"N{day:%y%m%d}{n:07d}", unit, received, day + timedelta(days=1)))
        writer.writerows(completions)
    return path


def load(dsn: str, landing: Path, path: Path, archive: Path, validate: bool = True) -> None:
    """The real loader and validation, as the nightly DAG runs them. History is set-up, not measured:
    with validate=False it is loaded by the real loader and marked accepted without the GX run
    (validation speed is what ingest_rows_per_s measures; it would add minutes per 100k rows here)."""
    from reform_etl import ingest, validation

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into audit.pipeline_runs (run_id, triggered_by) values ('bench', 'bench') on conflict do nothing"
        )
    result = ingest.load_file(path, landing=landing, dsn=dsn, archive=archive)
    if result.status == "loaded" and validate:
        validation.validate_file(dsn, result.file_id, "bench")
    elif result.status == "loaded":
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("update audit.submission_files set status = 'accepted' where file_id = %s", (result.file_id,))
    with psycopg.connect(dsn) as conn:
        status = conn.execute(
            "select status from audit.submission_files where file_id = %s", (result.file_id,)
        ).fetchone()[0]
    if status != "accepted":
        raise RuntimeError(f"{path.name}: {status}")


def dbt_run(dsn: str, target: Path, command: str = "run") -> float:
    from reform_etl.transform import run_dbt

    started = time.perf_counter()
    args = [
        command,
        *(SELECT if command == "run" else []),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
    ]
    result = run_dbt(args, dsn)
    elapsed = time.perf_counter() - started
    if not result.success:
        failed = [f"{r.node.name}: {r.message}" for r in (result.result or []) if str(r.status) == "error"]
        raise RuntimeError(f"dbt {command} failed: {result.exception or failed}")
    return elapsed


def settle(dsn: str, checkpoint) -> None:
    """The history as a warehouse in service holds it: vacuumed and analysed, as autovacuum left it long before
    tonight (set-up, not measured). Without this, autovacuum visits the history just loaded (20 files and
    int_dossiers__latest, 2M rows each, for 10x) during the nights measured (seen in pg_stat_user_tables)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum (analyze)")
    checkpoint(dsn)  # and its pages written


def incremental(
    bench: Path, admin_dsn: str, label: str, rows: int, days: int, day_rows: int, fresh_database, checkpoint, log
) -> dict:
    """History of `rows` over `days` days, a first (full) dbt run, then NIGHTS new days, each loaded
    and validated and followed by the timed nightly run; the figure is the median night."""
    from reform_etl import units

    communes = [u.code for u in units.communes_2025("25")]
    # history ends NIGHTS days ago; the nights are the days since then (never in the future)
    day = datetime.combine(datetime.now().date() - timedelta(days=NIGHTS), datetime.min.time())
    root = bench / f"incremental_{label}"
    landing = root / "landing"
    dsn = fresh_database(admin_dsn, f"bench_incremental_{label}")
    started = time.perf_counter()
    history = generate_history(landing / "dossiers" / f"h{rows}", rows, days, day, communes)
    for path in history:
        load(dsn, landing, path, root / "archive", validate=False)
    load_s = time.perf_counter() - started
    target = root / "dbt-target"
    dbt_run(dsn, target, "seed")  # reference data, as `reform-etl warehouse start` / the reference DAG do
    first_s = dbt_run(dsn, target)
    settle(dsn, checkpoint)
    log(
        f"incremental {label}: {rows:,} dossiers of history over {days} days loaded (not validated) in "
        f"{load_s:.0f} s, first (full) dbt run {first_s:.1f} s"
    )
    nights = []
    for night in range(NIGHTS):
        today = day + timedelta(days=night)
        day_file = generate_day(
            landing / "dossiers" / f"day_{today:%Y%m%d}.csv", history, day_rows, today, communes, night * day_rows
        )
        load(dsn, landing, day_file, root / "archive")
        nights.append(dbt_run(dsn, target))
        with psycopg.connect(dsn) as conn:
            recomputed = conn.execute(
                "select count(*) filter (where field_code = 'ALL' and batch_loaded_at = "
                "(select max(batch_loaded_at) from intermediate.int_dossiers__monthly)), "
                "count(*) filter (where field_code = 'ALL') from intermediate.int_dossiers__monthly"
            ).fetchone()
        log(
            f"incremental {label}: day {today:%Y-%m-%d} ({day_rows:,} new + completions) -> nightly dbt run "
            f"{nights[-1]:.2f} s, {recomputed[0]} of {recomputed[1]} unit x month partitions recomputed"
        )
    nightly_s = statistics.median(nights)
    return {
        "dsn": dsn,
        "seconds": nightly_s,
        "nights_s": [round(n, 2) for n in nights],
        "first_run_s": first_s,
        "history_rows": rows,
        "partitions_recomputed": recomputed[0],
        "partitions_total": recomputed[1],
    }


def _cli_run(bench: Path, dsn: str, empty: Path, home: Path) -> tuple[float | None, str | None]:
    env = dict(
        os.environ,
        WAREHOUSE_DSN=dsn,
        AIRFLOW_HOME=str(home),
        REFORM_REPORTS=str(bench / "reports"),
        REFORM_ARCHIVE=str(bench / "archive"),
    )
    env.pop("REFORM_AS_OF_DATE", None)  # the real date: a no-op night is the same day as the last build
    cli = Path(sys.executable).parent / "reform-etl"
    command = (
        [str(cli), "run", "--landing", str(empty)]
        if cli.exists()
        else [sys.executable, "-m", "reform_etl.cli", "run", "--landing", str(empty)]
    )
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        return None, "reform-etl run did not finish in 1200 s"
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return None, f"reform-etl run exited {proc.returncode}: " + "\n".join(tail)
    return elapsed, None


def _last_dbt_decision(dsn: str) -> tuple[str | None, str | None]:
    with psycopg.connect(dsn) as conn:
        if not conn.execute("select to_regclass('audit.transform_runs')").fetchone()[0]:
            return None, None
        row = conn.execute(
            "select mode, reason from audit.transform_runs order by transform_id desc limit 1"
        ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def noop_run(bench: Path, dsn: str) -> tuple[float | None, bool, str | None, dict]:
    """`reform-etl run` on an empty landing folder, twice, as a subprocess: the first brings the
    warehouse to a nightly's state (full dbt build), the second is the measured no-op night. The
    Airflow home lives in .bench/airflow: the first bench on a clean clone also initialises it."""
    detail: dict = {}
    try:
        from reform_etl import orchestration

        if not hasattr(orchestration, "run_nightly"):
            return None, False, "reform_etl.orchestration.run_nightly does not exist", detail
    except Exception as exc:  # noqa: BLE001 - the figure is null with the reason
        return None, False, f"import reform_etl.orchestration: {exc!r}", detail
    empty = bench / "noop_landing"
    empty.mkdir(parents=True, exist_ok=True)
    home = bench / "airflow"
    fresh = not (home / ".migrated").exists()
    first_s, error = _cli_run(bench, dsn, empty, home)
    detail["noop_first_run_s"] = None if first_s is None else round(first_s, 1)
    detail["noop_first_dbt_mode"] = _last_dbt_decision(dsn)[0]
    if error:
        return None, fresh, f"first run: {error}", detail
    elapsed, error = _cli_run(bench, dsn, empty, home)
    mode, reason = _last_dbt_decision(dsn)
    detail["noop_dbt_mode"], detail["noop_dbt_reason"] = mode, reason
    if error:
        return None, fresh, error, detail
    if mode != "skip":
        return elapsed, fresh, f"not a no-op night: dbt {mode} ({reason})", detail
    return elapsed, fresh, None, detail


def measure(bench: Path, admin_dsn: str, bench_rows: int, fresh_database, checkpoint, log) -> dict:
    base = min(bench_rows, int(os.environ.get("BENCH_INCREMENTAL_BASE", "200000")))
    day_rows = max(1, base // HISTORY_DAYS_1X)
    if base < bench_rows:
        log(
            f"incremental: 1x history = {base:,} dossiers (BENCH_INCREMENTAL_BASE), not BENCH_ROWS = "
            f"{bench_rows:,}: 10x of that would take too long to load on this machine"
        )
    one = incremental(bench, admin_dsn, "1x", base, HISTORY_DAYS_1X, day_rows, fresh_database, checkpoint, log)
    ten = incremental(bench, admin_dsn, "10x", base * 10, HISTORY_DAYS_1X * 10, day_rows, fresh_database,
                      checkpoint, log)
    noop_s, noop_fresh, noop_error, noop_detail = noop_run(bench, one["dsn"])
    log(f"first nightly run on the 1x warehouse (dbt {noop_detail.get('noop_first_dbt_mode')}): "
        f"{noop_detail.get('noop_first_run_s')} s" + (" (including the first initialisation of .bench/airflow)"
                                                       if noop_fresh else ""))
    if noop_error:
        log(f"no-op run: {noop_error}")
    if noop_s is not None:
        log(f"no-op nightly run (Airflow in-process, nothing new, same day, 1x warehouse): {noop_s:.1f} s "
            f"(dbt {noop_detail.get('noop_dbt_mode')})")
    return {
        "incremental_1x_s": round(one["seconds"], 2),
        "incremental_10x_s": round(ten["seconds"], 2),
        "incremental_ratio": round(ten["seconds"] / one["seconds"], 3),
        "noop_run_s": None if noop_s is None or noop_detail.get("noop_dbt_mode") != "skip" else round(noop_s, 1),
        "incremental_detail": {
            "history_rows_1x": base,
            "history_rows_10x": base * 10,
            "history_days_1x": HISTORY_DAYS_1X,
            "history_days_10x": HISTORY_DAYS_1X * 10,
            "new_day_rows": day_rows,
            "base_from": "BENCH_ROWS" if base == bench_rows else "BENCH_INCREMENTAL_BASE",
            "dbt_select": " ".join(SELECT[1:]),
            "first_full_run_1x_s": round(one["first_run_s"], 1),
            "first_full_run_10x_s": round(ten["first_run_s"], 1),
            "nights_1x_s": one["nights_s"],
            "nights_10x_s": ten["nights_s"],
            "partitions_recomputed_1x": [one["partitions_recomputed"], one["partitions_total"]],
            "partitions_recomputed_10x": [ten["partitions_recomputed"], ten["partitions_total"]],
            "noop_airflow_home_fresh": noop_fresh,
            "noop_error": noop_error,
            **noop_detail,
        },
    }
