"""reform_reference_data: reload the dbt seeds (units, frameworks, KPIs, fields, bands, 766 metrics).

Runs on demand (trigger with {"force": true}) and checks every hour whether a seed file changed
since the last load into the warehouse (fingerprint in audit.reference_data_loads); unchanged ->
the run stops after one cheap task. A reload updates the `reform.reference_data` asset, which
schedules `reform_nightly` so the marts are rebuilt on the new reference data.
"""

from __future__ import annotations

from airflow.sdk import DAG, Asset, CronTriggerTimetable, Param, task
from cosmos import DbtTaskGroup

from reform_etl import orchestration as orc
from reform_etl.orchestration import dag_config

DBT_PROJECT = dag_config.dbt_project_for(__file__)  # DBT_PROJECT_DIR overrides it

SEEDS = Asset(orc.SEEDS_ASSET)

with DAG(
    dag_id=orc.REFERENCE_DAG_ID,
    description="Reload reference-data seeds when a seed file changes, or on demand",
    schedule=CronTriggerTimetable("17 * * * *", timezone=dag_config.TIMEZONE),
    start_date=dag_config.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": dag_config.OWNER,
        **dag_config.TRANSIENT_RETRIES,
        "on_failure_callback": orc.record_task_failure,
    },
    params={"force": Param(False, type="boolean", description="Reload even if no seed file changed")},
    tags=[*dag_config.TAGS_COMMON, "reference-data"],
    doc_md=__doc__,
) as dag:

    @task.short_circuit(retries=0)
    def seeds_changed(**context) -> bool:
        conf = getattr(context["dag_run"], "conf", None) or {}
        force = bool(conf.get("force", context["params"].get("force")))
        return force or orc.seeds_changed()

    seeds = DbtTaskGroup(
        group_id="dbt_seed",
        project_config=dag_config.project_config(DBT_PROJECT),
        profile_config=dag_config.profile_config(DBT_PROJECT),
        execution_config=dag_config.execution_config(),
        render_config=dag_config.render_config(select=["resource_type:seed"]),
        operator_args={**dag_config.operator_args(), "full_refresh": True},
    )

    @task(outlets=[SEEDS])
    def record(**context) -> str:
        return orc.record_seeds_loaded(orc.run_id_from_context(context))

    seeds_changed() >> seeds >> record()
