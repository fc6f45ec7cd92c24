"""Where the dbt project is: the project folder, its profile and its manifest.

Every path the project names stays inside it (the seeds are `dbt_project/seeds`, a link to the
top-level `seeds/` folder), so Cosmos can run it from its temporary folder of links as it is:
no copy of the project is written anywhere before a DAG can be parsed.
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import yaml

from reform_etl.config import settings


def project_dir() -> Path:
    """The dbt project: DBT_PROJECT_DIR, else `<repo>/dbt_project`."""
    return settings().dbt_project


def profiles_yml(project: Path | None = None) -> Path:
    return (project or project_dir()) / "profiles.yml"


def manifest_path(project: Path | None = None) -> Path:
    return (project or project_dir()) / "target" / "manifest.json"


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


def profile_name(project: Path | None = None) -> str:
    return str(_read_yaml((project or project_dir()) / "dbt_project.yml").get("profile") or "reform")


def target_name(project: Path | None = None) -> str:
    env = os.environ.get("DBT_TARGET")
    if env:
        return env
    profile = _read_yaml(profiles_yml(project)).get(profile_name(project)) or {}
    return str(profile.get("target") or "dev")


def project_name(project: Path | None = None) -> str:
    return str(_read_yaml((project or project_dir()) / "dbt_project.yml").get("name") or "reform")
