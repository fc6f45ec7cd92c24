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
from datetime import UTC, date, datetime
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


def _dbt_code(project: Path) -> Iterator[Path]:
    """The files that define the dbt project's models (not its seeds): yml at the top, models, macros..."""
    for pattern in ("*.yml", "*.yaml"):
        yield from sorted(project.glob(pattern))
    for sub in ("models", "macros", "tests", "snapshots", "analyses"):
        folder = project / sub
        if folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.is_file())


def _dbt_inputs(project: Path) -> Iterator[Path]:
    yield from _dbt_code(project)
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
# dbt: full build, refresh of the date-dependent models, or skip
# --------------------------------------------------------------------------------------------

DBT_GROUP_ID = "dbt"  # the Cosmos DbtTaskGroup: one `dbt build` task per model
DBT_REFRESH_TASK_ID = "dbt_refresh"  # one plain task: `dbt build --select tag:as_of_date`
AS_OF_TAG = "as_of_date"  # dbt_project.yml: models whose rows depend on today's date (submission status)
AS_OF_DATE_ENV = "REFORM_AS_OF_DATE"  # YYYY-MM-DD: the local "today" of the dbt decision (default: now, local)
DBT_MODES = ("full", "refresh", "skip")


@dataclass
class DbtDecision:
    mode: str  # full | refresh | skip
    reason: str
    transform_id: int | None = None


def local_today():
    """Today in Asia/Ho_Chi_Minh (REFORM_AS_OF_DATE overrides it: tests, replaying a decision)."""
    import pendulum

    value = os.environ.get(AS_OF_DATE_ENV)
    return date.fromisoformat(value) if value else pendulum.now(TIMEZONE).date()


def project_fingerprint() -> str:
    """sha256 over the dbt project's code (yml, models, macros, tests; not the seeds): changes with the models."""
    from reform_etl import dag_config

    source = dag_config.source_project_dir()
    digest = hashlib.sha256()
    for path in _dbt_code(source):
        digest.update(str(path.relative_to(source)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# The registry rows that can reach the marts: rows of loaded / accepted files, partitions of rejected
# ones (submission status). Failed and duplicate registrations change nothing downstream, nor do the
# warning counts (no model reads them; the run-level checks update them after this decision).
_FILES_STATE = """
with f as (
    select * from audit.submission_files where status in ('loaded', 'accepted', 'rejected')
)
select
    md5(coalesce((select string_agg(concat_ws(':', file_id, status, rows_loaded, rows_quarantined), ','
                                    order by file_id) from f), '')),
    jsonb_build_object(
        'files', (select count(*) from f),
        'max_file_id', (select coalesce(max(file_id), 0) from f),
        'by_status', (select coalesce(jsonb_object_agg(status, n), '{}'::jsonb)
                      from (select status, count(*) as n from f group by status) s))
"""


def _transform_ddl(conn) -> None:
    """audit.transform_runs (reform_etl/sql/030_transform_state.sql): bootstrap creates it; so does first use."""
    from importlib import resources

    conn.execute("select pg_advisory_xact_lock(hashtext('reform_etl.bootstrap'))")
    conn.execute(resources.files("reform_etl.sql").joinpath("030_transform_state.sql").read_text(encoding="utf-8"))


def _missing_relations(conn) -> list[str]:
    """Models of the manifest (tables, views, incremental) whose relation is not in the warehouse."""
    from reform_etl import dag_config

    path = dag_config.manifest_path()
    if not path.exists():
        return []
    nodes = json.loads(path.read_text(encoding="utf-8")).get("nodes", {})
    wanted = sorted(
        (node["schema"], node.get("alias") or node["name"])
        for node in nodes.values()
        if node.get("resource_type") == "model"
        and (node.get("config") or {}).get("materialized") in ("table", "view", "incremental")
    )
    if not wanted:
        return []
    rows = conn.execute(
        "select s || '.' || n from unnest(%s::text[], %s::text[]) as w (s, n) "
        "where to_regclass(quote_ident(s) || '.' || quote_ident(n)) is null order by 1",
        ([s for s, _ in wanted], [n for _, n in wanted]),
    ).fetchall()
    return [r[0] for r in rows]


def _state(conn) -> dict:
    files_fp, files_state = conn.execute(_FILES_STATE).fetchone()
    # The last seed load, not only its content: `dbt seed --full-refresh` drops the seed tables with the
    # views on them, so even a forced reload of the same files needs a full build.
    seeds = conn.execute(
        "select load_id || ':' || fingerprint from audit.reference_data_loads order by load_id desc limit 1"
    ).fetchone() if conn.execute("select to_regclass('audit.reference_data_loads')").fetchone()[0] else None
    return {
        "files_fingerprint": files_fp,
        "files_state": files_state,
        "seeds_fingerprint": seeds[0] if seeds else None,
        "project_fingerprint": project_fingerprint(),
        "as_of_date": local_today(),
        "warehouse_date": conn.execute("select current_date").fetchone()[0],
    }


def _files_change(before: dict | None, now: dict) -> str:
    before = before or {}
    new = int(now.get("max_file_id") or 0) - int(before.get("max_file_id") or 0)
    if new > 0:
        return "new file(s) registered since the last full dbt build"
    statuses = ", ".join(f"{k} {before.get('by_status', {}).get(k, 0)}\u2192{v}"
                         for k, v in sorted((now.get("by_status") or {}).items())
                         if (before.get("by_status") or {}).get(k, 0) != v)
    return "file statuses changed since the last full dbt build (" + (statuses or "re-validated") + ")"


def _local(moment: datetime) -> str:
    import pendulum

    return pendulum.instance(moment).in_timezone(TIMEZONE).format("YYYY-MM-DD HH:mm Z")


def _choose(state: dict, seeds_reloaded: bool, last_full: dict | None, last_attempt: dict | None,
            missing: list[str], run_id: str) -> tuple[str, str]:
    """The decision and its reason, in the order an operator would check."""
    if last_full is None:
        return "full", "the marts have never been built (no successful full dbt build recorded)"
    if last_attempt and last_attempt["status"] != "success":
        how = "did not finish" if last_attempt["status"] == "running" else "failed"
        return "full", (f"the last dbt {last_attempt['mode']} (run {last_attempt['run_id']}, "
                        f"{_local(last_attempt['decided_at'])}) {how}")
    if seeds_reloaded:
        return "full", "the reference data (dbt seeds) were reloaded by this run"
    if state["files_fingerprint"] != last_full["files_fingerprint"]:
        return "full", _files_change(last_full["files_state"], state["files_state"])
    if state["seeds_fingerprint"] != last_full["seeds_fingerprint"]:
        return "full", "the reference data (dbt seeds) were reloaded since the last full dbt build"
    if state["project_fingerprint"] != last_full["project_fingerprint"]:
        return "full", "the dbt project (models, macros, tests) changed since the last full dbt build"
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5})" if len(missing) > 5 else "")
        return "full", f"{len(missing)} model relation(s) missing from the warehouse: {shown}"
    since = f"the full dbt build of run {last_full['run_id']} ({_local(last_full['decided_at'])})"
    built_on = last_attempt["as_of_date"] if last_attempt else last_full["as_of_date"]
    warehouse_on = last_attempt["warehouse_date"] if last_attempt else last_full["warehouse_date"]
    if built_on != state["as_of_date"] or warehouse_on != state["warehouse_date"]:
        return "refresh", (f"nothing new since {since}, but the date changed ({built_on} \u2192 "
                           f"{state['as_of_date']}): rebuilding the date-dependent models (tag:{AS_OF_TAG})")
    return "skip", (f"nothing new since {since}: no new or re-validated file, reference data and dbt project "
                    f"unchanged, same day ({state['as_of_date']})")


def _record_transform(conn, run_id: str | None, mode: str, reason: str, state: dict, status: str) -> int:
    from psycopg.types.json import Jsonb

    return conn.execute(
        "insert into audit.transform_runs (run_id, mode, status, reason, ended_at, as_of_date, warehouse_date, "
        "files_fingerprint, files_state, seeds_fingerprint, project_fingerprint) "
        "values (%s, %s, %s, %s, case when %s = 'running' then null else now() end, %s, %s, %s, %s, %s, %s) "
        "returning transform_id",
        (run_id, mode, status, reason, status, state["as_of_date"], state["warehouse_date"],
         state["files_fingerprint"], Jsonb(state["files_state"]), state["seeds_fingerprint"],
         state["project_fingerprint"]),
    ).fetchone()[0]


_LAST_TRANSFORM = {  # fixed queries: no SQL text is ever formatted
    "full": "select * from audit.transform_runs where mode = 'full' and status = 'success' "
            "order by transform_id desc limit 1",
    "attempt": "select * from audit.transform_runs where mode <> 'skip' order by transform_id desc limit 1",
    "run": "select * from audit.transform_runs where run_id = %s order by transform_id desc limit 1",
}


def _last_transform(conn, which: str, params: tuple = ()) -> dict | None:
    cur = conn.execute(_LAST_TRANSFORM[which], params)
    row = cur.fetchone()
    return dict(zip([d.name for d in cur.description], row, strict=True)) if row else None


def decide_dbt(run_id: str, seeds_reloaded: bool = False, dsn: str | None = None) -> DbtDecision:
    """Full build, refresh of the date-dependent models, or skip; recorded in audit.transform_runs.

    * full: the marts were never built successfully, the last dbt build did not finish or failed,
      the seeds were reloaded (by this run or since), the file registry changed since the last full
      build (a file loaded, validated or re-validated), the dbt code changed, or a model's relation
      is missing;
    * refresh: nothing new, but the last build was on another day (local date, or the warehouse's
      current_date): the models tagged `as_of_date` (submission status: late / missing) are rebuilt;
    * skip: nothing new since the last successful full build, built the same day.
    """
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        _transform_ddl(conn)
        state = _state(conn)
        last_full = _last_transform(conn, "full")
        last_attempt = _last_transform(conn, "attempt")
        missing = _missing_relations(conn)
        mode, reason = _choose(state, seeds_reloaded, last_full, last_attempt, missing, run_id)
        status = "skipped" if mode == "skip" else "running"
        transform_id = _record_transform(conn, run_id, mode, reason, state, status)
        conn.commit()
    log.info("dbt %s: %s", mode, reason)
    return DbtDecision(mode, reason, transform_id)


def close_transform(run_id: str, status: str, modes: tuple[str, ...] = ("full", "refresh", "backfill"),
                    dsn: str | None = None) -> int:
    """Mark this run's open dbt build(s) success / failed; returns how many rows it closed."""
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        _transform_ddl(conn)
        closed = conn.execute(
            "update audit.transform_runs set status = %s, ended_at = now() "
            "where run_id = %s and status = 'running' and mode = any(%s)",
            (status, run_id, list(modes)),
        ).rowcount
        conn.commit()
    return closed


def transform_summary(run_id: str, dsn: str | None = None) -> dict | None:
    """The run's last dbt decision: mode, status, reason (None when the run made none)."""
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        if not conn.execute("select to_regclass('audit.transform_runs')").fetchone()[0]:
            return None
        row = _last_transform(conn, "run", (run_id,))
    if row is None:
        return None
    return {"mode": row["mode"], "status": row["status"], "reason": row["reason"],
            "as_of_date": str(row["as_of_date"])}


def refresh_dbt(run_id: str, dsn: str | None = None) -> str:
    """`dbt build --select tag:as_of_date` in-process (reform_etl.transform.run_dbt); closes the refresh row."""
    from reform_etl import warehouse
    from reform_etl.transform import run_dbt as run_dbt_in_process

    dsn = dsn or warehouse.dsn()
    target = settings().airflow_home / "dbt_refresh"
    args = ["build", "--select", f"tag:{AS_OF_TAG}", "--exclude", "resource_type:seed",
            "--target-path", str(target / "target"), "--log-path", str(target / "logs")]
    started = time.monotonic()
    try:
        result = run_dbt_in_process(args, dsn)
        if not result.success:
            failed = [f"{r.node.name}: {r.message}" for r in (result.result or [])
                      if str(getattr(r.status, "value", r.status)) in ("error", "fail")]
            raise RuntimeError(f"dbt build --select tag:{AS_OF_TAG} failed: {result.exception or failed}")
    except BaseException:
        close_transform(run_id, "failed", ("refresh",), dsn=dsn)
        raise
    close_transform(run_id, "success", ("refresh",), dsn=dsn)
    built = [r.node.name for r in (result.result or []) if r.node.resource_type == "model"]
    text = f"refreshed {len(built)} model(s) ({', '.join(built)}) in {time.monotonic() - started:.1f} s"
    log.info("%s", text)
    return text


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
def task_decide_dbt(run: dict, seeds_reloaded: bool | None) -> str | None:
    """The branch between the gates and dbt: the task id(s) to follow (None: skip every dbt task)."""
    decision = decide_dbt(run["run_id"], bool(seeds_reloaded))
    print(f"dbt {decision.mode}: {decision.reason}")
    # The group id: Airflow's branch expands a task group into its root tasks.
    return {"full": DBT_GROUP_ID, "refresh": DBT_REFRESH_TASK_ID, "skip": None}[decision.mode]


@transient_only
def task_marts_built(run: dict) -> int:
    """After every dbt task succeeded: the full build is what the next night compares against.

    The run's last full decision, even if `finish` already marked it failed: an operator who clears
    the failed dbt tasks of a night in the UI and gets them to succeed has built the marts.
    """
    from reform_etl.warehouse import connect

    with connect() as conn:
        _transform_ddl(conn)
        closed = conn.execute(
            "update audit.transform_runs set status = 'success', ended_at = now() where transform_id = "
            "(select max(transform_id) from audit.transform_runs where run_id = %s and mode = 'full')",
            (run["run_id"],),
        ).rowcount
        conn.commit()
    return closed


@transient_only
def task_refresh_dbt(run: dict) -> str:
    return refresh_dbt(run["run_id"])


@transient_only
def task_report(run: dict) -> str:
    from reform_etl import pipeline

    return pipeline.build_report(run["run_id"])


def task_finish(run: dict | None, report_path: str | None, context: Any) -> dict:
    """Close the run in audit, log a one-paragraph summary; fail the DAG run if any task failed."""
    from reform_etl import pipeline

    run_id = run["run_id"] if run else run_id_from_context(context)
    # A full build whose tasks did not all succeed is not trusted by the next night.
    close_transform(run_id, "failed")
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
        f"rows loaded per kind: {rows_text}. {dbt_text(summary.get('dbt'))} "
        f"Report: {summary.get('report') or 'not built'}. Warehouse: {summary.get('dsn')}."
    )


DBT_MODE_WORDS = {"full": "full build", "refresh": "refresh of the date-dependent models", "skip": "skipped"}


def dbt_text(dbt: dict | None) -> str:
    """One sentence: what dbt did in a run and why (from audit.transform_runs)."""
    if not dbt:
        return "dbt: not run."
    words = DBT_MODE_WORDS.get(dbt.get("mode"), dbt.get("mode"))
    status = "" if dbt.get("mode") == "skip" else f" ({dbt.get('status')})"
    return f"dbt: {words}{status}, because {dbt.get('reason')}."


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
        return head + "\n" + self.task_table() + "\n" + dbt_text(self.summary.get("dbt"))

    @property
    def dbt_mode(self) -> str | None:
        """full / refresh / skip: what dbt did in this run (audit.transform_runs)."""
        return (self.summary.get("dbt") or {}).get("mode")


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

    `skip_dbt_tests`: build the models without their dbt data tests (tests save time, not the marts):
    each `dbt build` task excludes tests (DBT_EXCLUDE_RESOURCE_TYPES, read by the in-process dbt) and
    the detached relationship-test tasks are marked successful without running.
    Prints the DAG's task list with states (unless `echo=False`) and returns it with the audit summary.
    """
    conf = {"landing": resolve_landing(str(landing) if landing else None), "triggered_by": triggered_by}
    pattern = DBT_TEST_TASKS if skip_dbt_tests else None
    with _env({"DBT_EXCLUDE_RESOURCE_TYPES": "test unit_test"} if skip_dbt_tests else {}):
        result = run_dag(NIGHTLY_DAG_ID, logical_date=logical_date, conf=conf, dsn=dsn,
                         mark_success_pattern=pattern)
    if echo:
        print(result.render(), flush=True)
    return result


DBT_TEST_TASKS = rf"^{DBT_GROUP_ID}\..*_test$"  # the detached (multi-parent) test tasks of the dbt group


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
            _record_backfill(run_id, start, end, dsn)
            dbt_vars = json.dumps({"backfill_from": start, "backfill_to": end})
            run_dbt(["build", "--exclude", "resource_type:seed", "--vars", dbt_vars], dsn=dsn)
        except Exception as exc:
            close_transform(run_id, "failed", ("backfill",), dsn=dsn)
            pipeline.finish_run(run_id, "failed", str(exc)[-4000:])
            raise
        close_transform(run_id, "success", ("backfill",), dsn=dsn)
        summary = pipeline.finish_run(run_id, "success")
    summary.update({"period_from": start, "period_to": end, "seconds": round(time.monotonic() - started, 1)})
    return summary


def _record_backfill(run_id: str, start: str, end: str, dsn: str) -> None:
    """A backfill rebuilds every model (a window of the facts): a failed or interrupted one makes the
    next night rebuild in full; a successful one is not a full build (facts outside the window keep
    their rows), but it did rebuild the date-dependent models today."""
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        _transform_ddl(conn)
        _record_transform(conn, run_id, "backfill", f"backfill of {start}..{end}", _state(conn), "running")
        conn.commit()
