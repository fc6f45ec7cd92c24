"""Running a Great Expectations suite and storing its results in audit.validation_results."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time

import psycopg
from psycopg.types.json import Jsonb

from reform_etl.jsonable import jsonable

log = logging.getLogger(__name__)


SAMPLE_ROWS = 20


def portable_name(run_id: str) -> str:
    """A run id as one folder name portable to Windows and safe from '..' (Airflow run ids hold ':' and '+'):
    the run name GX files a run's results and Data Docs pages under, and the run's report folder."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"


class ValidationError(RuntimeError):
    """The validation itself broke (a query failed, counts disagree): a pipeline failure, not a data finding."""


def run_suite(context, suite: str, batch_parameters: dict, run_id: str):
    from great_expectations.core.run_identifier import RunIdentifier

    definition = context.validation_definitions.get(suite)
    run = RunIdentifier(run_name=portable_name(run_id), run_time=dt.datetime.now(dt.UTC))
    started = time.perf_counter()
    result = definition.run(batch_parameters=batch_parameters, result_format="COMPLETE", run_id=run)
    log.debug("suite %s %s: %.2fs", suite, batch_parameters if "dataframe" not in batch_parameters else "",
              time.perf_counter() - started)
    for er in result.results:
        info = er.exception_info or {}
        if info.get("raised_exception"):
            raise ValidationError(f"{suite}: expectation {er.expectation_config.meta.get('rule')} "
                                  f"could not run: {info.get('exception_message')}")
    return result


def _result_path(result) -> str | None:
    """The Data Docs page of a suite result, relative to the Data Docs root (mirrors GX's store key:
    validations/<suite>/<run name>/<run time>/<datasource>-<asset>[-<partition key>_<value>].html)."""
    try:
        batch = result.meta["active_batch_definition"]
        batch = batch if isinstance(batch, dict) else batch.to_json_dict()
        batch_id = "-".join([batch["datasource_name"], batch["data_asset_name"],
                             *(f"{k}_{v}" for k, v in (batch.get("batch_identifiers") or {}).items()
                               if k != "dataframe")])
        run = result.meta["run_id"]
        run_time = run.run_time.strftime("%Y%m%dT%H%M%S.%fZ")
        return f"validations/{result.suite_name}/{run.run_name}/{run_time}/{batch_id}.html"
    except Exception:  # the link is a convenience; the result itself is stored regardless
        log.warning("no Data Docs path for a %s result", result.suite_name, exc_info=True)
        return None


def store_results(conn: psycopg.Connection, run_id: str, file_id: int | None, kind: str | None, result,
                   counts_rows: bool = True) -> dict[str, dict]:
    """One audit row per expectation; returns {rule: {...}} for the caller."""
    path = _result_path(result)
    out = {}
    for er in result.results:
        meta = er.expectation_config.meta or {}
        res = er.result or {}
        observed = res.get("observed_value")
        rows = res.get("details", {}).get("unexpected_rows") or []
        if counts_rows:
            failed = int(observed or 0)
        else:  # file-shape suite: one row, the file
            failed = 0 if er.success else 1
            observed = {"unexpected": jsonable(res.get("partial_unexpected_list") or res.get("unexpected_list"))}
        rule_kind = kind or (meta.get("kind") if meta.get("kind") != "*" else None)
        conn.execute(
            "insert into audit.validation_results (run_id, file_id, kind, suite, expectation, expectation_type, "
            "severity, success, observed_value, rows_failed, sample_failing_rows, message_vi, message_en, "
            "gx_result_path) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (run_id, file_id, rule_kind, result.suite_name, meta["rule"], er.expectation_config.type,
             meta["severity"], bool(er.success), Jsonb(jsonable(observed)), failed,
             Jsonb(jsonable(rows[:SAMPLE_ROWS])) if rows else None, meta.get("message_vi"), meta.get("message_en"),
             path),
        )
        out[f"{meta['rule']}|{meta.get('kind')}"] = {"rule": meta["rule"], "severity": meta["severity"],
                                                     "success": bool(er.success), "rows_failed": failed,
                                                     "message_vi": meta.get("message_vi"),
                                                     "message_en": meta.get("message_en")}
    return out
