"""What the DAG files share: DAG ids, Assets, schedule, and the Cosmos objects (one dbt project, one profile).

Everything here is cheap to build (no database, and no dbt once the manifest is fresh): it runs
every time the dag-processor parses a DAG file. The dbt project is found from the DAG file
(`<dags>/../dbt_project`, as astronomer-cosmos' own example DAGs do), DBT_PROJECT_DIR overriding
it, and `project_config()` makes its manifest when it is missing or stale, so the DAGs parse in
any Airflow home without an earlier command.

The dbt connection is `dbt_project/profiles.yml`, which reads REFORM_DB_* from the environment:
plain `dbt`, the CLI and the Cosmos tasks all use that one profile.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum

from reform_etl.config import TIMEZONE
from reform_etl.transform.project import (  # noqa: F401  (the DAG files and tests read them here too)
    dbt_executable,
    manifest_path,
    profile_name,
    profiles_yml,
    project_dir,
    project_name,
    target_name,
)

NIGHTLY_DAG_ID = "reform_nightly"
REFERENCE_DAG_ID = "reform_reference_data"

# Asset names (Airflow 3 data-aware scheduling). Names, not host-specific URIs, so that the laptop
# and the cluster see the same assets.
RAW_ASSET = "reform.raw_submissions"  # a submission file reached raw.*
SEEDS_ASSET = "reform.reference_data"  # the dbt seeds were (re)loaded
MARTS_ASSET = "reform.marts"  # the nightly published marts and its run report
# 01:00 local time, after the districts' evening uploads; REFORM_NIGHTLY_CRON overrides it.
NIGHTLY_CRON = os.environ.get("REFORM_NIGHTLY_CRON") or "0 1 * * *"
START_DATE = pendulum.datetime(2026, 1, 1, tz=TIMEZONE)
OWNER = "reform-data-team"
# Transient errors (a connection lost, a warehouse restarting) are retried, briefly: 5 s then 10 s, so a
# warehouse that is down fails the night within a minute (orchestration.tasks.is_transient) instead of
# retrying for many minutes; the next night recovers.
TRANSIENT_RETRIES = {
    "retries": 2,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(seconds=20),
}
TAGS_COMMON = ("reform", "par-index")


def dbt_project_for(dag_file: str | Path) -> Path:
    """The dbt project of a DAG file: DBT_PROJECT_DIR, else `dbt_project/` beside its DAGs folder."""
    env = os.environ.get("DBT_PROJECT_DIR")
    return Path(env).resolve() if env else Path(dag_file).resolve().parents[1] / "dbt_project"


def profile_config(project: Path | None = None):
    from cosmos import ProfileConfig

    return ProfileConfig(profile_name=profile_name(project), target_name=target_name(project),
                         profiles_yml_filepath=profiles_yml(project))


def project_config(project: Path | None = None):
    """Cosmos' view of the dbt project; writes its manifest first when it is missing or stale.

    Raises FileNotFoundError without a dbt project, RuntimeError when `dbt parse` fails.
    """
    from cosmos import ProjectConfig

    from reform_etl.transform.manifest import ensure_manifest

    project = project or project_dir()
    return ProjectConfig(
        dbt_project_path=project,
        manifest_path=ensure_manifest(project=project),
        project_name=project_name(project),
        install_dbt_deps=False,  # packages (if any) are installed by `ensure_manifest`, never per task
    )


def execution_config():
    from cosmos import ExecutionConfig
    from cosmos.constants import ExecutionMode, InvocationMode

    return ExecutionConfig(
        execution_mode=ExecutionMode.LOCAL,
        invocation_mode=InvocationMode.DBT_RUNNER,  # in-process dbtRunner: no interpreter start per model
        dbt_executable_path=dbt_executable(),
    )


def render_config(select: list[str] | None = None, exclude: list[str] | None = None):
    """Manifest load mode (parsing the DAG never runs dbt); one `dbt build` task per model.

    TestBehavior.BUILD: each model's task is `dbt build --select fqn:<model>`, which builds the model
    and then runs its tests (half the tasks of a run task + a test task per model; a failing test
    still fails the model's task and stops its children).
    """
    from cosmos import RenderConfig
    from cosmos.constants import LoadMode, TestBehavior

    return RenderConfig(
        load_method=LoadMode.DBT_MANIFEST,
        test_behavior=TestBehavior.BUILD,
        select=select or [],
        exclude=exclude or [],
        # Relationship tests (fact -> dimension) run in their own `dbt test` task once both models are
        # built, not after whichever parent happens to come first: Cosmos excludes them from each
        # parent's `dbt build` (--exclude <test>) and renders them as `<test name>_test` tasks.
        should_detach_multiple_parents_tests=True,
        # Our own Assets (reform_etl.orchestration) say what the pipeline produces; per-table
        # assets named after the warehouse host and port would differ between laptop and cluster.
        emit_datasets=False,
    )


def operator_args() -> dict:
    return {
        "install_deps": False,
        # Same profile, same env: the REFORM_DB_* variables the process already has
        # (set by `reform-etl run` in-process, by the compose file in the cluster).
        "append_env": True,
    }
