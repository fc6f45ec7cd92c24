"""The data team's terminal (issue 20 item 9): what `reform-etl run`, `status` and `backfill` print.

Real runs: `reform-etl run` as a process of its own on a small landing folder (its whole output,
Airflow's and Cosmos' logging included, as a terminal would show it), twice: the first night builds
the marts, the second has nothing new. Then `status` and `backfill` in-process, their output captured.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from rich.console import Console

from reform_etl import cli, progress
from reform_etl.config import TIMEZONE
from reform_etl.orchestration.quiet import quieted
from reform_etl.transform.project import manifest_path
from tests.test_dags import SMALL, write_small_landing

REFORM_ETL = str(Path(sys.executable).parent / "reform-etl")


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    return write_small_landing(tmp_path_factory)[1]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reports")


def _cli(args: list[str], dsn: str, reports: Path) -> str:
    """`reform-etl <args>` in a process of its own: everything it writes, stdout and stderr as one."""
    env = {**os.environ, "WAREHOUSE_DSN": dsn, "REFORM_REPORTS": str(reports),
           # one plain progress line when a count starts and one when it ends: the test reads no clock
           progress.EVERY_ENV: "86400",
           # the models without their dbt tests: the tests save no mart and take most of the time
           "DBT_EXCLUDE_RESOURCE_TYPES": "test unit_test"}
    proc = subprocess.run([REFORM_ETL, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=3600)
    print(f"\n$ reform-etl {' '.join(args)} -> exit {proc.returncode}, {len(proc.stdout):,} characters\n"
          f"{proc.stdout}")
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


@pytest.fixture(scope="module")
def first_night(warehouse_dsn, landing, reports) -> str:
    return _cli(["run", "--landing", str(landing)], warehouse_dsn, reports)


@pytest.fixture(scope="module")
def noop_night(first_night, warehouse_dsn, landing, reports) -> str:
    return _cli(["run", "--landing", str(landing)], warehouse_dsn, reports)


def _progress_lines(output: str, label_key: str) -> list[tuple[int, int]]:
    label = re.escape(f"{progress.PREFIX} {progress.LABELS[label_key]} ")
    return [(int(m[1]), int(m[2])) for m in re.finditer(label + r"(\d+)/(\d+)", output)]


@pytest.mark.slow
def test_a_night_shows_its_progress(first_night):
    """Files loaded / to load, validated, dbt's tasks done / to do: plain lines off a terminal, a few."""
    files = len(SMALL)
    assert _progress_lines(first_night, "files") == [(0, files), (files, files)]
    assert _progress_lines(first_night, "validated")[-1] == (files, files)
    manifest = json.loads(manifest_path().read_text(encoding="utf-8"))
    models = sum(1 for n in manifest["nodes"].values() if n["resource_type"] == "model")
    dbt = _progress_lines(first_night, "dbt_tasks")
    assert len(dbt) == 2 and dbt[0][0] == 0 and dbt[1][0] == dbt[1][1] == dbt[0][1] >= models, dbt
    # the current file is named on its line
    assert re.search(re.escape(progress.LABELS["files"]) + rf" {files}/{files} \(\w+/[^)]+\.csv\)", first_night)
    assert "\r" not in first_night  # no spinner redrawn in a log
    progress_text = "\n".join(line for line in first_night.splitlines() if line.startswith(progress.PREFIX))
    assert "\x1b[" not in progress_text


@pytest.mark.slow
def test_the_task_table_is_in_dag_order(first_night):
    table = first_night.split("\ntask ", 1)[1].split("\ndbt:", 1)[0].splitlines()[1:]
    labels = [line.split()[0] for line in table if line.strip()]
    tasks = [label.split("[", 1)[0] for label in labels]
    print("\n".join(labels))
    first = {t: tasks.index(t) for t in dict.fromkeys(tasks)}
    last = {t: len(tasks) - 1 - tasks[::-1].index(t) for t in first}
    chain = ["start", "discover", "per_file.load", "per_file.validate", "files_done", "cross_file_checks",
             "decide_dbt", "marts_built", "report", "finish"]
    for before, after in zip(chain, chain[1:], strict=False):
        assert last[before] < first[after], (before, after, tasks)
    dbt_tasks = [t for t in tasks if t.startswith("dbt.")]
    assert dbt_tasks and first["decide_dbt"] < min(first[t] for t in dbt_tasks)
    assert max(first[t] for t in dbt_tasks) < first["marts_built"]
    # inside the dbt group: a model after the models it selects from
    manifest = json.loads(manifest_path().read_text(encoding="utf-8"))
    models = {n["unique_id"]: n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    checked = 0
    for node in manifest["nodes"].values():
        child = f"dbt.{node['name']}_model_build"
        for parent in node.get("depends_on", {}).get("nodes", []):
            if node["resource_type"] == "model" and parent in models and child in first:
                assert first[f"dbt.{models[parent]}_model_build"] < first[child], (parent, child)
                checked += 1
    assert checked >= 10
    # a mapped load is labelled with its file, as in the Airflow UI
    assert any(re.fullmatch(r"per_file\.load\[\w+/.+\.csv\]", label) for label in labels), labels


NOISE = ("No tasks to run", "openlineage", "DbtResourceType.EXPOSURE", "node_converters", "DeprecationWarning",
         "FutureWarning", "RemovedInAirflow")


@pytest.mark.slow
def test_a_noop_night_prints_no_noise(noop_night):
    lowered = noop_night.lower()
    for words in NOISE:
        assert words.lower() not in lowered, words
    assert "dbt: skipped, because nothing new" in noop_night  # the summary is there
    assert "finish" in noop_night and "report:" in noop_night
    assert re.search(r"^dbt\.\* \(\d+ tasks\)\s+skipped", noop_night, re.M)  # one line for the skipped group
    assert len(noop_night) < 8_000  # what is left: the task table and the summary


def test_errors_and_our_own_warnings_still_show(caplog):
    """The filters drop the listed chatter only: an error of the same logger, and anything of ours, show."""
    caplog.set_level(logging.INFO)
    with quieted():
        logging.getLogger("airflow.sdk.definitions.dag").warning("No tasks to run. unrunnable tasks: %s", {"x"})
        logging.getLogger("cosmos.airflow.graph").warning("Unavailable conversion function for "
                                                          "<DbtResourceType.EXPOSURE> (node <exposure.x>)")
        logging.getLogger("airflow.sdk.definitions.dag").error("No tasks to run and the run is stuck")
        logging.getLogger("cosmos.airflow.graph").warning("a warning Cosmos has not said before")
        logging.getLogger("reform_etl.runs").warning("could not refresh the index of runs")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
            warnings.warn("ours", UserWarning, stacklevel=1)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["No tasks to run and the run is stuck", "a warning Cosmos has not said before",
                        "could not refresh the index of runs"]
    assert [str(w.message) for w in caught] == ["ours"]
    # outside the block nothing is filtered
    logging.getLogger("airflow.sdk.definitions.dag").warning("No tasks to run. unrunnable tasks: %s", {"y"})
    assert caplog.records[-1].getMessage().startswith("No tasks to run")


@pytest.fixture()
def wide_console(monkeypatch) -> None:
    """The CLI's console as a wide terminal's (a table's cells are not folded in the captured text)."""
    monkeypatch.setattr(cli, "console", Console(width=240, force_terminal=False))


@pytest.mark.slow
def test_status_shows_local_times_with_the_zone(first_night, warehouse_dsn, monkeypatch, wide_console, capsys):
    monkeypatch.setenv("WAREHOUSE_DSN", warehouse_dsn)
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    with psycopg.connect(warehouse_dsn) as conn:
        started, ended = conn.execute("select started_at, ended_at from audit.pipeline_runs "
                                      "order by started_at desc limit 1").fetchone()
    local = started.astimezone(ZoneInfo(TIMEZONE))
    print(out)
    assert f"{local:%Y-%m-%d %H:%M} +07" in out
    assert f"{ended.astimezone(ZoneInfo(TIMEZONE)):%H:%M} +07" in out
    assert TIMEZONE in out


@pytest.mark.slow
def test_backfill_prints_a_summary_and_writes_its_report(first_night, warehouse_dsn, reports, monkeypatch,
                                                           wide_console, capsys):
    monkeypatch.setenv("WAREHOUSE_DSN", warehouse_dsn)
    monkeypatch.setenv("REFORM_REPORTS", str(reports))
    monkeypatch.setenv("DBT_EXCLUDE_RESOURCE_TYPES", "test unit_test")
    monkeypatch.setenv(progress.EVERY_ENV, "86400")
    assert cli.main(["backfill", "--from", "2025-01", "--to", "2025-06"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "backfill 2025-01 .. 2025-06" in out
    with psycopg.connect(warehouse_dsn) as conn:
        run_id, summary = conn.execute("select run_id, summary from audit.pipeline_runs where triggered_by = "
                                       "'backfill' order by started_at desc limit 1").fetchone()
        throughput = conn.execute("select count(*) from marts.fct_dossier_throughput").fetchone()[0]
    assert run_id in out
    report = Path(summary["report"])
    assert report.is_file() and report.is_relative_to(reports) and run_id in report.read_text(encoding="utf-8")
    assert f"report: {report}" in out
    assert re.search(rf"fct_dossier_throughput[\s│]+{throughput:,}\b", out) and throughput > 0
    assert "dbt: " in out and "backfill of 2025-01..2025-06" in out
    assert "Running with dbt=" not in out  # dbt's own lines give way to the progress
    dbt = _progress_lines(out, "dbt")
    assert len(dbt) == 2 and dbt[0][0] == 0 and dbt[1][0] == dbt[1][1] == dbt[0][1] > 0, dbt
