"""`make bench`: record-level dossier ingest against the machine's ceiling and a naive pipeline.

Prints the figures and writes them to .bench/results.json. BENCH_ROWS sets the size (default
1,000,000); BENCH_BASELINE_ROWS caps the naive pandas baseline (default: the same rows).
The nightly figures (incremental 1x / 10x history, no-op run) come from bench_incremental.py;
BENCH_INCREMENTAL_BASE (default 200,000) caps their 1x history. It also prints how long the DAG
processor takes to parse each DAG file.
A benchmark, not a test: it asserts nothing and never runs in `make test`.
"""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
HEADER = ["dossier_id", "unit_code", "field_code", "procedure_code", "channel", "received_at", "due_at",
          "completed_at", "status", "satisfied"]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def generate(path: Path, rows: int, start: datetime, seed: int = 766) -> Path:
    """A one-stop export: Phú Thọ communes, ISO dates, ~10 % pending, ~5 % late."""
    if path.exists():
        return path
    from reform_etl import units

    communes = [u.code for u in units.communes_2025("25")]
    from reform_etl.sample import load_reference

    fields = load_reference().fields  # the seeded field codes: records must pass validation
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    span = 30 * 24 * 60  # a month of minutes
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(rows):
            received = start + timedelta(minutes=rng.randrange(span))
            due = received + timedelta(days=rng.choice((3, 5, 7, 10, 15)))
            roll = rng.random()
            completed = "" if roll > 0.9 else (due + timedelta(days=1 + n % 3) if roll > 0.85 else
                                                 due - timedelta(days=n % 3)).isoformat(timespec="seconds")
            writer.writerow([f"{start:%y%m}{n:09d}", communes[n % len(communes)], fields[n % len(fields)],
                             f"1.{n % 9000 + 1000:06d}", ("online", "direct", "postal")[n % 3],
                             received.isoformat(timespec="seconds"), due.isoformat(timespec="seconds"),
                             completed, "completed" if completed else "processing", ("true", "false", "")[n % 3]])
    partial.replace(path)
    return path


def fresh_database(admin_dsn: str, name: str) -> str:
    from reform_etl import warehouse

    drop_database(admin_dsn, name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    warehouse.bootstrap(dsn)
    return dsn


def drop_database(admin_dsn: str, name: str) -> None:
    """Dropped before it is made again, and once done with: autovacuum must not visit its rows during the next
    timed phase (1M rows COPYed without FREEZE are a vacuum and an analyze of their own, on a core our ingest
    needs)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def checkpoint(dsn: str) -> None:
    """Each timed phase starts from a checkpoint, so that neither pays for the WAL the other wrote (1 GB of
    WAL from the raw COPY of 10M records made our ingest that follows it write a checkpoint: ratios of
    0.43 to 0.51 from run to run; 0.47 to 0.48 with these). Needs a superuser (or pg_checkpoint)."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("checkpoint")
    except psycopg.Error as exc:
        log(f"no checkpoint before the timed phase ({exc.diag.message_primary or exc})")


def raw_copy(dsn: str, path: Path) -> float:
    """The ceiling: the same file COPYed by the server into an empty all-text table."""
    with psycopg.connect(dsn) as conn:
        conn.execute("create table public.bench_copy ({})".format(", ".join(f"{c} text" for c in HEADER)))
        started = time.perf_counter()
        statement = "copy public.bench_copy from stdin (format csv, header)"
        with path.open("rb") as handle, conn.cursor().copy(statement) as copy:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        conn.commit()
        return time.perf_counter() - started


def our_ingest(dsn: str, landing: Path, path: Path) -> tuple[float, float, dict]:
    """Our load + validate in a child process, so that its peak RSS is its own.

    Timed as a warm worker runs it: from the file to an accepted, validated file, after the
    imports (Great Expectations alone takes seconds to import; an Airflow worker has it loaded),
    on a warehouse in service (bootstrapped, its reference data loaded). The import time is
    reported beside it.
    """
    code = (
        "import json, time\n"
        "t = time.perf_counter()\n"
        "from pathlib import Path\n"
        "import great_expectations\n"
        "from reform_etl import ingest, validation\n"
        "out = {'import_s': time.perf_counter() - t}\n"
        "t = time.perf_counter()\n"
        f"r = ingest.load_file(Path({str(path)!r}), landing=Path({str(landing)!r}), dsn={dsn!r})\n"
        "out.update(file_id=r.file_id, status=r.status, rows=r.rows_total, load_s=time.perf_counter() - t)\n"
        "if r.status == 'loaded':\n"
        "    v = time.perf_counter()\n"
        "    out['validation'] = validation.validate_file(" + repr(dsn) + ", r.file_id, 'bench')\n"
        "    out['validate_s'] = time.perf_counter() - v\n"
        "out['ingest_s'] = time.perf_counter() - t\n"
        "print(json.dumps(out, default=str))\n"
    )
    env = dict(os.environ, REFORM_ARCHIVE=str(BENCH / "archive"), WAREHOUSE_DSN=dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into audit.pipeline_runs (run_id, triggered_by) values ('bench', 'bench') "
                     "on conflict do nothing")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    detail = json.loads(proc.stdout.strip().splitlines()[-1])
    return detail["ingest_s"], peak_kb / 1024, detail


def naive_baseline(dsn: str, path: Path, rows: int) -> float:
    """What a province would assemble by hand: pandas read_csv, in-memory checks of the same rules as the
    catalog's for dossiers (reform_etl/validation/rules.py), vectorised, then to_sql of the good rows and
    of the failed ones."""
    import pandas as pd
    from sqlalchemy import create_engine

    from reform_etl import reference
    from reform_etl.config import settings
    from reform_etl.warehouse import sqlalchemy_url

    seeds = settings().seeds
    windows = pd.DataFrame([(u[0], u[4], u[5]) for u in reference.unit_rows(seeds)],
                           columns=["unit_code", "valid_from", "valid_to"])
    windows["valid_from"] = pd.to_datetime(windows["valid_from"])
    windows["valid_to"] = pd.to_datetime(windows["valid_to"])
    fields = {r["field_code"] for r in reference.read_seed(seeds / "fields.csv") if r.get("field_code")}
    today = pd.Timestamp.now(tz="Asia/Ho_Chi_Minh").normalize().tz_localize(None)
    with psycopg.connect(dsn) as conn:  # the names raw.channel_of reads, folded as raw.fold_name folds a cell
        channels = {name for (name,) in conn.execute("select name from raw.channel_names()")}
    accents = dict.fromkeys(map(ord, "\u0300\u0301\u0303\u0309\u0323\u0306\u0302\u031b"))
    marks = str.maketrans({"\u0111": "d", "\u0110": "D", **accents})

    def fold(column):
        folded = column.str.strip().str.normalize("NFD").str.translate(marks).str.lower()
        return folded.str.replace(r"\s+", " ", regex=True)

    started = time.perf_counter()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=rows)
    for column in ("dossier_id", "unit_code", "field_code", "channel", "received_at", "due_at", "completed_at"):
        frame[column] = frame[column].str.strip()  # a blank cell is a missing one

    def dates(column: str):
        return pd.to_datetime(frame[column], format="ISO8601", errors="coerce")

    received, due, completed = dates("received_at"), dates("due_at"), dates("completed_at")
    known = frame["unit_code"].isin(set(windows["unit_code"]))
    day = received.dt.normalize()
    pairs = frame[["unit_code"]].assign(day=day).reset_index().merge(windows, on="unit_code")
    inside = (pairs["valid_from"] <= pairs["day"]) & (pairs["valid_to"].isna() | (pairs["day"] < pairs["valid_to"]))
    failed = (
        ~known  # unit_code_unknown (blank included)
        | (known & received.notna() & ~frame.index.isin(pairs.loc[inside, "index"]))  # unit_not_valid_in_period
        | received.isna()  # period_invalid
        | (day > today)  # period_in_future
        | ~frame["field_code"].isin(fields)  # field_code_unknown
        | ~fold(frame["channel"]).isin(channels)  # channel_unknown
        | ((frame["due_at"] != "") & due.isna()) | ((frame["completed_at"] != "") & completed.isna())  # date_invalid
        | frame["dossier_id"].duplicated(keep=False)  # duplicate_key_in_file
    )
    engine = create_engine(sqlalchemy_url(dsn))
    frame[~failed].to_sql("bench_naive", engine, schema="public", if_exists="replace", index=False,
                          chunksize=50_000)
    frame[failed].to_sql("bench_naive_rejected", engine, schema="public", if_exists="replace", index=False)
    engine.dispose()
    log(f"naive baseline: {int(failed.sum()):,} of {len(frame):,} rows failed a rule")
    return time.perf_counter() - started


DAG_PARSE = """
import sys, time
from airflow.dag_processing.dagbag import DagBag
DagBag(dag_folder=sys.argv[1])  # warm: Airflow's and Cosmos' own imports are not the file's cost
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
print(time.perf_counter() - started)
"""


def dag_parse_seconds() -> dict[str, float]:
    """Seconds the DAG processor takes to parse each DAG file (after a warm parse), in a fresh Airflow home."""
    import tempfile

    from reform_etl.orchestration.airflow_home import airflow_env

    seconds = {}
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as home:
        env = {**os.environ, **airflow_env(Path(home))}
        for dag_file in sorted((REPO / "dags").glob("*.py")):
            out = subprocess.run([sys.executable, "-c", DAG_PARSE, str(dag_file)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            seconds[dag_file.name] = round(float(out.split()[-1]), 3)
    return seconds


def main() -> int:
    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    baseline_rows = int(os.environ.get("BENCH_BASELINE_ROWS", str(rows)))
    os.environ.setdefault("REFORM_PGDATA", str(BENCH / "pgdata"))
    # The bench writes its files itself, complete: no upload to wait for (else a file generated seconds ago
    # is 'waiting' and nothing is timed).
    os.environ.setdefault("REFORM_QUIET_SECONDS", "0")
    from reform_etl import embedded_pg
    from reform_etl.config import settings

    BENCH.mkdir(exist_ok=True)
    if os.environ.get("WAREHOUSE_DSN"):
        admin = os.environ["WAREHOUSE_DSN"]
    else:
        admin = embedded_pg.ensure_running(settings().pgdata).dsn("postgres")
    landing = BENCH / "landing"
    log(f"generating {rows:,} dossiers (cached between runs)")
    path = generate(landing / "dossiers" / f"dossiers_{rows}.csv", rows, datetime(2026, 9, 1))
    size_mb = path.stat().st_size / 2**20

    dsn = fresh_database(admin, "bench_copy")
    checkpoint(admin)
    copy_s = raw_copy(dsn, path)
    log(f"raw COPY: {copy_s:.2f} s, {rows / copy_s:,.0f} rows/s ({size_mb:.0f} MB)")
    drop_database(admin, "bench_copy")

    dsn = fresh_database(admin, "bench_ingest")
    from reform_etl import reference

    reference.ensure_lookups(dsn)  # a warehouse in service holds its reference data (reloaded when the seeds change)
    checkpoint(admin)
    ingest_s, peak_mb, detail = our_ingest(dsn, landing, path)
    log(f"our ingest + validate: {ingest_s:.2f} s ({detail}), peak RSS {peak_mb:.0f} MB")
    drop_database(admin, "bench_ingest")

    dsn = fresh_database(admin, "bench_naive")
    baseline_s = naive_baseline(dsn, path, baseline_rows)
    log(f"naive pandas baseline on {baseline_rows:,} rows: {baseline_s:.2f} s")
    # (seen: pg_stat_user_tables dated autovacuum's visit of its million rows inside the 1x nights that follow)
    drop_database(admin, "bench_naive")

    parse = dag_parse_seconds()
    log("DAG files parsed in " + ", ".join(f"{name} {secs:.2f} s" for name, secs in parse.items()))

    import bench_incremental  # scripts/ is on sys.path when this file runs as a script

    nightly = bench_incremental.measure(BENCH, admin, rows, fresh_database, checkpoint, log)

    results = {
        "rows": rows,
        "copy_rows_per_s": round(rows / copy_s),
        "ingest_rows_per_s": round(rows / ingest_s),
        "ratio_to_copy": round(copy_s / ingest_s, 3),
        "baseline_rows_per_s": round(baseline_rows / baseline_s),
        "speedup_vs_baseline": round((rows / ingest_s) / (baseline_rows / baseline_s), 2),
        "peak_rss_mb": round(peak_mb, 1),
        "incremental_1x_s": nightly["incremental_1x_s"],
        "incremental_10x_s": nightly["incremental_10x_s"],
        "incremental_ratio": nightly["incremental_ratio"],
        "noop_run_s": nightly["noop_run_s"],
        "dag_parse_s": parse,
        "ingest_detail": detail,
        "incremental_detail": nightly["incremental_detail"],
    }
    (BENCH / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
