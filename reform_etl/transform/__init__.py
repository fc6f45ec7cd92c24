"""The transform stage: running dbt, its manifest, the full / partial / refresh / skip decision."""

from reform_etl.reference import (  # the seeds' dbt side; reference data lives there
    last_seeds_fingerprint,
    load_seeds,
    record_seeds_loaded,
    seeds_changed,
    seeds_fingerprint,
)
from reform_etl.transform.dbt import dbt_env, environment, run_dbt
from reform_etl.transform.decision import (
    AS_OF_DATE_ENV,
    AS_OF_TAG,
    DBT_GROUP_ID,
    DBT_MODES,
    DBT_REFRESH_TASK_ID,
    DBT_WORDS,
    DbtDecision,
    build_selected,
    close_transform,
    decide_dbt,
    local_today,
    next_decision,
    project_fingerprint,
    transform_summary,
)
from reform_etl.transform.manifest import ensure_manifest, manifest_is_stale

__all__ = [
    "AS_OF_DATE_ENV", "AS_OF_TAG", "DBT_GROUP_ID", "DBT_MODES", "DBT_REFRESH_TASK_ID", "DBT_WORDS", "DbtDecision",
    "close_transform", "dbt_env", "decide_dbt", "ensure_manifest", "environment",
    "last_seeds_fingerprint", "load_seeds", "local_today", "manifest_is_stale", "next_decision",
    "project_fingerprint", "record_seeds_loaded", "build_selected", "run_dbt", "seeds_changed",
    "seeds_fingerprint", "transform_summary",
]
