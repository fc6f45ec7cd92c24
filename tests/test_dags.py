"""The Airflow DAGs: they parse clean, carry owner/tags/retries, and run end to end.

One migrated Airflow home (SQLite metadata) is shared by the whole module. The end-to-end tests
run the real `reform_nightly` DAG in-process with `dag.test()` (the same path as `reform-etl run`)
against a fresh warehouse database, on a small sample cut from the sample province.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from reform_etl import orchestration, transform
from reform_etl.backfill import backfill
from reform_etl.transform import decision as dbt_decision

REPO = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    """A migrated Airflow home for this module (or the one this process already uses)."""
    if "AIRFLOW_HOME" not in os.environ or "airflow.configuration" not in __import__("sys").modules:
        os.environ["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow"))
    started = time.monotonic()
    home = orchestration.prepare_airflow(Path(os.environ["AIRFLOW_HOME"]))
    transform.ensure_manifest()
    print(f"\nAirflow home {home} ready in {time.monotonic() - started:.1f} s")
    return home


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(orchestration.dags_folder()))


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"reform_nightly", "reform_reference_data"} <= set(dagbag.dags)


DAGBAG_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": bag.import_errors, "dags": sorted(bag.dags)}))
"""


def test_dag_integrity_in_a_fresh_airflow_home(tmp_path):
    """What a user's own Airflow does: a fresh AIRFLOW_HOME, `dags/` as the DAGs folder, nothing run before.

    The dbt project is a copy without target/ (no manifest yet), so parsing has to find the project
    from the DAG file's place (DBT_PROJECT_DIR here) and make the manifest itself.
    """
    import shutil
    import subprocess
    import sys

    project = tmp_path / "dbt_project"
    shutil.copytree(REPO / "dbt_project", project, symlinks=True,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (tmp_path / "seeds").symlink_to(REPO / "seeds")  # what dbt_project/seeds links to
    home = tmp_path / "airflow"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REFORM_", "DBT_", "WAREHOUSE_"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "DBT_PROJECT_DIR": str(project),
                # the first parse runs `dbt parse` once; a loaded test machine must not hit the 30 s default
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600"})
    proc = subprocess.run([sys.executable, "-c", DAGBAG_SCRIPT, str(REPO / "dags")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bag = json.loads(proc.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert bag["dags"] == ["reform_nightly", "reform_reference_data"]
    assert (project / "target" / "manifest.json").is_file()
    assert not (home / "dbt_project").exists()  # nothing of the dbt project is written into the Airflow home


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_each_dag_file_parses_on_its_own(airflow_home, dag_file):
    """Each file parses alone, as the DAG processor reads it (how fast: `make bench` prints it)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {}
    assert len(bag.dags) == 1 and all(dag.tasks for dag in bag.dags.values())


def test_every_dag_has_tags_owner_and_retries(dagbag):
    for dag in dagbag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert dag.max_active_runs == 1, dag.dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id} has no owner"
        python_tasks = [t for t in dag.tasks if not t.task_id.startswith(("dbt.", "dbt_seed."))]
        assert any(t.retries >= 1 for t in python_tasks), f"{dag.dag_id}: no task retries"
        assert dag.default_args.get("retries", 0) >= 1
        assert dag.default_args.get("retry_exponential_backoff") is True
        assert dag.default_args.get("on_failure_callback") is orchestration.record_task_failure


def test_nightly_shape(dagbag):
    dag = dagbag.dags["reform_nightly"]
    from reform_etl.orchestration import dag_config

    assert dag.start_date.tzinfo is not None and dag.start_date == dag_config.START_DATE  # aware, local midnight
    assert "Ho_Chi_Minh" in str(dag.timezone)
    cron = dag.timetable.timetable  # 01:00 local time, or when the reference data is reloaded
    assert cron.expression == "0 1 * * *" and "Ho_Chi_Minh" in str(cron.timezone)
    assert dag.timetable.asset_condition.name == orchestration.SEEDS_ASSET
    ids = set(dag.task_ids)
    assert {"start", "discover", "per_file.load", "per_file.validate", "files_done", "cross_file_checks",
            "reference_data", "decide_dbt", "dbt_refresh", "marts_built", "report", "finish"} <= ids
    # The cross-file warning checks are a task of their own: after every file, before dbt and the report.
    assert dag.task_dict["cross_file_checks"].upstream_task_ids == {"files_done", "start"}
    assert "cross_file_checks" in dag.task_dict["decide_dbt"].upstream_task_ids
    # Load and validate are mapped per file, inside one mapped group (one bad file blocks nothing).
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    assert isinstance(dag.task_dict["per_file.load"].task_group, MappedTaskGroup)
    # dbt: one `dbt build` task per model (TestBehavior.BUILD: the model, then its tests), and each test
    # with two parents (fact -> dimension relationships) in its own task once both parents are built.
    cosmos = sorted(t for t in ids if t.startswith("dbt."))
    dbt_models = [t for t in cosmos if t.endswith("_model_build")]
    detached = [t for t in cosmos if t.endswith("_test")]
    assert sorted(dbt_models + detached) == cosmos
    manifest = json.loads(dag_config.manifest_path().read_text(encoding="utf-8"))
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    two_parents = [n for n in manifest["nodes"].values()
                   if n["resource_type"] == "test" and len(n["depends_on"]["nodes"]) > 1]
    print(f"\nreform_nightly: {len(cosmos)} Cosmos tasks ({len(dbt_models)} dbt build, {len(detached)} detached tests)")
    assert len(dbt_models) == len(models) >= 10 and len(detached) == len(two_parents) > 0
    for task_id in detached:
        parents = {t for t in dag.task_dict[task_id].upstream_task_ids if t.startswith("dbt.")}
        assert len(parents) >= 2 and all(t.endswith("_model_build") for t in parents), (task_id, parents)
        name = task_id.removeprefix("dbt.").removesuffix("_test")
        for parent in parents:  # excluded from each parent's `dbt build`: it runs once, after both
            assert name in (dag.task_dict[parent].exclude or ""), (parent, name)
    assert not any(t.endswith(("_seed", ".seed", "_run", ".run")) for t in ids), "seeds are loaded by reference_data"
    # The branch: decide_dbt -> the dbt group's roots (full) or dbt_refresh (refresh) or neither (skip).
    roots = {t.task_id for t in dag.task_group_dict[orchestration.DBT_GROUP_ID].roots}
    assert dag.task_dict["decide_dbt"].downstream_task_ids == roots | {"dbt_refresh"}
    assert {"cross_file_checks", "reference_data"} <= dag.task_dict["decide_dbt"].upstream_task_ids
    # Every dbt task keeps all_success, so a skipped root skips everything after it; report and finish
    # run whatever happened, after every dbt task (not only after marts_built, which fails fast).
    assert all(dag.task_dict[t].trigger_rule == "all_success" for t in cosmos + ["marts_built", "dbt_refresh"])
    leaves = {t.task_id for t in dag.task_group_dict[orchestration.DBT_GROUP_ID].leaves}
    assert leaves | {"marts_built", "dbt_refresh"} <= dag.task_dict["report"].upstream_task_ids
    assert leaves <= dag.task_dict["marts_built"].upstream_task_ids
    assert dag.task_dict["files_done"].trigger_rule == "all_done"
    assert dag.task_dict["report"].trigger_rule == "all_done"
    assert dag.task_dict["finish"].trigger_rule == "all_done"
    # Python tasks retry (transient errors only); dbt tasks do not (a failing model is not transient).
    assert dag.task_dict["per_file.load"].retries >= 1
    assert all(dag.task_dict[t].retries == 0 for t in cosmos + ["dbt_refresh"])
    outlets = {a.name for a in dag.task_dict["per_file.load"].outlets}
    assert orchestration.RAW_ASSET in outlets


def test_reference_data_shape(dagbag):
    dag = dagbag.dags["reform_reference_data"]
    ids = set(dag.task_ids)
    assert "seeds_changed" in ids and "record" in ids
    assert any(t.endswith("_seed_build") for t in ids)  # `dbt build` of the seed: loads it, runs its tests
    assert orchestration.SEEDS_ASSET in {a.name for a in dag.task_dict["record"].outlets}


def test_transient_errors_retry_and_others_fail_for_good():
    from airflow.sdk.exceptions import AirflowFailException

    @orchestration.transient_only
    def lost():
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    @orchestration.transient_only
    def broken():
        raise ValueError("bug")

    with pytest.raises(psycopg.OperationalError):
        lost()
    with pytest.raises(AirflowFailException):
        broken()


# ------------------------------------------------------------------------------------------
# End to end: the real DAG, in-process, on a small sample
# ------------------------------------------------------------------------------------------

SMALL = {  # kind/file of the sample province -> data rows kept
    "par_scores/2023_par_scores.csv": 160,
    "dossier_stats/2025_6thang_dau.csv": 36,  # 6 districts x 6 months
    "it_kpis/cntt_cap_xa_2025-2026.csv": 120,
}
CRASH_FILE = "dossier_stats/zz_crash_2025.csv"


def _cut(source: Path, target: Path, rows: int, skip: int = 0) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=";" if ";" in f.readline() else ",")
        f.seek(0)
        all_rows = list(reader)
    header, data = all_rows[0], all_rows[1:]
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(data[skip:skip + rows])


def write_small_landing(tmp_path_factory) -> tuple[Path, Path]:
    """The sample province, and a landing folder holding the first SMALL rows of its SMALL files."""
    from reform_etl import sample

    full = tmp_path_factory.mktemp("sample")
    sample.generate(full)
    landing = tmp_path_factory.mktemp("landing")
    for name, rows in SMALL.items():
        _cut(full / name, landing / name, rows)
    return full, landing


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory) -> Path:
    full, landing = write_small_landing(tmp_path_factory)
    # The other 7 districts' months of the same kind: the file whose load we make crash.
    _cut(full / "dossier_stats/2025_6thang_dau.csv", landing / CRASH_FILE, 42, skip=36)
    return landing


@pytest.fixture(scope="module")
def e2e_dsn(make_database) -> str:
    return make_database("dags_e2e")


def _rows(dsn: str, query: str, *params):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


NOOP_BUDGET_S = 30.0  # issue 6: a night with nothing new, Airflow included
NOOP_ASSERT_S = 60.0  # asserted generously: a loaded CI machine must not flake


def _dbt_states(result) -> dict[str, str]:
    return {t.label: t.state for t in result.tasks if t.task_id.startswith("dbt.")}


@pytest.mark.slow
def test_nightly_end_to_end_with_one_crashing_file(airflow_home, small_landing, e2e_dsn, monkeypatch):
    """A loader crash on one file: the others reach the marts, the failure is in audit, the run is failed.

    Then the same night is re-run without the fault: the crashed file loads, and since it is the only
    new file, dbt builds only the models downstream of its kind (and the date-dependent ones) with
    their tests; the run succeeds, the marts hold every file and equal what a full rebuild gives.
    A third run of that night has nothing new: dbt is skipped (every dbt task skipped, report and
    finish run), the run succeeds in seconds and changes no mart. A fourth run on another day
    (REFORM_AS_OF_DATE) refreshes only the date-dependent models. A fifth brings one correction row:
    a partial build again, the corrected value reaches the mart; a sixth, nothing new, skips. A
    seventh brings a second correction the warehouse refuses: the partial build fails, is recorded
    failed, leaves the fact as it was, and the next night's decision is a full build.
    (Run one builds the models without their dbt tests, to save time.)
    """
    from reform_etl.ingest import load as ingest_load

    real_load = ingest_load._load

    def crash_on_one(conn, path, *args, **kwargs):
        if path.name == Path(CRASH_FILE).name:
            raise RuntimeError(f"injected loader crash on {path.name}")
        return real_load(conn, path, *args, **kwargs)

    monkeypatch.setenv("WAREHOUSE_DSN", e2e_dsn)
    monkeypatch.delenv(transform.AS_OF_DATE_ENV, raising=False)
    monkeypatch.setattr(ingest_load, "_load", crash_on_one)
    night = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)  # 01:00 on 21 Nov in Hà Nội

    started = time.monotonic()
    first = orchestration.run_nightly(small_landing, logical_date=night, dsn=e2e_dsn, skip_dbt_tests=True)
    print(f"\nfirst run (one crashing file): {first.state} in {time.monotonic() - started:.1f} s\n{first.render()}")
    states = {t.label: t.state for t in first.tasks}
    assert first.state == "failed"
    loads = [t for t in first.tasks if t.task_id == "per_file.load"]
    assert len(loads) == 4
    assert sorted(t.state for t in loads) == ["failed", "success", "success", "success"]
    assert first.dbt_mode == "full" and "never been built" in first.summary["dbt"]["reason"]
    assert set(_dbt_states(first).values()) == {"success"}, _dbt_states(first)
    assert states["marts_built"] == "success" and states["dbt_refresh"] == "skipped"
    assert states["report"] == "success" and states["finish"] == "failed"
    # The other files' rows are in the marts ...
    assert _rows(e2e_dsn, "select count(*) from marts.fct_dossier_throughput")[0][0] > 0
    assert _rows(e2e_dsn, "select count(*) from marts.fct_it_adoption")[0][0] > 0
    assert _rows(e2e_dsn, "select count(*) from marts.fct_criteria_scores")[0][0] > 0
    # ... and the failure is in audit: the run, with the task and the reason, and the file.
    status, error = _rows(e2e_dsn, "select status, error from audit.pipeline_runs where run_id = %s",
                          first.run_id)[0]
    assert status == "failed" and "per_file.load" in error and "injected loader crash" in error
    files = dict(_rows(e2e_dsn, "select file_name, status from audit.submission_files"))
    assert files[Path(CRASH_FILE).name] == "failed"

    # Re-run the same night without the fault: the crashed file is the only new one, the files the
    # full build saw are unchanged, so dbt builds only what its kind (dossier_stats) reaches.
    monkeypatch.setattr(ingest_load, "_load", real_load)
    oids = _relation_oids(e2e_dsn)
    started = time.monotonic()
    second = orchestration.run_nightly(small_landing, logical_date=night, dsn=e2e_dsn)
    print(f"\nre-run of the night: {second.state} in {time.monotonic() - started:.1f} s\n{second.render()}")
    assert second.state == "success", second.render()
    assert second.run_id == first.run_id  # one audit row per night
    assert [t.state for t in second.tasks if t.task_id == "per_file.load"] == ["success"]
    _assert_partial(e2e_dsn, second, ["dossier_stats"], oids)
    assert _rows(e2e_dsn, "select status from audit.pipeline_runs where run_id = %s", second.run_id)[0][0] == "success"
    crash_units = {r[0] for r in _rows(
        e2e_dsn, "select distinct r.unit_code from raw.dossier_stats r join audit.submission_files f "
        "on f.file_id = r._file_id where f.file_name = %s", Path(CRASH_FILE).name)}
    mart_units = {r[0] for r in _rows(e2e_dsn, "select distinct unit_code from marts.fct_dossier_throughput")}
    assert crash_units and {u.zfill(3) for u in crash_units} <= mart_units | crash_units
    assert {u.zfill(3) for u in crash_units} & mart_units
    summary = second.summary
    assert summary.get("report") and Path(summary["report"]).exists()
    assert "partial build" in Path(summary["report"]).read_text(encoding="utf-8")
    # What the partial build left in the marts is what a full build of the project gives.
    partial_marts = _mart_fingerprint(e2e_dsn)
    transform.run_dbt(["run", "--exclude", "resource_type:seed"], e2e_dsn, check=True)
    assert _mart_fingerprint(e2e_dsn) == partial_marts

    # A third run of the same night, nothing new, same day: dbt is skipped, the marts do not change.
    before = _mart_fingerprint(e2e_dsn)
    oids = _relation_oids(e2e_dsn)  # a dbt table build makes a new relation: same oid, not rebuilt
    started = time.monotonic()
    third = orchestration.run_nightly(small_landing, logical_date=night, dsn=e2e_dsn)
    noop_s = time.monotonic() - started
    print(f"\nno-op night: {third.state} in {noop_s:.1f} s (dag.test {third.seconds:.1f} s; budget "
          f"{NOOP_BUDGET_S:.0f} s)\n{third.render()}")
    states = {t.label: t.state for t in third.tasks}
    assert third.state == "success", third.render()
    assert [t for t in third.tasks if t.task_id == "per_file.load"] == [] or all(
        t.state == "skipped" for t in third.tasks if t.task_id == "per_file.load")
    assert third.dbt_mode == "skip" and "nothing new" in third.summary["dbt"]["reason"], third.summary
    assert set(_dbt_states(third).values()) == {"skipped"}, _dbt_states(third)
    assert states["decide_dbt"] == "success"
    assert states["dbt_refresh"] == states["marts_built"] == "skipped"
    assert states["report"] == states["finish"] == "success"
    assert "dbt: skipped, because nothing new" in third.render()
    assert "skipped" in Path(third.summary["report"]).read_text(encoding="utf-8")
    assert _mart_fingerprint(e2e_dsn) == before
    assert _relation_oids(e2e_dsn) == oids
    assert noop_s < NOOP_ASSERT_S

    # The next day with nothing new: only the date-dependent models are rebuilt, in one plain task.
    tomorrow = transform.local_today() + timedelta(days=1)
    monkeypatch.setenv(transform.AS_OF_DATE_ENV, tomorrow.isoformat())
    started = time.monotonic()
    fourth = orchestration.run_nightly(small_landing, logical_date=night + timedelta(days=1), dsn=e2e_dsn)
    print(f"\nnext day, nothing new: {fourth.state} in {time.monotonic() - started:.1f} s\n{fourth.render()}")
    states = {t.label: t.state for t in fourth.tasks}
    assert fourth.state == "success", fourth.render()
    assert fourth.dbt_mode == "refresh" and "date changed" in fourth.summary["dbt"]["reason"], fourth.summary
    assert fourth.summary["dbt"]["status"] == "success"
    assert states["dbt_refresh"] == "success" and states["marts_built"] == "skipped"
    assert set(_dbt_states(fourth).values()) == {"skipped"}
    refreshed = _rows(e2e_dsn, "select as_of_date, status from audit.transform_runs where run_id = %s",
                      fourth.run_id)
    assert refreshed == [(tomorrow, "success")]
    assert _mart_fingerprint(e2e_dsn) == before  # the warehouse's own clock did not move
    rebuilt = {name for name, oid in _relation_oids(e2e_dsn).items() if oids.get(name) != oid}
    assert rebuilt == {"intermediate.int_submissions__expected", "marts.rpt_submission_status"}, rebuilt

    # One correction row (issue 20): unit x month of the half-year file sent again, two counts moved
    # between columns (totals unchanged). Only that file is new: a partial build, and the value
    # reaches the mart.
    with (small_landing / SMALL_STATS).open(newline="", encoding="utf-8") as f:
        header, first_row = list(csv.reader(f))[:2]
    row = dict(zip(header, first_row, strict=True))
    corrected = int(row["resolved_on_time"]) + 1
    row.update(resolved_on_time=str(corrected), resolved_early=str(int(row["resolved_early"]) - 1))
    correction = small_landing / "dossier_stats" / "zz_correction_2025.csv"
    with correction.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, [row[c] for c in header]])
    oids = _relation_oids(e2e_dsn)
    started = time.monotonic()
    fifth = orchestration.run_nightly(small_landing, logical_date=night + timedelta(days=1), dsn=e2e_dsn)
    print(f"\none correction row: {fifth.state} in {time.monotonic() - started:.1f} s\n{fifth.render()}")
    assert fifth.state == "success", fifth.render()
    _assert_partial(e2e_dsn, fifth, ["dossier_stats"], oids)
    in_mart = _rows(e2e_dsn, "select resolved_on_time from marts.fct_dossier_throughput "
                    "where unit_code = %s and period = %s", row["unit_code"].zfill(3), row["period"])
    assert in_mart == [(corrected,)], in_mart
    # Nothing new after the partial build, same day: skipped.
    sixth = orchestration.run_nightly(small_landing, logical_date=night + timedelta(days=1), dsn=e2e_dsn)
    assert sixth.state == "success" and sixth.dbt_mode == "skip", sixth.render()

    # A partial build the warehouse refuses (a check constraint a DBA added to the fact refuses the
    # second correction's value): the night fails in dbt_refresh, the build is recorded failed, the
    # fact keeps its rows (dbt's delete+insert is one transaction), and the next night builds in full.
    refused = corrected + 1
    row.update(resolved_on_time=str(refused), resolved_early=str(int(row["resolved_early"]) - 1))
    with (small_landing / "dossier_stats" / "zz_correction_2025_b.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, [row[c] for c in header]])
    with psycopg.connect(e2e_dsn, autocommit=True) as conn:
        conn.execute(f"alter table marts.fct_dossier_throughput add constraint dba_refuses check "
                     f"(resolved_on_time <> {refused}) not valid")
    seventh = orchestration.run_nightly(small_landing, logical_date=night + timedelta(days=1), dsn=e2e_dsn)
    print(f"\na partial build the warehouse refuses: {seventh.state}\n{seventh.render()}")
    states = {t.label: t.state for t in seventh.tasks}
    assert seventh.state == "failed" and seventh.dbt_mode == "partial", seventh.render()
    assert states["dbt_refresh"] == "failed" and states["report"] == "success", states
    assert seventh.summary["dbt"]["status"] == "failed", seventh.summary
    (status, error), = _rows(e2e_dsn, "select status, error from audit.pipeline_runs where run_id = %s",
                             seventh.run_id)
    assert status == "failed" and "dbt_refresh" in error and "fct_dossier_throughput" in error, error
    assert _rows(e2e_dsn, "select resolved_on_time from marts.fct_dossier_throughput "
                 "where unit_code = %s and period = %s", row["unit_code"].zfill(3), row["period"]) == [(corrected,)]
    with psycopg.connect(e2e_dsn, autocommit=True) as conn:
        conn.execute("alter table marts.fct_dossier_throughput drop constraint dba_refuses")
        following, _ = transform.next_decision(conn)
    assert following.mode == "full" and "partial" in following.reason and "failed" in following.reason, following


SMALL_STATS = "dossier_stats/2025_6thang_dau.csv"


def _assert_partial(dsn: str, result, kinds: list[str], oids_before: dict[str, int]) -> None:
    """A partial build of `kinds`: recorded, run by the one plain task, and only its models rebuilt."""
    assert result.dbt_mode == "partial", result.summary
    assert all(kind in result.summary["dbt"]["reason"] for kind in kinds), result.summary
    states = {t.label: t.state for t in result.tasks}
    assert states["dbt_refresh"] == "success" and states["marts_built"] == "skipped"
    assert set(_dbt_states(result).values()) == {"skipped"}, _dbt_states(result)
    (recorded, selection, status), = _rows(
        dsn, "select kinds, selection, status from audit.transform_runs where run_id = %s "
        "order by transform_id desc limit 1", result.run_id)
    assert (recorded, status) == (kinds, "success")
    assert selection == dbt_decision.partial_selection(kinds)
    selected = _models(dsn, selection)
    every = _models(dsn, "fqn:*")
    rebuilt = {name for name, oid in _relation_oids(dsn).items() if oids_before.get(name) != oid}
    assert rebuilt and rebuilt <= selected, rebuilt - selected
    assert "marts.rpt_submission_status" in rebuilt and every - selected, every - selected


def _models(dsn: str, selection: str) -> set[str]:
    """schema.relation of the models `dbt ls --select` names (dbt's own reading of a selection)."""
    result = transform.run_dbt(["ls", "--select", *selection.split(), "--resource-type", "model",
                                "--output", "json", "--output-keys", "schema", "alias", "--quiet"],
                                dsn, check=True)
    return {f"{n['schema']}.{n['alias']}" for n in map(json.loads, result.result)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_scheduler_runs_a_scheduled_night_by_itself(tmp_path, small_landing, e2e_dsn):
    """`reform-etl airflow` (Airflow standalone, metadata in the warehouse's server) runs the nightly on its own.

    The cron is set to fire three minutes from now (REFORM_NIGHTLY_CRON), so that the API server is up
    before the scheduler hands the first task over; nothing triggers the run but the scheduler.
    """
    import signal
    import subprocess
    import zoneinfo

    if not _rows(e2e_dsn, "select count(*) from audit.pipeline_runs where status = 'success'")[0][0]:
        pytest.skip("needs the end-to-end run's warehouse (a night here would be a full build)")
    fire = datetime.now(zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")) + timedelta(minutes=3)
    env = {**os.environ, "WAREHOUSE_DSN": e2e_dsn, "REFORM_LANDING": str(small_landing),
           "AIRFLOW_HOME": str(tmp_path / "airflow"), "REFORM_AIRFLOW_PORT": str(_free_port()),
           "REFORM_NIGHTLY_CRON": f"{fire.minute} {fire.hour} * * *"}
    log = (tmp_path / "airflow.log").open("w")
    process = subprocess.Popen([str(Path(sys.executable).parent / "reform-etl"), "airflow"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    query = ("select run_id, status, triggered_by, error from audit.pipeline_runs "
             "where triggered_by = 'scheduled' and status <> 'running'")
    try:
        deadline = time.monotonic() + 12 * 60
        finished = []
        while not finished and time.monotonic() < deadline and process.poll() is None:
            time.sleep(5)
            finished = _rows(e2e_dsn, query)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        with psycopg.connect(e2e_dsn, autocommit=True) as conn:
            database = conn.execute("select current_database()").fetchone()[0]
            conn.execute(f'drop database if exists "{database}_airflow" with (force)')
    output = (tmp_path / "airflow.log").read_text(errors="replace")
    assert finished, f"no scheduled night finished; Airflow said:\n{output[-4000:]}"
    (run_id, status, triggered_by, error), = finished
    assert run_id.startswith(f"{orchestration.NIGHTLY_DAG_ID}__") and triggered_by == "scheduled"
    assert status == "success", error


def _relation_oids(dsn: str) -> dict[str, int]:
    return dict(_rows(dsn, "select n.nspname || '.' || c.relname, c.oid::bigint from pg_class c "
                      "join pg_namespace n on n.oid = c.relnamespace "
                      "where n.nspname in ('staging', 'intermediate', 'marts') and c.relkind in ('r', 'v')"))


def _mart_fingerprint(dsn: str) -> dict[str, str]:
    tables = [r[0] for r in _rows(
        dsn, "select table_name from information_schema.tables where table_schema = 'marts' "
        "and table_type = 'BASE TABLE' order by 1")]
    out = {}
    for table in tables:
        cols = [r[0] for r in _rows(
            dsn, "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = %s and data_type not like 'timestamp%%' and column_name not like '%%loaded_at' "
            "order by ordinal_position", table)]
        expr = ", ".join(f'"{c}"' for c in cols)
        out[table] = _rows(dsn, f'select md5(coalesce(string_agg(t::text, \'|\' order by t::text), \'\')) '
                                f'from (select {expr} from marts."{table}") t')[0][0]
    return out


def test_run_id_is_the_night_in_local_time():
    night = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    assert orchestration.run_id_for("reform_nightly", night, "x") == "reform_nightly__2026-11-21T01:00:00+07:00"
    assert orchestration.run_id_for("reform_nightly", None, "asset_triggered__1") == (
        "reform_nightly__asset_triggered__1")


def test_dbt_decision_full_refresh_or_skip():
    """decide_dbt's rule, on recorded states: anything that can make the marts stale means a full build."""
    from datetime import date

    today = date(2026, 11, 21)
    files = {"files": 3, "max_file_id": 7, "by_status": {"accepted": 2, "rejected": 1}}
    state = {"files_fingerprint": "f1", "files_state": files, "seeds_fingerprint": "s1", "project_fingerprint": "p1",
             "as_of_date": today, "warehouse_date": today}
    full = {**state, "run_id": "reform_nightly__2026-11-21T01:00:00+07:00", "mode": "full", "status": "success",
            "decided_at": datetime(2026, 11, 20, 18, 5, tzinfo=UTC)}

    def choose(now=None, seeds_reloaded=False, last_full=full, last_attempt=full, missing=(), last_build=None):
        return dbt_decision._choose({**state, **(now or {})}, seeds_reloaded, last_full, last_attempt,
                                     list(missing), "this run", last_build)

    assert choose() == ("skip", choose()[1]) and "same day" in choose()[1]
    assert choose(last_full=None, last_attempt=None)[0] == "full"
    crashed = {**full, "status": "running"}  # a build killed half-way: never trusted
    assert choose(last_full=full, last_attempt=crashed) == ("full", choose(last_attempt=crashed)[1])
    assert "did not finish" in choose(last_attempt=crashed)[1]
    assert "failed" in choose(last_attempt={**full, "mode": "refresh", "status": "failed"})[1]
    assert choose(seeds_reloaded=True)[0] == "full"
    # A new file and an earlier one changed state (its fingerprint up to file 7 is not the build's): full.
    new_file = {"files_fingerprint": "f2", "files_state": {**files, "max_file_id": 8, "files": 4},
                "files_fingerprint_upto": "f9", "new_kinds": ["it_kpis"]}
    assert choose(new_file)[0] == "full" and "earlier files changed state" in choose(new_file)[1]
    revalidated = {"files_fingerprint": "f3",  # crash recovery: a loaded file validated by this run
                   "files_state": {**files, "by_status": {"accepted": 3, "rejected": 1}}}
    assert choose(revalidated)[0] == "full" and "accepted 2" in choose(revalidated)[1]
    assert choose({"seeds_fingerprint": "s2"})[0] == "full"
    assert choose({"project_fingerprint": "p2"})[0] == "full"
    assert choose(missing=["marts.dim_unit"])[0] == "full"
    tomorrow = today + timedelta(days=1)
    assert choose({"as_of_date": tomorrow})[0] == "refresh"
    assert choose({"warehouse_date": tomorrow})[0] == "refresh"  # the warehouse's clock rolled over first
    refreshed = {**full, "mode": "refresh", "as_of_date": tomorrow, "warehouse_date": tomorrow}
    assert choose({"as_of_date": tomorrow, "warehouse_date": tomorrow}, last_attempt=refreshed)[0] == "skip"


def test_dbt_decision_partial_when_only_new_files():
    """Only new files since the last build, every earlier file as built: a partial build of their kinds."""
    from datetime import date

    today = date(2026, 11, 21)
    files = {"files": 3, "max_file_id": 7, "by_status": {"accepted": 2, "rejected": 1}}
    built = {"files_fingerprint": "f1", "files_state": files, "seeds_fingerprint": "s1", "project_fingerprint": "p1",
             "as_of_date": today, "warehouse_date": today, "run_id": "reform_nightly__2026-11-21T01:00:00+07:00",
             "mode": "full", "status": "success", "decided_at": datetime(2026, 11, 20, 18, 5, tzinfo=UTC)}
    # File 8 (dossier_stats) is new; files up to 7 fingerprint as the build saw them.
    now = {**built, "files_fingerprint": "f2", "files_state": {**files, "files": 4, "max_file_id": 8},
           "files_fingerprint_upto": "f1", "new_kinds": ["dossier_stats"]}

    def choose(state=None, seeds_reloaded=False, last_attempt=built, missing=(), last_build=None, last_full=built):
        return dbt_decision._choose(state or now, seeds_reloaded, last_full, last_attempt, list(missing),
                                     "this run", last_build)

    mode, reason = choose()
    assert mode == "partial" and "dossier_stats" in reason and "1 more" in reason, reason
    # Anything else changed as well: the full build stays.
    assert choose({**now, "files_fingerprint_upto": "f0"})[0] == "full"  # an earlier file re-validated
    assert choose({**now, "new_kinds": []})[0] == "full"  # a status changed, nothing newer
    assert choose(seeds_reloaded=True)[0] == "full"
    assert choose({**now, "seeds_fingerprint": "s2"})[0] == "full"
    assert choose({**now, "project_fingerprint": "p2"})[0] == "full"
    assert choose(missing=["marts.fct_it_adoption"])[0] == "full"
    assert choose(last_full=None, last_attempt=None)[0] == "full"
    # A partial that failed or was interrupted: the next night builds in full.
    partial = {**now, "mode": "partial", "status": "failed", "run_id": "reform_nightly__2026-11-22T01:00:00+07:00"}
    assert choose(now, last_attempt=partial)[0] == "full"
    assert "did not finish" in choose(now, last_attempt={**partial, "status": "running"})[1]
    # After a successful partial, it is what the next night compares with: nothing new -> skip, then refresh.
    done = {**partial, "status": "success"}
    after = {**now, "files_fingerprint_upto": "f2", "new_kinds": []}
    assert choose(after, last_attempt=done, last_build=done)[0] == "skip"
    assert "dbt partial" in choose(after, last_attempt=done, last_build=done)[1]
    tomorrow = today + timedelta(days=1)
    assert choose({**after, "as_of_date": tomorrow}, last_attempt=done, last_build=done)[0] == "refresh"
    # ... and compared with the full build before it, the same state would be another partial build.
    assert choose(now, last_attempt=done)[0] == "partial"
    # A newer file again, after the partial: partial again, compared with the partial's state.
    again = {**now, "files_fingerprint": "f3", "files_state": {**files, "files": 5, "max_file_id": 9},
             "files_fingerprint_upto": "f2", "new_kinds": ["par_scores"]}
    assert choose(again, last_attempt=done, last_build=done) == ("partial", choose(again, last_attempt=done,
                                                                                   last_build=done)[1])
    assert choose({**again, "files_fingerprint_upto": "f1"}, last_attempt=done, last_build=done)[0] == "full"


def test_partial_selection_names_the_kinds_sources_and_the_date_dependent_models():
    selection = dbt_decision.partial_selection(["dossier_stats", "", "unknown"], {"dossier_stats", "it_kpis"})
    assert selection == "source:raw.dossier_stats+ source:quarantine.dossier_stats+ tag:as_of_date"
    assert dbt_decision.partial_selection([""], {"dossier_stats"}) == "tag:as_of_date"  # a file of no kind
    assert "partial" in dbt_decision.DBT_MODES and all(dbt_decision.DBT_WORDS["partial"])


@pytest.mark.slow
def test_backfill_rebuilds_the_window_from_raw(airflow_home, e2e_dsn, monkeypatch):
    """`reform-etl backfill --from 2025-01 --to 2025-06`: the marts come back identical from raw, audited."""
    monkeypatch.setenv("WAREHOUSE_DSN", e2e_dsn)
    if not _rows(e2e_dsn, "select count(*) from audit.pipeline_runs where status = 'success'")[0][0]:
        pytest.skip("needs the end-to-end run's warehouse")
    before = _mart_fingerprint(e2e_dsn)
    started = time.monotonic()
    summary = backfill("2025-01", "2025-06", dsn=e2e_dsn)
    print(f"\nbackfill 2025-01..2025-06 in {time.monotonic() - started:.1f} s")
    assert summary["period_from"] == "2025-01" and summary["period_to"] == "2025-06"
    assert _mart_fingerprint(e2e_dsn) == before
    status, triggered_by = _rows(e2e_dsn, "select status, triggered_by from audit.pipeline_runs where run_id = %s",
                                 summary["run_id"])[0]
    assert (status, triggered_by) == ("success", "backfill")


@pytest.mark.slow
def test_reference_data_dag_reloads_seeds_on_demand(airflow_home, e2e_dsn, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_DSN", e2e_dsn)
    loads = _rows(e2e_dsn, "select count(*) from audit.reference_data_loads")[0][0]
    result = orchestration.run_reference_data(force=True, dsn=e2e_dsn)
    print(f"\n{result.render()}")
    assert result.state == "success"
    assert all(t.state == "success" for t in result.tasks)
    assert _rows(e2e_dsn, "select count(*) from audit.reference_data_loads")[0][0] == loads + 1
    assert not transform.seeds_changed(e2e_dsn)
    # Unchanged seeds and no force: the run stops after its first, cheap task.
    again = orchestration.run_reference_data(force=False, dsn=e2e_dsn)
    states = {t.label: t.state for t in again.tasks}
    assert states["seeds_changed"] == "success" and states["record"] == "skipped"
    # Reloaded seeds (`dbt seed --full-refresh` drops the views on them): the next nightly rebuilds the
    # marts in full, even though the seed files did not change (recorded like a decision of the DAG).
    built = _rows(e2e_dsn, "select count(*) from audit.transform_runs where mode = 'full' and status = 'success'")
    decision = transform.decide_dbt(None, dsn=e2e_dsn)
    assert decision.mode == "full", decision
    if built[0][0]:  # after the end-to-end runs (otherwise: never built)
        assert "reference data" in decision.reason and "reloaded since" in decision.reason, decision
