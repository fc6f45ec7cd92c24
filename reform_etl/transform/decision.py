"""The nightly dbt decision: full build, partial build (new files), refresh of the date-dependent models, or skip."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import date, datetime

from reform_etl.config import TIMEZONE, settings
from reform_etl.transform import project as dbt_project
from reform_etl.transform.manifest import dbt_code

log = logging.getLogger(__name__)


DBT_GROUP_ID = "dbt"  # the Cosmos DbtTaskGroup: one `dbt build` task per model
DBT_REFRESH_TASK_ID = "dbt_refresh"  # one plain task: `dbt build --select <the decision's selection>`
AS_OF_TAG = "as_of_date"  # dbt_project.yml: models whose rows depend on today's date (submission status)
AS_OF_DATE_ENV = "REFORM_AS_OF_DATE"  # YYYY-MM-DD: the local "today" of the dbt decision (default: now, local)
DBT_MODES = ("full", "partial", "refresh", "skip")
SELECTED_MODES = ("partial", "refresh")  # built by the one plain task, with the selection of their row
DBT_WORDS = {  # what each mode of audit.transform_runs means, (Vietnamese, English): the summary and the report
    "full": ("Xây dựng lại toàn bộ", "full build"),
    "partial": ("Chỉ xây dựng lại các bảng chịu ảnh hưởng của tệp mới",
                "partial build of the models the new files affect"),
    "refresh": ("Chỉ làm mới các bảng phụ thuộc ngày", "refresh of the date-dependent models"),
    "skip": ("Bỏ qua", "skipped"),
    "backfill": ("Nạp lại theo kỳ", "backfill"),
}


@dataclass
class DbtDecision:
    mode: str  # full | partial | refresh | skip
    reason: str
    transform_id: int | None = None
    kinds: list[str] | None = None  # partial: the kinds of the new files
    selection: str | None = None  # partial / refresh: what `dbt build --select` is given


def local_today():
    """Today in Asia/Ho_Chi_Minh (REFORM_AS_OF_DATE overrides it: tests, replaying a decision)."""
    import pendulum

    value = os.environ.get(AS_OF_DATE_ENV)
    return date.fromisoformat(value) if value else pendulum.now(TIMEZONE).date()


def project_fingerprint() -> str:
    """sha256 over the dbt project's code (yml, models, macros, tests; not the seeds): changes with the models."""
    source = dbt_project.project_dir()
    digest = hashlib.sha256()
    for path in dbt_code(source):
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
                      from (select status, count(*) as n from f group by status) s)),
    -- The same fingerprint over the files up to the last build's max_file_id: equal to that build's
    -- fingerprint when every file it saw kept its state (then only the newer files are new).
    md5(coalesce((select string_agg(concat_ws(':', file_id, status, rows_loaded, rows_quarantined), ','
                                    order by file_id) from f where file_id <= %(upto)s), '')),
    (select coalesce(array_agg(distinct coalesce(kind, '') order by coalesce(kind, '')), '{}')
     from f where file_id > %(upto)s)
"""


def transform_ddl(conn) -> None:
    """audit.transform_runs (reform_etl/sql/030_transform_state.sql): bootstrap creates it; so does first use."""
    from importlib import resources

    conn.execute("select pg_advisory_xact_lock(hashtext('reform_etl.bootstrap'))")
    conn.execute(resources.files("reform_etl.sql").joinpath("030_transform_state.sql").read_text(encoding="utf-8"))


def _missing_relations(conn) -> list[str]:
    """Models of the manifest (tables, views, incremental) whose relation is not in the warehouse."""
    path = dbt_project.manifest_path()
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


def transform_state(conn, since: dict | None = None) -> dict:
    """What the marts are built from now; `since` (the last build's row): which files are new since it."""
    upto = int(((since or {}).get("files_state") or {}).get("max_file_id") or 0)
    files_fp, files_state, files_fp_upto, new_kinds = conn.execute(_FILES_STATE, {"upto": upto}).fetchone()
    # The last seed load, not only its content: `dbt seed --full-refresh` drops the seed tables with the
    # views on them, so even a forced reload of the same files needs a full build.
    seeds = conn.execute(
        "select load_id || ':' || fingerprint from audit.reference_data_loads order by load_id desc limit 1"
    ).fetchone() if conn.execute("select to_regclass('audit.reference_data_loads')").fetchone()[0] else None
    return {
        "files_fingerprint": files_fp,
        "files_state": files_state,
        "files_fingerprint_upto": files_fp_upto,  # over the files `since` saw (file_id <= its max_file_id)
        "new_kinds": list(new_kinds),  # the kinds of the newer files ('' for a file of no known kind)
        "seeds_fingerprint": seeds[0] if seeds else None,
        "project_fingerprint": project_fingerprint(),
        "as_of_date": local_today(),
        "warehouse_date": conn.execute("select current_date").fetchone()[0],
    }


def _files_change(before: dict | None, now: dict) -> str:
    before = before or {}
    new = int(now.get("max_file_id") or 0) - int(before.get("max_file_id") or 0)
    statuses = ", ".join(f"{k} {before.get('by_status', {}).get(k, 0)}\u2192{v}"
                         for k, v in sorted((now.get("by_status") or {}).items())
                         if (before.get("by_status") or {}).get(k, 0) != v)
    if new > 0:
        return ("new file(s) registered since the last dbt build, and earlier files changed state ("
                + (statuses or "re-validated") + ")")
    return "file statuses changed since the last dbt build (" + (statuses or "re-validated") + ")"


def _kinds_text(kinds: list[str]) -> str:
    return ", ".join(k or "(no kind)" for k in kinds)


def partial_selection(kinds: list[str], source_kinds: set[str] | None = None) -> str:
    """`dbt build --select` of a partial build: every model (and its tests) downstream of the new files'
    raw and quarantine tables, and the date-dependent models, which read the whole file registry
    (submission status). The other models read the registry only joined to their own kind's raw rows,
    which a file of another kind does not change. Kinds without a dbt source feed no model."""
    chosen = [k for k in kinds if k and (source_kinds is None or k in source_kinds)]
    return " ".join([*(f"source:{schema}.{k}+" for k in chosen for schema in ("raw", "quarantine")),
                     f"tag:{AS_OF_TAG}"])


def _local(moment: datetime) -> str:
    import pendulum

    return pendulum.instance(moment).in_timezone(TIMEZONE).format("YYYY-MM-DD HH:mm Z")


def _choose(state: dict, seeds_reloaded: bool, last_full: dict | None, last_attempt: dict | None,
            missing: list[str], run_id: str, last_build: dict | None = None) -> tuple[str, str]:
    """The decision and its reason, in the order an operator would check.

    `last_build`: the last successful build of the marts' state (full, partial or refresh; a skip
    records the same state), at or after `last_full`; the files are compared with it.
    """
    if last_full is None:
        return "full", "the marts have never been built (no successful full dbt build recorded)"
    if last_attempt and last_attempt["status"] != "success":
        how = "did not finish" if last_attempt["status"] == "running" else "failed"
        return "full", (f"the last dbt {last_attempt['mode']} (run {last_attempt['run_id']}, "
                        f"{_local(last_attempt['decided_at'])}) {how}")
    if seeds_reloaded:
        return "full", "the reference data (dbt seeds) were reloaded by this run"
    base = last_build or last_full
    files_changed = state["files_fingerprint"] != base["files_fingerprint"]
    # Only newer files: every file the last build saw has the state it was built with.
    only_new = (files_changed and bool(state.get("new_kinds"))
                and state.get("files_fingerprint_upto") == base["files_fingerprint"])
    if files_changed and not only_new:
        return "full", _files_change(base["files_state"], state["files_state"])
    if state["seeds_fingerprint"] != base["seeds_fingerprint"]:
        return "full", "the reference data (dbt seeds) were reloaded since the last dbt build"
    if state["project_fingerprint"] != base["project_fingerprint"]:
        return "full", "the dbt project (models, macros, tests) changed since the last dbt build"
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5})" if len(missing) > 5 else "")
        return "full", f"{len(missing)} model relation(s) missing from the warehouse: {shown}"
    since = f"the dbt {base['mode']} of run {base['run_id']} ({_local(base['decided_at'])})"
    if only_new:
        new = int(state["files_state"].get("files") or 0) - int(base["files_state"].get("files") or 0)
        return "partial", (f"only new file(s) since {since} ({new} more, of kind(s) "
                           f"{_kinds_text(state['new_kinds'])}), every earlier file unchanged: building the "
                           f"models downstream of those kinds and the date-dependent models (tag:{AS_OF_TAG})")
    built_on = last_attempt["as_of_date"] if last_attempt else last_full["as_of_date"]
    warehouse_on = last_attempt["warehouse_date"] if last_attempt else last_full["warehouse_date"]
    if built_on != state["as_of_date"] or warehouse_on != state["warehouse_date"]:
        return "refresh", (f"nothing new since {since}, but the date changed ({built_on} \u2192 "
                           f"{state['as_of_date']}): rebuilding the date-dependent models (tag:{AS_OF_TAG})")
    return "skip", (f"nothing new since {since}: no new or re-validated file, reference data and dbt project "
                    f"unchanged, same day ({state['as_of_date']})")


def record_transform(conn, run_id: str | None, mode: str, reason: str, state: dict, status: str,
                     kinds: list[str] | None = None, selection: str | None = None) -> int:
    from psycopg.types.json import Jsonb

    return conn.execute(
        "insert into audit.transform_runs (run_id, mode, status, reason, ended_at, as_of_date, warehouse_date, "
        "files_fingerprint, files_state, seeds_fingerprint, project_fingerprint, kinds, selection) "
        "values (%s, %s, %s, %s, case when %s = 'running' then null else now() end, %s, %s, %s, %s, %s, %s, "
        "%s, %s) returning transform_id",
        (run_id, mode, status, reason, status, state["as_of_date"], state["warehouse_date"],
         state["files_fingerprint"], Jsonb(state["files_state"]), state["seeds_fingerprint"],
         state["project_fingerprint"], kinds, selection),
    ).fetchone()[0]


_LAST_TRANSFORM = {  # fixed queries: no SQL text is ever formatted
    "full": "select * from audit.transform_runs where mode = 'full' and status = 'success' "
            "order by transform_id desc limit 1",
    "attempt": "select * from audit.transform_runs where mode <> 'skip' order by transform_id desc limit 1",
    # What the marts were last built from: a backfill is not one (facts outside its window kept their rows).
    "build": "select * from audit.transform_runs where (mode in ('full', 'partial', 'refresh') and status = 'success') "
             "or (mode = 'skip' and status = 'skipped') order by transform_id desc limit 1",
    "run": "select * from audit.transform_runs where run_id = %s order by transform_id desc limit 1",
}


def _last_transform(conn, which: str, params: tuple = ()) -> dict | None:
    cur = conn.execute(_LAST_TRANSFORM[which], params)
    row = cur.fetchone()
    return dict(zip([d.name for d in cur.description], row, strict=True)) if row else None


def _source_kinds() -> set[str] | None:
    """The kinds with a raw table among the manifest's dbt sources (None without a manifest: all)."""
    path = dbt_project.manifest_path()
    if not path.exists():
        return None
    sources = json.loads(path.read_text(encoding="utf-8")).get("sources", {}).values()
    return {s["name"] for s in sources if s.get("source_name") == "raw"}


def next_decision(conn, seeds_reloaded: bool = False, run_id: str = "") -> tuple[DbtDecision, dict]:
    """What the nightly would decide now, read from the warehouse, nothing recorded: the decision
    (its transform_id unset) and the state it was made on (what `decide_dbt` records)."""
    transform_ddl(conn)
    last_full = _last_transform(conn, "full")
    last_attempt = _last_transform(conn, "attempt")
    last_build = _last_transform(conn, "build")
    state = transform_state(conn, last_build or last_full)
    mode, reason = _choose(state, seeds_reloaded, last_full, last_attempt, _missing_relations(conn), run_id,
                           last_build)
    kinds = state["new_kinds"] if mode == "partial" else None
    selection = {"partial": partial_selection(kinds or [], _source_kinds()),
                 "refresh": f"tag:{AS_OF_TAG}"}.get(mode)
    return DbtDecision(mode, reason, None, kinds, selection), state


def decide_dbt(run_id: str, seeds_reloaded: bool = False, dsn: str | None = None) -> DbtDecision:
    """Full build, partial build, refresh of the date-dependent models, or skip; recorded in audit.transform_runs.

    * full: the marts were never built successfully, the last dbt build did not finish or failed,
      the seeds were reloaded (by this run or since), a file the last build saw changed state
      (validated, re-validated), the dbt code changed, or a model's relation is missing;
    * partial: the only change since the last successful build (full, partial or refresh) is new
      files: the models downstream of their kinds' raw and quarantine tables, and the date-dependent
      ones, are built with their tests (`dbt build --select`, the row's `selection`);
    * refresh: nothing new, but the last build was on another day (local date, or the warehouse's
      current_date): the models tagged `as_of_date` (submission status: late / missing) are rebuilt;
    * skip: nothing new since the last successful build, built the same day.
    """
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        decision, state = next_decision(conn, seeds_reloaded, run_id)
        status = "skipped" if decision.mode == "skip" else "running"
        decision.transform_id = record_transform(conn, run_id, decision.mode, decision.reason, state, status,
                                                 decision.kinds, decision.selection)
        conn.commit()
    log.info("dbt %s: %s", decision.mode, decision.reason)
    return decision


def close_transform(run_id: str, status: str, modes: tuple[str, ...] = ("full", "partial", "refresh", "backfill"),
                    dsn: str | None = None) -> int:
    """Mark this run's open dbt build(s) success / failed; returns how many rows it closed."""
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        transform_ddl(conn)
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
            "as_of_date": str(row["as_of_date"]), "kinds": row.get("kinds"), "selection": row.get("selection")}


def _close_row(transform_id: int, status: str, dsn: str) -> None:
    """This build's row, even if `finish` already closed it failed: an operator who clears the failed
    task of a night in the UI and gets it to succeed has built the marts."""
    from reform_etl.warehouse import connect

    with connect(dsn) as conn:
        conn.execute("update audit.transform_runs set status = %s, ended_at = now() where transform_id = %s",
                     (status, transform_id))
        conn.commit()


def build_selected(run_id: str, dsn: str | None = None) -> str:
    """`dbt build --select <selection>` of the run's open partial or refresh row (reform_etl.transform.dbt.run_dbt),
    seeds excluded; the tests of the selected models run with them. Closes the row success / failed."""
    from reform_etl import warehouse
    from reform_etl.transform.dbt import run_dbt

    dsn = dsn or warehouse.dsn()
    with warehouse.connect(dsn) as conn:
        transform_ddl(conn)
        row = _last_transform(conn, "run", (run_id,))
    if row is None or row["mode"] not in SELECTED_MODES:
        raise RuntimeError(f"run {run_id} has no partial or refresh dbt decision to build "
                           f"(last: {row and row['mode']})")
    mode = row["mode"]
    selection = row.get("selection") or f"tag:{AS_OF_TAG}"  # a refresh row from before the column
    target = settings().airflow_home / "dbt_refresh"
    args = ["build", "--select", *selection.split(), "--exclude", "resource_type:seed",
            "--target-path", str(target / "target"), "--log-path", str(target / "logs")]
    started = time.monotonic()
    try:
        result = run_dbt(args, dsn, check=True)  # raises RuntimeError naming the failed models and tests
    except BaseException:
        _close_row(row["transform_id"], "failed", dsn)
        raise
    _close_row(row["transform_id"], "success", dsn)
    built = [r.node.name for r in (result.result or []) if r.node.resource_type == "model"]
    tests = sum(1 for r in (result.result or []) if r.node.resource_type == "test")
    verb = "built" if mode == "partial" else "refreshed"
    text = (f"{verb} {len(built)} model(s) ({', '.join(built)}) and {tests} test(s) "
            f"in {time.monotonic() - started:.1f} s")
    log.info("%s", text)
    return text
