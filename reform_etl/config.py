"""Paths and settings, resolved once from the environment with repo-relative defaults.

Every path can be overridden by an environment variable so that the same code runs from a
checkout (`make run`), from tests (temp folders) and inside the production containers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

TIMEZONE = "Asia/Ho_Chi_Minh"  # the provinces' local time: schedules, "today", run ids


def as_local(value: datetime | str) -> datetime:
    """A moment in the provinces' time zone (a naive one, as some drivers return, is UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(ZoneInfo(TIMEZONE))


def _repo_root() -> Path:
    env = os.environ.get("REFORM_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    home: Path
    landing: Path
    archive: Path
    reports: Path
    pgdata: Path
    dbt_project: Path
    seeds: Path
    expectations: Path
    airflow_home: Path
    warehouse_dsn: str | None
    database: str
    credentials: Path  # generated passwords (mode 0600): the embedded superuser's, bi_reader's, auditor's
    # GSO code of the deployment's province: forms' unit names resolve within it (default: the sample's).
    province_code: str = "25"
    # A file is loaded once its size and modification time have been still this long: an upload in
    # progress (SFTP at 01:00) is left for a later run, never loaded half-written.
    quiet_seconds: float = 120.0

    @classmethod
    def from_env(cls) -> Settings:
        home = _repo_root()

        def path(var: str, default: Path) -> Path:
            value = os.environ.get(var)
            return Path(value).resolve() if value else default

        pgdata = path("REFORM_PGDATA", home / ".warehouse" / "pgdata")
        return cls(
            home=home,
            landing=path("REFORM_LANDING", Path.cwd() / "landing"),
            archive=path("REFORM_ARCHIVE", home / "archive"),
            reports=path("REFORM_REPORTS", home / "reports"),
            pgdata=pgdata,
            dbt_project=path("DBT_PROJECT_DIR", home / "dbt_project"),
            seeds=path("REFORM_SEEDS", home / "seeds"),
            expectations=path("REFORM_EXPECTATIONS", home / "expectations"),
            airflow_home=path("AIRFLOW_HOME", home / ".airflow"),
            warehouse_dsn=os.environ.get("WAREHOUSE_DSN") or None,
            database=os.environ.get("REFORM_DATABASE", "reform"),
            credentials=path("REFORM_CREDENTIALS", pgdata.parent / "credentials.json"),
            province_code=os.environ.get("REFORM_PROVINCE", "25"),
            quiet_seconds=float(os.environ.get("REFORM_QUIET_SECONDS") or 120),
        )


def settings() -> Settings:
    # Not cached: tests and the CLI change the environment between calls.
    return Settings.from_env()
