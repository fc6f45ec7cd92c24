"""reform_nightly: landing folder -> raw -> validation -> dbt marts -> run report, every night at 01:00 ICT.

Thin on purpose: every task body is a function of reform_etl.orchestration, the dbt wiring lives in
reform_etl.orchestration.dag_config. Per file, load and validate run as one mapped task group, so a file that
fails never blocks the others; dbt starts once every file is done, whatever became of each, and
the run's cross-file warning checks (`cross_file_checks`) have run on what they left.

Between the gates and dbt, `decide_dbt` branches (reform_etl.transform.decision.decide_dbt, recorded in
audit.transform_runs): a full build (the Cosmos group, one `dbt build` task per model) when the seeds,
the dbt code or a file already built changed, or the last build failed; one plain task, `dbt_refresh`,
otherwise: a partial build (`dbt build --select` the models downstream of the new files' kinds and
the date-dependent ones, with their tests) when the only change is new files, a refresh of the
date-dependent models when only the date changed; nothing when nothing changed.
Skipped dbt tasks skip everything after them in the group; `report` and `finish` always run.
"""

from __future__ import annotations

from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    TriggerRule,
    get_current_context,
    task,
    task_group,
)
from cosmos import DbtTaskGroup

from reform_etl import orchestration as orc
from reform_etl.orchestration import dag_config

DBT_PROJECT = dag_config.dbt_project_for(__file__)  # DBT_PROJECT_DIR overrides it

RAW = Asset(orc.RAW_ASSET)
SEEDS = Asset(orc.SEEDS_ASSET)
MARTS = Asset(orc.MARTS_ASSET)

default_args = {
    "owner": dag_config.OWNER,
    # Transient errors (connection lost) are retried briefly (dag_config.TRANSIENT_RETRIES); data errors are
    # results, not exceptions, and anything else fails for good (AirflowFailException).
    **dag_config.TRANSIENT_RETRIES,
    "on_failure_callback": orc.record_task_failure,
}

with DAG(
    dag_id=orc.NIGHTLY_DAG_ID,
    description="Nightly: load district submissions, validate, build the marts with dbt, publish the run report",
    # 01:00 Asia/Ho_Chi_Minh, and again whenever the reference data (seeds) is reloaded.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(dag_config.NIGHTLY_CRON, timezone=dag_config.TIMEZONE), assets=SEEDS
    ),
    start_date=dag_config.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    on_failure_callback=orc.record_dag_failure,
    params={"landing": Param(None, type=["null", "string"], description="Landing folder (default REFORM_LANDING)")},
    tags=[*dag_config.TAGS_COMMON, "nightly"],
    doc_md=__doc__,
) as dag:

    @task(retries=0)
    def start(**context) -> dict:
        return orc.task_start(context)

    @task
    def discover(run: dict) -> list[str]:
        return orc.task_discover(run)

    @task_group(group_id="per_file")
    def per_file(run: dict, path: str):
        @task(outlets=[RAW], map_index_template="{{ file_label | default('') }}")
        def load(run: dict, path: str) -> dict:
            get_current_context()["file_label"] = orc.file_label(path)  # the UI shows it instead of the index
            return orc.task_load(run, path)

        @task
        def validate(run: dict, loaded: dict) -> dict:
            return orc.task_validate(run, loaded)

        validate(run, load(run, path))

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def files_done() -> None:
        """Gate: dbt runs once every file is loaded, rejected or failed."""

    @task
    def cross_file_checks(run: dict) -> dict:
        """Once every file is validated: the run's cross-file and run-level warnings (audit.validation_results)."""
        return orc.task_cross_file_checks(run)

    @task
    def reference_data(run: dict) -> bool:
        return orc.transient_only(orc.load_seeds)(run["run_id"])

    @task.branch
    def decide_dbt(run: dict, seeds_reloaded: bool) -> str | None:
        """full -> the dbt group's root tasks; partial, refresh -> dbt_refresh; skip -> neither."""
        return orc.task_decide_dbt(run, seeds_reloaded)

    dbt = DbtTaskGroup(
        group_id=orc.DBT_GROUP_ID,
        project_config=dag_config.project_config(DBT_PROJECT),
        profile_config=dag_config.profile_config(DBT_PROJECT),
        execution_config=dag_config.execution_config(),
        render_config=dag_config.render_config(exclude=["resource_type:seed"]),
        operator_args={**dag_config.operator_args(), "retries": 0},  # a failing model or test is not transient
    )

    @task
    def marts_built(run: dict) -> int:
        """Every dbt task succeeded: record the full build (what the next night compares against)."""
        return orc.task_marts_built(run)

    @task(task_id=orc.DBT_REFRESH_TASK_ID, retries=0)  # a failing model is not transient
    def dbt_refresh(run: dict) -> str:
        """A partial build or a refresh: `dbt build --select` the selection decide_dbt recorded."""
        return orc.task_build_selected(run)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(run: dict) -> str:
        return orc.task_report(run)

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0, outlets=[MARTS])
    def finish(run: dict, report_path: str | None, **context) -> dict:
        return orc.task_finish(run, report_path, context)

    run = start()
    files = per_file.partial(run=run).expand(path=discover(run))
    decide = decide_dbt(run, reference_data(run))
    files >> files_done() >> cross_file_checks(run) >> decide
    refresh = dbt_refresh(run)
    decide >> [dbt, refresh]
    built = marts_built(run)
    dbt >> built
    report_path = report(run)
    [dbt, built, refresh] >> report_path  # every dbt task, not only `built`: it fails fast on one failure
    finish(run, report_path)
