"""What the DAG files share: DAG ids, Assets, schedule, and the Cosmos objects (one dbt project, one profile).

Everything here is cheap to build (no dbt invocation, no database): it runs every time the
dag-processor parses a DAG file. The manifest (`dbt_project/target/manifest.json`) must exist
before parsing; `reform_etl.transform.manifest.ensure_manifest()` writes it (the CLI run path calls
it, the compose image runs it at build time).

The dbt connection is `dbt_project/profiles.yml`, which reads REFORM_DB_* from the environment:
plain `dbt`, the CLI and the Cosmos tasks all use that one profile.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum

from reform_etl.config import TIMEZONE
from reform_etl.transform.project import (  # noqa: F401  (the DAG files and tests read them here too)
    dbt_executable,
    escaping_paths,
    manifest_path,
    profile_name,
    profiles_yml,
    project_dir,
    project_name,
    shadow_project_dir,
    source_project_dir,
    target_name,
)

NIGHTLY_DAG_ID = "reform_nightly"
REFERENCE_DAG_ID = "reform_reference_data"

# Asset names (Airflow 3 data-aware scheduling). Names, not host-specific URIs, so that the laptop
# and the cluster see the same assets.
RAW_ASSET = "reform.raw_submissions"  # a submission file reached raw.*
SEEDS_ASSET = "reform.reference_data"  # the dbt seeds were (re)loaded
MARTS_ASSET = "reform.marts"  # the nightly published marts and its run report
NIGHTLY_CRON = "0 1 * * *"  # 01:00 local time, after the districts' evening uploads
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


def profile_config():
    from cosmos import ProfileConfig

    return ProfileConfig(profile_name=profile_name(), target_name=target_name(), profiles_yml_filepath=profiles_yml())


def project_config():
    from cosmos import ProjectConfig

    return ProjectConfig(
        dbt_project_path=project_dir(),
        manifest_path=manifest_path(),
        project_name=project_name(),
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


def require_manifest() -> Path:
    path = manifest_path()
    if not path.exists():
        raise FileNotFoundError(
            f"dbt manifest not found at {path}: run `reform-etl dbt-parse` "
            "(reform_etl.transform.manifest.ensure_manifest) before parsing the DAGs"
        )
    return path
