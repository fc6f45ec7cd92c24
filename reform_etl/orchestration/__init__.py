"""The Airflow side: the names the DAG files use (task bodies, callbacks, ids, Assets) and the local runner.

Airflow reads its configuration when it is first imported, so nothing here imports Airflow at
module level: `prepare_airflow()` sets the environment first, then the run path imports it.
"""

from reform_etl.orchestration.airflow_home import airflow_env, dags_folder, migrate_if_needed, prepare_airflow
from reform_etl.orchestration.callbacks import record_dag_failure, record_task_failure, recorded_failures
from reform_etl.orchestration.dag_config import MARTS_ASSET, NIGHTLY_DAG_ID, RAW_ASSET, REFERENCE_DAG_ID, SEEDS_ASSET
from reform_etl.orchestration.local import NightlyResult, TaskState, load_dag, run_dag, run_nightly, run_reference_data
from reform_etl.orchestration.run_ids import run_id_for, run_id_from_context
from reform_etl.orchestration.tasks import (
    dbt_text,
    file_label,
    is_transient,
    resolve_landing,
    summary_paragraph,
    task_build_selected,
    task_cross_file_checks,
    task_decide_dbt,
    task_discover,
    task_finish,
    task_load,
    task_marts_built,
    task_report,
    task_start,
    task_validate,
    transient_only,
)
from reform_etl.reference import load_seeds, record_seeds_loaded, seeds_changed
from reform_etl.transform.decision import DBT_GROUP_ID, DBT_REFRESH_TASK_ID

__all__ = [
    "DBT_GROUP_ID", "DBT_REFRESH_TASK_ID", "MARTS_ASSET", "NIGHTLY_DAG_ID", "RAW_ASSET", "REFERENCE_DAG_ID",
    "SEEDS_ASSET", "NightlyResult", "TaskState", "airflow_env", "dags_folder", "dbt_text", "file_label",
    "is_transient", "load_dag", "load_seeds", "migrate_if_needed", "prepare_airflow", "record_dag_failure",
    "record_seeds_loaded", "record_task_failure", "recorded_failures", "resolve_landing", "run_dag", "run_id_for",
    "run_id_from_context", "run_nightly", "run_reference_data", "seeds_changed", "summary_paragraph",
    "task_cross_file_checks", "task_decide_dbt", "task_discover", "task_finish", "task_load", "task_marts_built",
    "task_build_selected", "task_report", "task_start", "task_validate", "transient_only",
]
