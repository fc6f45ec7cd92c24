"""Where the dbt project is: the source project, the shadow project Cosmos runs, its profile and manifest."""

from __future__ import annotations

import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import yaml

from reform_etl.config import settings


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
    `transform.manifest.ensure_manifest()`. Without such a path, the project itself.
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
