"""Everything Airflow-side: the local Airflow home, the dbt manifest, running the real DAG in-process,
the task bodies the DAG files call, failure recording, reference data and backfills.

Airflow reads its configuration when it is first imported, so nothing here imports Airflow at
module level: `prepare_airflow()` sets the environment first, then the run path imports it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reform_etl.config import settings

log = logging.getLogger(__name__)

NIGHTLY_DAG_ID = "reform_nightly"
REFERENCE_DAG_ID = "reform_reference_data"
TIMEZONE = "Asia/Ho_Chi_Minh"

# Asset names (Airflow 3 data-aware scheduling). Names, not host-specific URIs, so that the laptop
# and the cluster see the same assets.
RAW_ASSET = "reform.raw_submissions"  # a submission file reached raw.*
SEEDS_ASSET = "reform.reference_data"  # the dbt seeds were (re)loaded
MARTS_ASSET = "reform.marts"  # the nightly published marts and its run report

# psycopg errors that mean "the connection went away", worth a retry with backoff.
TRANSIENT_SQLSTATE_CLASSES = ("08", "57P", "53")


# --------------------------------------------------------------------------------------------
# Local Airflow home
# --------------------------------------------------------------------------------------------


def repo_root() -> Path:
    return settings().home


def dags_folder() -> Path:
    return Path(os.environ.get("REFORM_DAGS_FOLDER") or repo_root() / "dags").resolve()


def airflow_bin() -> str:
    beside = Path(sys.executable).parent / "airflow"
    return str(beside) if beside.exists() else "airflow"


def airflow_env(home: Path | None = None) -> dict[str, str]:
    """The environment an in-process (laptop) Airflow runs with; values already set win, except the home."""
    home = (home or settings().airflow_home).resolve()
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
    }
    defaults = {
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        # In-process runs print every task's log to the terminal at INFO; set INFO to see them.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # Cosmos writes its partial-parse / manifest caches here rather than in /tmp.
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos_cache"),
        "AIRFLOW__COSMOS__ENABLE_CACHE": "True",
        "AIRFLOW__COSMOS__PROPAGATE_LOGS": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",  # no phoning home from a government warehouse
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "NO_PROXY": "*",  # macOS: forking after proxy lookup crashes
    }
    for key, value in defaults.items():
        env[key] = os.environ.get(key, value)
    return env


def prepare_airflow(home: Path | None = None) -> Path:
    """Point this process at the local Airflow home and migrate its metadata DB when needed.

    Must run before `airflow` is imported in this process (Airflow reads its config on import).
    """
    current = os.environ.get("AIRFLOW_HOME")
    if "airflow.configuration" in sys.modules and current:
        # Airflow read its configuration on import: this process keeps the home it started with.
        if home is not None and Path(current).resolve() != home.resolve():
            log.warning("Airflow already configured with AIRFLOW_HOME=%s; keeping it", current)
        home = Path(current)
    env = airflow_env(home)
    os.environ.update(env)
    path = Path(env["AIRFLOW_HOME"])
    path.mkdir(parents=True, exist_ok=True)
    migrate_if_needed(path, env)
    return path


def migrate_if_needed(home: Path, env: dict[str, str] | None = None) -> bool:
    """`airflow db migrate` once per (Airflow version, metadata DB); returns whether it ran."""
    from importlib.metadata import version

    env = env or airflow_env(home)
    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    stamp = f"{version('apache-airflow-core')} {conn}"
    marker = home / ".migrated"
    sqlite_file = Path(conn.removeprefix("sqlite:///")) if conn.startswith("sqlite:///") else None
    if marker.exists() and marker.read_text() == stamp and (sqlite_file is None or sqlite_file.exists()):
        return False
    started = time.monotonic()
    proc = subprocess.run(
        [airflow_bin(), "db", "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    marker.write_text(stamp)
    log.info("airflow db migrate took %.1f s", time.monotonic() - started)
    return True


# --------------------------------------------------------------------------------------------
# dbt: manifest, plain invocations
# --------------------------------------------------------------------------------------------


def _dbt_inputs(project: Path) -> Iterator[Path]:
    for pattern in ("*.yml", "*.yaml"):
        yield from project.glob(pattern)
    for sub in ("models", "macros", "tests", "snapshots", "analyses"):
        folder = project / sub
        if folder.is_dir():
            yield from (p for p in folder.rglob("*") if p.is_file())
    seeds = settings().seeds
    if seeds.is_dir():
        yield from seeds.rglob("*")  # seed checksums are part of the manifest


_NOT_SHADOWED = {"dbt_project.yml", "target", "logs"}


def materialize_project() -> Path:
    """Write the shadow project Cosmos runs when dbt_project.yml has paths outside the project.

    See `dag_config.project_dir()`. Idempotent; files are rewritten only when they change.
    """
    import yaml

    from reform_etl import dag_config

    source = dag_config.source_project_dir()
    escaping = dag_config.escaping_paths()
    if not escaping:
        return source
    shadow = dag_config.shadow_project_dir()
    (shadow / "target").mkdir(parents=True, exist_ok=True)
    wanted: dict[str, Path] = {
        child.name: child for child in source.iterdir() if child.name not in _NOT_SHADOWED
    }
    project = yaml.safe_load((source / "dbt_project.yml").read_text(encoding="utf-8"))
    for key, values in escaping.items():
        local = []
        for i, value in enumerate(values):
            if value.startswith(".."):
                name = f"_{key.replace('-', '_')}_{i}"
                wanted[name] = (source / value).resolve()
                local.append(name)
            else:
                local.append(value)
        project[key] = local
    for child in shadow.iterdir():
        if child.is_symlink() and (child.name not in wanted or Path(os.readlink(child)) != wanted[child.name]):
            child.unlink()
    for name, target in wanted.items():
        link = shadow / name
        if not link.is_symlink():
            link.symlink_to(target)
    text = "# generated by reform_etl.orchestration from " + str(source / "dbt_project.yml") + "\n"
    text += yaml.safe_dump(project, sort_keys=False, allow_unicode=True)
    yml = shadow / "dbt_project.yml"
    if not yml.exists() or yml.read_text(encoding="utf-8") != text:
        yml.write_text(text, encoding="utf-8")
    return shadow


def manifest_is_stale() -> bool:
    from reform_etl import dag_config

    manifest = dag_config.manifest_path()
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _dbt_inputs(dag_config.source_project_dir()))


def dbt_environment(dsn: str | None = None) -> dict[str, str]:
    """Environment for a dbt process: the REFORM_DB_* of `dsn` (or placeholders when only parsing)."""
    from reform_etl.transform import dbt_env

    env = dbt_env(dsn or "postgresql://postgres@127.0.0.1:5432/postgres")
    if dsn is None:  # parsing never connects; keep whatever the caller already had
        env = {k: os.environ.get(k, v) for k, v in env.items()}
    env["DBT_PROFILES_DIR"] = str(settings().dbt_project)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    return {**os.environ, **env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}


def run_dbt(args: list[str], dsn: str | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    from reform_etl import dag_config

    project = dag_config.project_dir()
    profiles = dag_config.profiles_yml().parent
    cmd = [dag_config.dbt_executable(), *args, "--project-dir", str(project), "--profiles-dir", str(profiles)]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=dbt_environment(dsn), capture_output=True, text=True, timeout=timeout, cwd=project)
    if proc.returncode != 0:
        raise RuntimeError(f"`dbt {' '.join(args)}` failed ({proc.returncode}):\n{proc.stdout[-4000:]}{proc.stderr}")
    return proc


def ensure_manifest(force: bool = False) -> Path:
    """`dbt parse` when target/manifest.json is missing or older than the project; returns its path.

    The DAGs render dbt from the manifest (Cosmos LoadMode.DBT_MANIFEST), so parsing a DAG never
    runs dbt. Call this before the DAGs are parsed: the CLI does, the compose image does at build.
    """
    from reform_etl import dag_config

    source = dag_config.source_project_dir()
    if not (source / "dbt_project.yml").exists():
        raise FileNotFoundError(f"no dbt project at {source} (set DBT_PROJECT_DIR)")
    project = materialize_project()
    if (project / "packages.yml").exists() and not (project / "dbt_packages").exists():
        run_dbt(["deps"])
    if force or manifest_is_stale():
        started = time.monotonic()
        run_dbt(["parse"])
        log.info("dbt parse took %.1f s", time.monotonic() - started)
    return dag_config.manifest_path()


# --------------------------------------------------------------------------------------------
# Reference data (dbt seeds)
# --------------------------------------------------------------------------------------------


def seeds_fingerprint() -> str:
    """sha256 over the seed files' names and bytes: changes exactly when a seed file changes."""
    digest = hashlib.sha256()
    folder = settings().seeds
    for path in sorted(folder.rglob("*.csv")) if folder.is_dir() else []:
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


_REFERENCE_DDL = """
create table if not exists audit.reference_data_loads (
    load_id      bigserial primary key,
    fingerprint  text not null,
    loaded_at    timestamptz not null default now(),
    run_id       text,
    seeds        jsonb
)
"""


def last_seeds_fingerprint(dsn: str | None = None) -> str | None:
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        conn.execute(_REFERENCE_DDL)
        row = conn.execute(
            "select fingerprint from audit.reference_data_loads order by load_id desc limit 1"
        ).fetchone()
        conn.commit()
    return row[0] if row else None


def seeds_changed(dsn: str | None = None) -> bool:
    return last_seeds_fingerprint(dsn) != seeds_fingerprint()


def record_seeds_loaded(run_id: str | None, dsn: str | None = None) -> str:
    from psycopg.types.json import Jsonb

    from reform_etl.warehouse import connect

    fingerprint = seeds_fingerprint()
    names = sorted(p.stem for p in settings().seeds.glob("*.csv"))
    with connect(dsn) as conn:
        conn.execute(_REFERENCE_DDL)
        conn.execute(
            "insert into audit.reference_data_loads (fingerprint, run_id, seeds) values (%s, %s, %s)",
            (fingerprint, run_id, Jsonb(names)),
        )
        conn.commit()
    return fingerprint


def load_seeds(run_id: str | None = None, force: bool = False, dsn: str | None = None) -> bool:
    """`dbt seed` when the seed files differ from the last load into this warehouse; returns whether it ran."""
    from reform_etl import warehouse

    dsn = dsn or warehouse.dsn()
    if not force and not seeds_changed(dsn):
        log.info("reference data unchanged since its last load; dbt seed skipped")
        return False
    run_dbt(["seed", "--full-refresh"], dsn=dsn)
    record_seeds_loaded(run_id, dsn)
    return True


# --------------------------------------------------------------------------------------------
# Task bodies (the DAG files stay thin)
# --------------------------------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """Connection lost / server shutting down / too many connections: retry with backoff."""
    import psycopg

    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | ConnectionError | TimeoutError):
        sqlstate = getattr(exc, "sqlstate", None)
        return sqlstate is None or sqlstate.startswith(TRANSIENT_SQLSTATE_CLASSES)
    return False


def transient_only(fn: Callable) -> Callable:
    """Let transient errors through (Airflow retries them with backoff); fail anything else for good."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if is_transient(exc):
                raise
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


def run_id_for(dag_id: str, logical_date: datetime | None, airflow_run_id: str) -> str:
    """Our run id: the DAG and the night it is for, so re-running a night re-uses its audit row."""
    if logical_date is None:
        return f"{dag_id}__{airflow_run_id}"
    import pendulum

    local = pendulum.instance(logical_date).in_timezone(TIMEZONE)
    return f"{dag_id}__{local.format('YYYY-MM-DDTHH:mm:ssZ')}"


def run_id_from_context(context: Any) -> str:
    dag_run = context["dag_run"]
    return run_id_for(dag_run.dag_id, context.get("logical_date"), dag_run.run_id)


def resolve_landing(conf_landing: str | None) -> str:
    return str(Path(conf_landing).resolve()) if conf_landing else str(settings().landing)


def task_start(context: Any) -> dict:
    from reform_etl import pipeline

    run_id = run_id_from_context(context)
    dag_run = context["dag_run"]
    conf = getattr(dag_run, "conf", None) or {}
    landing = resolve_landing(conf.get("landing") or context["params"].get("landing"))
    triggered_by = conf.get("triggered_by") or str(getattr(dag_run, "run_type", "airflow"))
    pipeline.start_run(run_id, context.get("logical_date"), triggered_by)
    log.info("run %s: landing folder %s", run_id, landing)
    return {"run_id": run_id, "landing": landing}


@transient_only
def task_discover(run: dict) -> list[str]:
    from reform_etl import pipeline

    paths = pipeline.discover(run["landing"])
    log.info("%d new file(s) in %s", len(paths), run["landing"])
    return paths


def file_label(path: str) -> str:
    """`kind/file name`: how a mapped load task is labelled in the UI."""
    parts = Path(path).parts
    return "/".join(parts[-2:])


@transient_only
def task_load(run: dict, path: str) -> dict:
    from reform_etl import pipeline

    result = pipeline.load_file(path, run["run_id"], run["landing"])
    log.info("%s: %s (%s of %s rows)", path, result.get("status"), result.get("rows_loaded"), result.get("rows_total"))
    return _jsonable(result)


@transient_only
def task_validate(run: dict, loaded: dict) -> dict:
    from reform_etl import pipeline

    if loaded.get("status") != "loaded" or loaded.get("file_id") is None:
        return {"file_id": loaded.get("file_id"), "status": loaded.get("status"), "skipped": True}
    result = pipeline.validate_file(int(loaded["file_id"]), run["run_id"])
    log.info("file %s: %s, %s row(s) quarantined", loaded["file_id"], result.get("status"),
             result.get("rows_quarantined"))
    return _jsonable(result)


@transient_only
def task_report(run: dict) -> str:
    from reform_etl import pipeline

    return pipeline.build_report(run["run_id"])


def task_finish(run: dict | None, report_path: str | None, context: Any) -> dict:
    """Close the run in audit, log a one-paragraph summary; fail the DAG run if any task failed."""
    from reform_etl import pipeline

    run_id = run["run_id"] if run else run_id_from_context(context)
    failures = recorded_failures(run_id)
    status = "failed" if failures else "success"
    summary = pipeline.finish_run(run_id, status, "\n".join(failures) or None, report_path)
    paragraph = summary_paragraph(summary, status)
    log.info("%s", paragraph)
    print(paragraph)
    if failures:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"run {run_id} finished with {len(failures)} failed task(s): {failures[0]}")
    return _jsonable(summary)


def summary_paragraph(summary: dict, status: str) -> str:
    rows = summary.get("rows") or {}
    rows_text = ", ".join(f"{kind} {v.get('rows_loaded') or 0:,}" for kind, v in rows.items()) or "none"
    return (
        f"Run {summary.get('run_id')} {status}: {summary.get('files_seen', 0)} file(s) seen, "
        f"{summary.get('files_loaded', 0)} loaded, {summary.get('files_rejected', 0)} rejected, "
        f"{summary.get('files_duplicate', 0)} duplicate, {summary.get('files_failed', 0)} failed; "
        f"rows loaded per kind: {rows_text}. Report: {summary.get('report') or 'not built'}. "
        f"Warehouse: {summary.get('dsn')}."
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------------------------
# Failure recording (on_failure_callback)
# --------------------------------------------------------------------------------------------


def _append_error(run_id: str, line: str, *, close: bool) -> None:
    from reform_etl.warehouse import connect

    with connect() as conn:
        conn.execute(
            "insert into audit.pipeline_runs (run_id, triggered_by, status) values (%s, 'airflow', 'running') "
            "on conflict (run_id) do nothing",
            (run_id,),
        )
        conn.execute(
            "update audit.pipeline_runs set error = concat_ws(E'\\n', error, %s::text) "
            "where run_id = %s and coalesce(position(%s::text in error), 0) = 0",
            (line, run_id, line),
        )
        if close:
            conn.execute(
                "update audit.pipeline_runs set status = 'failed', ended_at = now() "
                "where run_id = %s and status = 'running'",
                (run_id,),
            )
        conn.commit()


def record_task_failure(context: Any) -> None:
    """on_failure_callback of every task: the failure goes to audit.pipeline_runs.error and the log."""
    try:
        ti = context["ti"]
        if ti.task_id == "finish":  # finish records its own outcome
            return
        map_index = getattr(ti, "map_index", -1)
        label = ti.task_id + (f"[{map_index}]" if map_index is not None and map_index >= 0 else "")
        exc = context.get("exception")
        line = f"task {label} failed: {type(exc).__name__ if exc else 'error'}: {exc}"
        log.error("%s", line)
        _append_error(run_id_from_context(context), line[:2000], close=False)
    except Exception:  # a callback must never hide the original failure
        log.exception("could not record the task failure in audit")


def record_dag_failure(context: Any) -> None:
    """on_failure_callback of the DAG: close the audit run as failed if `finish` could not."""
    try:
        reason = context.get("reason") or "DAG run failed"
        _append_error(run_id_from_context(context), f"dag run failed: {reason}", close=True)
    except Exception:
        log.exception("could not record the DAG failure in audit")


def recorded_failures(run_id: str) -> list[str]:
    from reform_etl.warehouse import connect

    with connect() as conn:
        row = conn.execute("select error from audit.pipeline_runs where run_id = %s", (run_id,)).fetchone()
    return [line for line in (row[0] or "").splitlines() if line.startswith("task ")] if row else []


# --------------------------------------------------------------------------------------------
# Running the real DAG in-process (`reform-etl run`, `make run`, tests)
# --------------------------------------------------------------------------------------------


@dataclass
class TaskState:
    task_id: str
    map_index: int
    state: str
    duration: float | None
    try_number: int

    @property
    def label(self) -> str:
        return self.task_id + (f"[{self.map_index}]" if self.map_index >= 0 else "")


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
        width = max((len(t.label) for t in self.tasks), default=10)
        lines = [f"{'task':<{width}}  {'state':<16} {'seconds':>8}"]
        for t in self.tasks:
            secs = f"{t.duration:.1f}" if t.duration is not None else "-"
            lines.append(f"{t.label:<{width}}  {t.state:<16} {secs:>8}")
        return "\n".join(lines)

    def render(self) -> str:
        head = (
            f"DAG {self.dag_id} run {self.airflow_run_id} -> {self.state} in {self.seconds:.1f} s "
            f"(audit run id {self.run_id})"
        )
        return head + "\n" + self.task_table()


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


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
    from reform_etl import warehouse
    from reform_etl.transform import dbt_env

    dsn = dsn or warehouse.dsn()
    warehouse.bootstrap(dsn)
    env = {**dbt_env(dsn), "WAREHOUSE_DSN": dsn, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
           # dbt prints every model's progress to the terminal; errors still show. DBT_QUIET=False for all.
           "DBT_QUIET": os.environ.get("DBT_QUIET", "True")}
    with _env(env):
        ensure_manifest()
        prepare_airflow()
        dag = load_dag(dag_id)
        logical_date = logical_date or datetime.now(UTC)
        started = time.monotonic()
        dag_run = dag.test(logical_date=logical_date, run_conf=conf or {}, mark_success_pattern=mark_success_pattern)
        seconds = time.monotonic() - started
        tasks = _task_states(dag_run)
        run_id = run_id_for(dag_id, logical_date, dag_run.run_id)
        summary, error = _audit_run(run_id, dsn)
    state = str(getattr(dag_run.state, "value", dag_run.state))
    return NightlyResult(dag_id, dag_run.run_id, run_id, state, logical_date, seconds, tasks, summary, error)


def run_nightly(landing: str | Path | None = None, logical_date: datetime | None = None,
                dsn: str | None = None, triggered_by: str = "cli", skip_dbt_tests: bool = False,
                echo: bool = True) -> NightlyResult:
    """The nightly pipeline: the real `reform_nightly` DAG, executed in-process with `dag.test()`.

    Prints the DAG's task list with states (unless `echo=False`) and returns it with the audit summary.
    """
    conf = {"landing": resolve_landing(str(landing) if landing else None), "triggered_by": triggered_by}
    pattern = DBT_TEST_TASKS if skip_dbt_tests else None
    result = run_dag(NIGHTLY_DAG_ID, logical_date=logical_date, conf=conf, dsn=dsn, mark_success_pattern=pattern)
    if echo:
        print(result.render(), flush=True)
    return result


DBT_TEST_TASKS = r"dbt\..*test"


def run_reference_data(force: bool = True, dsn: str | None = None) -> NightlyResult:
    return run_dag(REFERENCE_DAG_ID, conf={"force": force}, dsn=dsn)


def _task_states(dag_run) -> list[TaskState]:
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        out = [
            TaskState(ti.task_id, ti.map_index, str(getattr(ti.state, "value", ti.state)), ti.duration, ti.try_number)
            for ti in tis
        ]
    order = {tid: i for i, tid in enumerate(_topological(dag_run))}
    return sorted(out, key=lambda t: (order.get(t.task_id, 10**6), t.task_id, t.map_index))


def _topological(dag_run) -> list[str]:
    try:
        from airflow.models.dagbag import DBDagBag

        dag = DBDagBag().get_dag_for_run(dag_run, session=None)
        return [t.task_id for t in dag.topological_sort()]
    except Exception:
        return []


def _audit_run(run_id: str, dsn: str) -> tuple[dict, str | None]:
    from reform_etl.warehouse import connect

    try:
        with connect(dsn) as conn:
            row = conn.execute("select summary, error from audit.pipeline_runs where run_id = %s", (run_id,)).fetchone()
    except Exception as exc:  # the DAG result still stands
        return {}, f"audit not readable: {exc}"
    return (row[0] or {}, row[1]) if row else ({}, None)


# --------------------------------------------------------------------------------------------
# Backfill
# --------------------------------------------------------------------------------------------


def _month(value: str) -> str:
    value = value.strip()
    if len(value) == 4 and value.isdigit():
        return f"{value}-01"
    datetime.strptime(value, "%Y-%m")
    return value


def backfill(period_from: str, period_to: str, dsn: str | None = None) -> dict:
    """Rebuild the marts of periods [from, to] from raw: `dbt build` with the period window as vars.

    Models that know the window (vars `backfill_from` / `backfill_to`, months YYYY-MM) rebuild just
    those periods; tables that are rebuilt whole anyway ignore it. Seeds load first if they changed.
    The backfill is recorded in audit.pipeline_runs like any run.
    """
    from reform_etl import pipeline, warehouse

    start, end = _month(period_from), _month(period_to if len(period_to.strip()) != 4 else f"{period_to}-12")
    if start > end:
        raise ValueError(f"backfill window is empty: {start} > {end}")
    dsn = dsn or warehouse.dsn()
    warehouse.bootstrap(dsn)
    run_id = f"backfill__{start}__{end}__{datetime.now(UTC):%Y%m%dT%H%M%S}"
    with _env({"WAREHOUSE_DSN": dsn}):
        pipeline.start_run(run_id, None, "backfill")
        started = time.monotonic()
        try:
            ensure_manifest()
            load_seeds(run_id, dsn=dsn)
            dbt_vars = json.dumps({"backfill_from": start, "backfill_to": end})
            run_dbt(["build", "--exclude", "resource_type:seed", "--vars", dbt_vars], dsn=dsn)
        except Exception as exc:
            pipeline.finish_run(run_id, "failed", str(exc)[-4000:])
            raise
        summary = pipeline.finish_run(run_id, "success")
    summary.update({"period_from": start, "period_to": end, "seconds": round(time.monotonic() - started, 1)})
    return summary
