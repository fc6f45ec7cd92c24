"""The Cosmos objects the DAGs share: one dbt project, one profile, one way to run dbt.

Everything here is cheap to build (no dbt invocation, no database): it runs every time the
dag-processor parses a DAG file. The manifest (`dbt_project/target/manifest.json`) must exist
before parsing; `reform_etl.orchestration.ensure_manifest()` writes it (the CLI run path calls
it, the compose image runs it at build time).

The dbt connection is `dbt_project/profiles.yml`, which reads REFORM_DB_* from the environment:
plain `dbt`, the CLI and the Cosmos tasks all use that one profile.
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import pendulum
import yaml

from reform_etl.config import settings

TIMEZONE = "Asia/Ho_Chi_Minh"
NIGHTLY_CRON = "0 1 * * *"  # 01:00 local time, after the districts' evening uploads
START_DATE = pendulum.datetime(2026, 1, 1, tz=TIMEZONE)
OWNER = "reform-data-team"
TAGS_COMMON = ("reform", "par-index")


def source_project_dir() -> Path:
    """The dbt project as written: DBT_PROJECT_DIR, else `<repo>/dbt_project`."""
    return settings().dbt_project


def escaping_paths() -> dict[str, list[str]]:
    """`*-paths` of dbt_project.yml that point outside the project (e.g. seed-paths: ["../seeds"])."""
    project = _read_yaml(source_project_dir() / "dbt_project.yml")
    out: dict[str, list[str]] = {}
    for key, value in project.items():
        if key.endswith("-paths") and isinstance(value, list) and any(str(v).startswith("..") for v in value):
            out[key] = [str(v) for v in value]
    return out


def shadow_project_dir() -> Path:
    return settings().airflow_home / "dbt_project"


def project_dir() -> Path:
    """The dbt project Cosmos runs.

    Cosmos runs every dbt command in a temporary folder of symlinks to the project's top-level
    entries, so a path that leaves the project ("../seeds") resolves to nothing there. When the
    project has such a path, Cosmos gets a shadow project (`<airflow home>/dbt_project`: the same
    symlinks, plus one per outside folder and a dbt_project.yml pointing at them), written by
    `orchestration.ensure_manifest()`. Without such a path, the project itself.
    """
    return shadow_project_dir() if escaping_paths() else source_project_dir()


def profiles_yml() -> Path:
    return source_project_dir() / "profiles.yml"


def manifest_path() -> Path:
    return project_dir() / "target" / "manifest.json"


def dbt_executable() -> str:
    """The `dbt` next to the running interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    return shutil.which("dbt") or "dbt"


@lru_cache(maxsize=8)
def _yaml(path: str, mtime: float) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}


def _read_yaml(path: Path) -> dict:
    return _yaml(str(path), path.stat().st_mtime) if path.exists() else {}


def profile_name() -> str:
    return str(_read_yaml(project_dir() / "dbt_project.yml").get("profile") or "reform")


def target_name() -> str:
    env = os.environ.get("DBT_TARGET")
    if env:
        return env
    profile = _read_yaml(profiles_yml()).get(profile_name()) or {}
    return str(profile.get("target") or "dev")


def project_name() -> str:
    return str(_read_yaml(project_dir() / "dbt_project.yml").get("name") or "reform")


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
            "(reform_etl.orchestration.ensure_manifest) before parsing the DAGs"
        )
    return path
