"""Running the real DAGs in-process with `dag.test()` (`reform-etl run`, `make run`, tests)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reform_etl import progress
from reform_etl.orchestration.airflow_home import dags_folder, prepare_airflow
from reform_etl.orchestration.dag_config import NIGHTLY_DAG_ID, REFERENCE_DAG_ID
from reform_etl.orchestration.quiet import quieted
from reform_etl.orchestration.run_ids import run_id_for
from reform_etl.orchestration.tasks import dbt_text, resolve_landing
from reform_etl.transform.dbt import environment
from reform_etl.transform.decision import DBT_GROUP_ID
from reform_etl.transform.manifest import ensure_manifest

log = logging.getLogger(__name__)


@dataclass
class TaskState:
    task_id: str
    map_index: int
    state: str
    duration: float | None
    try_number: int
    map_label: str | None = None  # a mapped load's `kind/file name` (map_index_template)

    @property
    def label(self) -> str:
        return self.task_id + (f"[{self.map_label or self.map_index}]" if self.map_index >= 0 else "")


@dataclass
class NightlyResult:
    dag_id: str
    airflow_run_id: str
    run_id: str
    state: str
    logical_date: datetime | None
    seconds: float
    tasks: list[TaskState] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    ok = succeeded

    def task_table(self) -> str:
        """One line per task in DAG order; a dbt group whose every task was skipped (nothing new) is one line."""
        group = [t for t in self.tasks if t.task_id.startswith(f"{DBT_GROUP_ID}.")]
        folded = bool(group) and {t.state for t in group} == {"skipped"}
        rows = [(t.label, t.state, f"{t.duration:.1f}" if t.duration is not None else "-") for t in self.tasks
                if not (folded and t in group)]
        if folded:
            rows.insert(self.tasks.index(group[0]), (f"{DBT_GROUP_ID}.* ({len(group)} tasks)", "skipped", "-"))
        width = max((len(label) for label, _, _ in rows), default=10)
        lines = [f"{'task':<{width}}  {'state':<16} {'seconds':>8}"]
        lines += [f"{label:<{width}}  {state:<16} {secs:>8}" for label, state, secs in rows]
        return "\n".join(lines)

    def render(self) -> str:
        head = (
            f"DAG {self.dag_id} run {self.airflow_run_id} -> {self.state} in {self.seconds:.1f} s "
            f"(audit run id {self.run_id})"
        )
        return head + "\n" + self.task_table() + "\n" + dbt_text(self.summary.get("dbt"))

    @property
    def dbt_mode(self) -> str | None:
        """full / partial / refresh / skip: what dbt did in this run (audit.transform_runs)."""
        return (self.summary.get("dbt") or {}).get("mode")


def load_dag(dag_id: str, bag=None):
    """Parse the DAG file(s) from the dags folder with Airflow's own DagBag; raise on import errors."""
    from airflow.dag_processing.dagbag import DagBag

    bag = bag if bag is not None else DagBag(dag_folder=str(dags_folder()))
    if bag.import_errors:
        raise RuntimeError("DAG import errors:\n" + "\n".join(f"{k}: {v}" for k, v in bag.import_errors.items()))
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise KeyError(f"DAG {dag_id} not found in {dags_folder()}")
    return dag


def run_dag(dag_id: str, logical_date: datetime | None = None, conf: dict | None = None,
            dsn: str | None = None, mark_success_pattern: str | None = None) -> NightlyResult:
    """Execute one run of a DAG from the dags folder with `dag.test()` in this process.

    `mark_success_pattern`: task ids (regex) marked successful without running, e.g. the dbt test
    tasks when a caller only needs the marts rebuilt.
    """
    from reform_etl import runs, warehouse
    from reform_etl.transform.dbt import dbt_env

    dsn = dsn or warehouse.dsn()
    warehouse.bootstrap(dsn)
    env = {**dbt_env(dsn), "WAREHOUSE_DSN": dsn, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
           # this process runs every task: a run it leaves `running` when killed is abandoned by the next one
           runs.OWNER_ENV: runs.this_process(),
           # dbt prints every model's progress to the terminal; errors still show. DBT_QUIET=False for all.
           "DBT_QUIET": os.environ.get("DBT_QUIET", "True")}
    # quieted: before the DAG file is parsed (Cosmos warns while it builds the dbt group)
    with environment(env), quieted():
        ensure_manifest()
        prepare_airflow()
        dag = load_dag(dag_id)
        logical_date = logical_date or datetime.now(UTC)
        started = time.monotonic()
        with progress.shown(), _dbt_group_progress(dag, mark_success_pattern):
            dag_run = dag.test(logical_date=logical_date, run_conf=conf or {},
                               mark_success_pattern=mark_success_pattern)
        seconds = time.monotonic() - started
        tasks = _task_states(dag_run, dag_order(dag))
        run_id = run_id_for(dag_id, logical_date, dag_run.run_id)
        summary, error = _audit_run(run_id, dsn)
    state = str(getattr(dag_run.state, "value", dag_run.state))
    return NightlyResult(dag_id, dag_run.run_id, run_id, state, logical_date, seconds, tasks, summary, error)


def run_nightly(landing: str | Path | None = None, logical_date: datetime | None = None,
                dsn: str | None = None, triggered_by: str = "cli", skip_dbt_tests: bool = False,
                echo: bool = True) -> NightlyResult:
    """The nightly pipeline: the real `reform_nightly` DAG, executed in-process with `dag.test()`.

    `skip_dbt_tests`: build the models without their dbt data tests (tests save time, not the marts):
    each `dbt build` task excludes tests (DBT_EXCLUDE_RESOURCE_TYPES, read by the in-process dbt) and
    the detached relationship-test tasks are marked successful without running.
    Prints the DAG's task list with states (unless `echo=False`) and returns it with the audit summary.
    """
    conf = {"landing": resolve_landing(str(landing) if landing else None), "triggered_by": triggered_by}
    pattern = DBT_TEST_TASKS if skip_dbt_tests else None
    with environment({"DBT_EXCLUDE_RESOURCE_TYPES": "test unit_test"} if skip_dbt_tests else {}):
        result = run_dag(NIGHTLY_DAG_ID, logical_date=logical_date, conf=conf, dsn=dsn,
                         mark_success_pattern=pattern)
    if echo:
        print(result.render(), flush=True)
    return result


DBT_TEST_TASKS = rf"^{DBT_GROUP_ID}\..*_test$"  # the detached (multi-parent) test tasks of the dbt group


def run_reference_data(force: bool = True, dsn: str | None = None) -> NightlyResult:
    return run_dag(REFERENCE_DAG_ID, conf={"force": force}, dsn=dsn)


def _task_states(dag_run, order: list[str]) -> list[TaskState]:
    """The run's task instances in DAG order (`order`), a mapped task's instances by map index."""
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        out = [
            TaskState(ti.task_id, ti.map_index, str(getattr(ti.state, "value", ti.state)), ti.duration, ti.try_number,
                      getattr(ti, "rendered_map_index", None))
            for ti in tis
        ]
    rank = {tid: i for i, tid in enumerate(order)}
    return sorted(out, key=lambda t: (rank.get(t.task_id, len(rank)), t.task_id, t.map_index))


def dag_order(dag) -> list[str]:
    """Task ids in topological order, a task group's tasks in their own order where the group stands."""
    from airflow.sdk.definitions.taskgroup import TaskGroup

    def walk(group) -> Iterator[str]:
        for node in group.topological_sort():
            if isinstance(node, TaskGroup):
                yield from walk(node)
            else:
                yield node.task_id

    return list(walk(dag.task_group))


@contextmanager
def _dbt_group_progress(dag, mark_success_pattern: str | None) -> Iterator[None]:
    """Cosmos runs one task per dbt model: its progress is the dbt group's tasks done / to do.

    An Airflow listener (dag.test() runs every task in this process, and the task runner calls the
    listeners): the count starts with the group's first task, so a night that skips dbt shows none.
    """
    import re

    from airflow.sdk._shared.listeners import hookimpl
    from airflow.sdk.listener import get_listener_manager

    prefix = f"{DBT_GROUP_ID}."
    skip = re.compile(mark_success_pattern) if mark_success_pattern else None
    group = [t for t in dag.task_ids if t.startswith(prefix) and not (skip and skip.fullmatch(t))]

    class Listener:
        def __init__(self) -> None:
            self.started = False
            self.done: set[str] = set()  # a task retried counts once

        @hookimpl
        def on_task_instance_running(self, previous_state, task_instance) -> None:
            if not task_instance.task_id.startswith(prefix):
                return
            if not self.started:
                self.started = True
                progress.total("dbt_tasks", len(group))
            progress.current("dbt_tasks", task_instance.task_id.removeprefix(prefix))

        def _done(self, task_instance) -> None:
            task_id = task_instance.task_id
            if task_id.startswith(prefix) and task_id not in self.done:
                self.done.add(task_id)
                progress.step("dbt_tasks")

        @hookimpl
        def on_task_instance_success(self, previous_state, task_instance) -> None:
            self._done(task_instance)

        @hookimpl
        def on_task_instance_failed(self, previous_state, task_instance, error) -> None:
            self._done(task_instance)

        @hookimpl
        def on_task_instance_skipped(self, previous_state, task_instance) -> None:
            self._done(task_instance)

    listener = Listener()
    manager = get_listener_manager()
    manager.add_listener(listener)
    try:
        yield
    finally:
        manager.pm.unregister(listener)


def _audit_run(run_id: str, dsn: str) -> tuple[dict, str | None]:
    from reform_etl.warehouse import connect

    try:
        with connect(dsn) as conn:
            row = conn.execute("select summary, error from audit.pipeline_runs where run_id = %s", (run_id,)).fetchone()
    except Exception as exc:  # the DAG result still stands
        return {}, f"audit not readable: {exc}"
    return (row[0] or {}, row[1]) if row else ({}, None)
