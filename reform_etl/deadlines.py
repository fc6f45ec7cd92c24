"""Submission deadlines: the dbt vars that set them, as arguments of the one SQL definition.

A period's deadline is `audit.submission_deadline_at(period, day_of_next_month, yearly_month_day,
timezone)` (reform_etl/sql/040_submission_deadlines.sql). The mart rpt_submission_status calls it
with the dbt vars (dbt_project/macros/submission_deadline.sql); the run warning
unit_missing_for_period calls it with the same vars, read here from dbt_project.yml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from reform_etl.config import settings


@dataclass(frozen=True)
class Deadlines:
    day_of_next_month: int  # monthly kinds: due on this day of the next month
    yearly_month_day: str  # yearly kinds (PAR scores): due on this MM-DD of the next year
    timezone: str  # the deadline day ends at midnight in this zone


@lru_cache(maxsize=4)
def _read(project_file: Path) -> Deadlines:
    variables = (yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}).get("vars") or {}
    found = Deadlines(int(variables["submission_deadline_day_of_next_month"]),
                      str(variables["submission_deadline_yearly"]), str(variables["submission_timezone"]))
    if not (1 <= found.day_of_next_month <= 28 and re.fullmatch(r"(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
                                                                   found.yearly_month_day)
            and re.fullmatch(r"[A-Za-z_]+(/[A-Za-z_+-]+)*", found.timezone)):
        raise ValueError(f"{project_file}: submission deadline vars are not a day 1-28, an MM-DD and a zone: {found}")
    return found


def deadlines() -> Deadlines:
    """The deadline vars of the dbt project; raises KeyError / ValueError when missing or malformed."""
    return _read(settings().dbt_project / "dbt_project.yml")


def deadline_at_sql(period: str) -> str:
    """SQL: the end of the deadline day of `period` (an SQL text expression, 'YYYY-MM' or 'YYYY')."""
    d = deadlines()
    return f"audit.submission_deadline_at({period}, {d.day_of_next_month}, '{d.yearly_month_day}', '{d.timezone}')"
