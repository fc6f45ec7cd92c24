"""The dbt manifest the DAGs render from, (re)built by `dbt parse` when the dbt code changed."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from reform_etl.config import settings
from reform_etl.transform import project as dbt_project
from reform_etl.transform.dbt import run_dbt

log = logging.getLogger(__name__)


def dbt_code(project: Path) -> Iterator[Path]:
    """The files that define the dbt project's models (not its seeds): yml at the top, models, macros..."""
    for pattern in ("*.yml", "*.yaml"):
        yield from sorted(project.glob(pattern))
    for sub in ("models", "macros", "tests", "snapshots", "analyses"):
        folder = project / sub
        if folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.is_file())


def _dbt_inputs(project: Path) -> Iterator[Path]:
    yield from dbt_code(project)
    seeds = settings().seeds
    if seeds.is_dir():
        yield from seeds.rglob("*")  # seed checksums are part of the manifest


def manifest_is_stale(project: Path | None = None) -> bool:
    project = project or dbt_project.project_dir()
    manifest = dbt_project.manifest_path(project)
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _dbt_inputs(project))


def ensure_manifest(force: bool = False, project: Path | None = None) -> Path:
    """`dbt parse` when target/manifest.json is missing or older than the project; returns its path.

    The DAGs render dbt from the manifest (Cosmos LoadMode.DBT_MANIFEST) and call this while they
    are parsed, so a fresh checkout needs no earlier command; once the manifest is fresh this only
    compares file times. A lock keeps two DAG files parsed at once from running `dbt parse` together.
    Raises FileNotFoundError without a dbt project, RuntimeError when `dbt parse` fails.
    """
    project = project or dbt_project.project_dir()
    if not (project / "dbt_project.yml").exists():
        raise FileNotFoundError(f"no dbt project at {project} (set DBT_PROJECT_DIR)")
    if not force and not manifest_is_stale(project):
        return dbt_project.manifest_path(project)
    (project / "target").mkdir(exist_ok=True)
    with (project / "target" / ".manifest.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if (project / "packages.yml").exists() and not (project / "dbt_packages").exists():
            run_dbt(["deps"], project=project, check=True)
        if force or manifest_is_stale(project):  # another process may have parsed while we waited
            started = time.monotonic()
            run_dbt(["parse"], project=project, check=True)
            log.info("dbt parse took %.1f s", time.monotonic() - started)
    return dbt_project.manifest_path(project)
