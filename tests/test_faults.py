"""Faults the loader must survive: concurrent loaders, kill -9 mid-COPY, a warehouse restart.

These kill and start real processes; every assertion is on rows in a real Postgres.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.test_ingest import DOSSIER_EN

ROWS_PER_FILE = 50
BIG_ROWS = 300_000


def _landing(root: Path, files: int, rows: int = ROWS_PER_FILE, prefix: str = "f") -> Path:
    landing = root / "landing"
    for n in range(files):
        path = landing / "dossier_stats" / f"{prefix}{n:03d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(DOSSIER_EN)
            for r in range(rows):
                writer.writerow([f"{n:03d}", f"20{10 + r // 12 % 15}-{r % 12 + 1:02d}", f"F{r}", 0, 1, 1, 0, 1, 1,
                                 0, 0, 0])
    return landing


def _loader(landing: Path, dsn: str, tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, WAREHOUSE_DSN=dsn, REFORM_ARCHIVE=str(tmp / "archive"))
    return subprocess.Popen(
        [sys.executable, "-m", "reform_etl.cli", "load", str(landing), "--landing", str(landing), "--no-validate"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_two_loaders_on_one_landing_folder_load_each_file_once(make_database, tmp_path):
    dsn = make_database("concurrent")
    landing = _landing(tmp_path, files=12)
    first, second = _loader(landing, dsn, tmp_path), _loader(landing, dsn, tmp_path)
    outputs = [p.communicate(timeout=120)[0] for p in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    with psycopg.connect(dsn) as conn:
        loaded = conn.execute("select path, count(*) from audit.submission_files where status = 'loaded' "
                              "group by path").fetchall()
        rows = conn.execute("select count(*), count(distinct (unit_code, period, field_code)) "
                            "from raw.dossier_stats").fetchone()
    assert len(loaded) == 12 and all(count == 1 for _, count in loaded)
    assert rows == (12 * ROWS_PER_FILE, 12 * ROWS_PER_FILE)


LOADING = ("select count(*) from pg_stat_activity where state = 'active' and query ~* "
           # raw's tables as the loader names them: raw.x, "raw"."x" (also a record file's own table)
           "'^(copy _landing|copy \"?raw\"?[.]|insert into \"?raw\"?[.]|with fixed as [(].*update \"?raw\"?[.])'")


def _wait_for_copy(dsn: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the loader is inside its transaction, streaming or normalising rows."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute(LOADING).fetchone()[0]:
                return
            if process.poll() is not None:
                pytest.fail(f"loader ended before its COPY was seen: {process.stdout.read()}")
            time.sleep(0.005)
    pytest.fail("no COPY seen in time")


@pytest.fixture(scope="module")
def big_landing(tmp_path_factory) -> Path:
    """One file large enough that a load is still running when the test strikes."""
    return _landing(tmp_path_factory.mktemp("big"), files=1, rows=BIG_ROWS, prefix="big")


def _the_next_run_loads_it_once(landing: Path, dsn: str, tmp: Path) -> None:
    """After the fault, a new loader over the big landing loads its file whole, once."""
    again = _loader(landing, dsn, tmp)
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from raw.dossier_stats").fetchone() == (BIG_ROWS,)
        assert conn.execute("select count(*), min(rows_total) from audit.submission_files "
                            "where status = 'loaded'").fetchone() == (1, BIG_ROWS)


def test_kill_9_in_the_middle_of_a_copy_leaves_nothing_and_the_next_run_loads_once(make_database, tmp_path,
                                                                                   big_landing):
    dsn = make_database("kill9")
    landing = big_landing
    loader = _loader(landing, dsn, tmp_path)
    _wait_for_copy(dsn, loader)
    os.kill(loader.pid, signal.SIGKILL)
    loader.wait(timeout=30)
    with psycopg.connect(dsn) as conn:
        # The server notices the dead client and rolls its transaction back.
        for _ in range(100):
            busy = conn.execute(LOADING).fetchone()[0]
            if not busy:
                break
            time.sleep(0.1)
        assert conn.execute("select count(*) from raw.dossier_stats").fetchone() == (0,)
        assert conn.execute("select count(*) from audit.submission_files where status = 'loaded'").fetchone() == (0,)
    _the_next_run_loads_it_once(landing, dsn, tmp_path)


@pytest.mark.skipif(bool(os.environ.get("WAREHOUSE_DSN")), reason="restarts the embedded server, which it owns")
def test_a_warehouse_restart_mid_load_loses_nothing_and_loads_once(tmp_path, big_landing):
    from reform_etl import embedded_pg, warehouse

    pgdata = Path("/tmp") / f"rwh-restart-{os.getpid()}" / "pgdata"
    server = embedded_pg.ensure_running(pgdata)
    try:
        dsn = server.dsn("postgres")
        warehouse.bootstrap(dsn)
        landing = big_landing
        loader = _loader(landing, dsn, tmp_path)
        _wait_for_copy(dsn, loader)
        embedded_pg.stop(pgdata, mode="immediate")  # as a crash of the server would
        output = loader.communicate(timeout=60)[0]
        assert loader.returncode != 0 and "failed" in output  # the pipeline failed, and said so
        server = embedded_pg.ensure_running(pgdata)
        dsn = server.dsn("postgres")
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select count(*) from raw.dossier_stats").fetchone() == (0,)
        _the_next_run_loads_it_once(landing, dsn, tmp_path)
    finally:
        embedded_pg.stop(pgdata, mode="immediate")
