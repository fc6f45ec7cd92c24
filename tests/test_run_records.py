"""Runs that tell the truth (issue 16 items 8-11): the report's outcome, abandoned runs, one id per run, a
warehouse that is down."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reform_etl import cli, orchestration, runs
from reform_etl.orchestration import tasks
from reform_etl.orchestration.callbacks import _append_error
from reform_etl.transform.decision import record_transform, transform_state


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_dbt_test_makes_the_report_say_failed_and_name_it(db, warehouse_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv("REFORM_REPORTS", str(tmp_path / "reports"))
    run = {"run_id": "night_with_a_failing_test"}
    runs.start_run(warehouse_dsn, run["run_id"], triggered_by="test")
    record_transform(db, run["run_id"], "full", "the file registry changed", transform_state(db), "running")
    failing = "dbt.fct_dossier_records_monthly.test"
    # what the task failure callback records when a Cosmos dbt test task fails
    _append_error(run["run_id"], f"task {failing} failed: AirflowException: dbt test "
                  "assert_dossier_records_ii06a_identities failed", close=False)
    index = Path(tasks.task_report(run))
    page = index.read_text(encoding="utf-8")
    assert "Thất bại / failed" in page and failing in page and "assert_dossier_records_ii06a_identities" in page
    assert "(running)" not in page and "Đang chạy" not in page
    with pytest.raises(Exception, match="finished with 1 failed task"):
        tasks.task_finish(run, str(index), {})
    assert db.execute("select status from audit.pipeline_runs where run_id = %s", (run["run_id"],)).fetchone() == (
        "failed",)
    final = index.read_text(encoding="utf-8")
    assert "Thất bại / failed" in final and failing in final
    assert "Xây dựng lại toàn bộ / full build</b> (<span class='failed'>Thất bại / failed" in final


def test_a_killed_run_is_marked_abandoned_by_the_next_one_with_when_and_why(db, warehouse_dsn, capsys):
    # A run whose process is killed: it starts, opens its validation run, and dies without closing either.
    child = subprocess.run([sys.executable, "-c", (
        "import os; from reform_etl import runs, validation; "
        f"runs.start_run({warehouse_dsn!r}, 'killed_run', owner=runs.this_process()); "
        f"validation.start_run({warehouse_dsn!r}, 'killed_run'); os.kill(os.getpid(), 9)")], capture_output=True)
    assert child.returncode == -9, child.stderr
    # One driven by Airflow's task processes (no owner to ask), silent for seven hours, and one still going.
    for run_id, hours in (("silent_run", 7), ("busy_run", 1)):
        db.execute("insert into audit.pipeline_runs (run_id, triggered_by, started_at, heartbeat_at) "
                   "values (%s, 'scheduled', now() - make_interval(hours => %s + 1), "
                   "now() - make_interval(hours => %s))", (run_id, hours, hours))
    assert runs.start_run(warehouse_dsn, "next_run", owner=runs.this_process()) == ["killed_run", "silent_run"]
    rows = dict(db.execute("select run_id, status from audit.pipeline_runs").fetchall())
    assert (rows["killed_run"], rows["silent_run"], rows["busy_run"]) == ("abandoned", "abandoned", "running")
    status, ended, error = db.execute("select status, ended_at, error from audit.pipeline_runs "
                                      "where run_id = 'killed_run'").fetchone()
    assert ended is not None and "is gone (killed or crashed)" in error and "không còn" in error
    assert db.execute("select status, ended_at is not null, error like 'abandoned:%' from audit.validation_runs "
                      "where run_id = 'killed_run'").fetchone() == ("abandoned", True, True)
    assert "more than 6 h" in db.execute("select error from audit.pipeline_runs where run_id = 'silent_run'"
                                         ).fetchone()[0]
    assert cli.main(["status"]) == 0
    assert "abandoned" in capsys.readouterr().out


def test_two_runs_started_in_the_same_second_get_their_own_ids():
    first = datetime(2026, 11, 21, 3, 4, 5, 120000, tzinfo=UTC)
    second = first + timedelta(microseconds=1)
    assert orchestration.run_id_for("reform_nightly", first, "manual__a") != orchestration.run_id_for(
        "reform_nightly", second, "manual__b")
    # a scheduled night keeps its whole-second id: re-running the night re-uses its audit row
    night = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    assert orchestration.run_id_for("reform_nightly", night, "x") == "reform_nightly__2026-11-21T01:00:00+07:00"


def test_a_warehouse_that_is_down_fails_fast_naming_host_and_port_not_the_password(db, warehouse_dsn, tmp_path,
                                                                                   monkeypatch, capsys):
    port = _closed_port()
    down = f"postgresql://reform:s3cret-pw@127.0.0.1:{port}/reform"
    monkeypatch.setenv("WAREHOUSE_DSN", down)
    started = time.monotonic()
    assert cli.main(["load", str(tmp_path)]) == 1
    assert time.monotonic() - started < 60
    printed = capsys.readouterr().out.replace("\n", "")
    assert f"127.0.0.1:{port}" in printed and "not reachable" in printed and "s3cret-pw" not in printed
    # Retried while it may be restarting, given up once it has refused every connection for a while.
    step = tasks.transient_only(runs.discover)
    from reform_etl.warehouse import WarehouseUnreachable
    with pytest.raises(WarehouseUnreachable):
        step(down, str(tmp_path))
    monkeypatch.setattr(tasks, "WAREHOUSE_DOWN_BUDGET_SECONDS", 0.5)
    time.sleep(0.6)
    from airflow.sdk.exceptions import AirflowFailException
    with pytest.raises(AirflowFailException, match=f"127.0.0.1:{port}"):
        step(down, str(tmp_path))
    # The next run, the warehouse back: it recovers.
    monkeypatch.setenv("WAREHOUSE_DSN", warehouse_dsn)
    assert cli.main(["load", str(tmp_path), "--no-validate"]) == 0


def test_a_server_that_never_answers_fails_within_the_connect_timeout(monkeypatch):
    from reform_etl import warehouse

    monkeypatch.setattr(warehouse, "CONNECT_TIMEOUT_SECONDS", 2)
    with socket.socket() as listener:  # accepts the TCP connection, never speaks
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with (pytest.raises(warehouse.WarehouseUnreachable, match=f"127.0.0.1:{port}"),
              warehouse.connect(f"postgresql://u:pw@127.0.0.1:{port}/db")):
            pass
        assert time.monotonic() - started < 10
