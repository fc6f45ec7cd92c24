"""The Great Expectations project under `expectations/` (GX Core 1.x, file context).

`python -m reform_etl.validation.project` (re)writes it from the rule catalog
(reform_etl.validation.rules): one suite per submission kind for the row rules (`par_scores`,
`dossier_stats`, `it_kpis`, `dossiers`, `service_index`), `dossier_stats_history` for the cross-file warnings,
`submission_file` for the file-level reject rules and `submission_run` for the run-level
warnings; every expectation carries `meta.rule` and `meta.severity`. The generated files are
committed; tests check that they match the catalog.

The warehouse datasource takes its connection from ${REFORM_GX_WAREHOUSE_URL}, which
`context_for(dsn)` sets, so the committed project never holds a host, port or password, and
the batch of a file is its row of audit.submission_files, picked by `batch_parameters={"file_id": id}`
(a column-value partitioner), so nothing is written to the project at run time except results.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from reform_etl.config import settings
from reform_etl.kinds import KIND_SPECS
from reform_etl.validation import rules as R
from reform_etl.warehouse import sqlalchemy_url

log = logging.getLogger(__name__)

URL_VARIABLE = "REFORM_GX_WAREHOUSE_URL"
DATASOURCE = "warehouse"
FILES_DATASOURCE = "submission_files"
FILE_SHAPE_ASSET = "file_shape"
RUN_ASSET = "audit_submission_files"
BY_FILE = "by_file"
BY_RUN = "by_run"
# The batch of a file's suites is its registry row (audit.submission_files, partitioned by file_id):
# GX lists a partitioned asset's batches with SELECT DISTINCT over the whole table, which on
# raw.<kind> would read every row of history for each file it validates.
FILE_ID = "(select b.file_id from (select * from {batch}) b)"


def gx_query(text: str, rows: str = "{batch}") -> str:
    """Catalog SQL -> GX unexpected_rows_query: `{rows}` becomes `rows` (by default GX's `{batch}`),
    other braces are escaped."""
    return text.replace("{", "{{").replace("}", "}}").replace("{{rows}}", rows)


def file_rows(kind: str) -> str:
    """`{rows}` of a file suite: the raw rows of the batch's file."""
    return f"(select * from raw.{kind} x where x._file_id = {FILE_ID})"


def row_rule_query(rule: R.Rule, kind: str) -> str:
    """The rows of the batch's file that failed `rule` in the verdict (quarantine.<kind>).

    The verdict statement (reform_etl.validation.quarantine_sql) evaluates every row rule of the
    catalog in one pass over the file; each expectation reads its rule's share of it, so a file of
    millions of rows is scanned once, not twice per rule. The rule's own SQL is in meta.predicate.
    """
    cols = ", ".join(f"q.{c}" for c in dict.fromkeys(rule.columns))
    rule_name = rule.name.replace("'", "''")
    return gx_query(
        f"select q._row_number, {cols + ', ' if cols else ''}f.value->'observed' as observed "
        f"from quarantine.{kind} q, jsonb_array_elements(q.failed_rules) f "
        f"where q._file_id = {{file_id}} and f.value->>'rule' = '{rule_name}' order by q._row_number"
    ).replace("{{file_id}}", FILE_ID)


def _meta(rule, kind: str, suite: str) -> dict:
    return {"rule": rule.name, "severity": str(rule.severity), "kind": kind, "suite": suite,
            "message_vi": rule.message_vi, "message_en": rule.message_en}


def suite_definitions() -> dict[str, list]:
    """Suite name -> list of GX expectation objects, built from the rule catalog."""
    import great_expectations.expectations as gxe

    suites: dict[str, list] = {}
    suites["submission_file"] = [
        gxe.ExpectColumnValuesToBeInSet(column=r.column, value_set=[True], meta=_meta(r, "*", "submission_file"),
                                        description=f"{r.message_vi} / {r.message_en}")
        for r in R.FILE_RULES
    ]
    for kind in KIND_SPECS:
        suites[kind] = [
            gxe.UnexpectedRowsExpectation(unexpected_rows_query=row_rule_query(r, kind),
                                          meta={**_meta(r, kind, kind), "predicate": R.spelled_out(r)},
                                          description=f"{r.message_vi} / {r.message_en}")
            for r in R.row_rules(kind)
        ]
        history = R.history_rules(kind)
        if history:
            suites[f"{kind}_history"] = [
                gxe.UnexpectedRowsExpectation(unexpected_rows_query=gx_query(r.query, file_rows(kind)),
                                              meta=_meta(r, kind, f"{kind}_history"),
                                              description=f"{r.message_vi} / {r.message_en}")
                for r in history
            ]
    suites["submission_run"] = [
        gxe.UnexpectedRowsExpectation(unexpected_rows_query=gx_query(r.query), meta=_meta(r, kind, "submission_run"),
                                      description=f"{r.message_vi} / {r.message_en} ({kind})")
        for kind, r in R.run_rules()
    ]
    return suites


def suite_batch(suite: str) -> tuple[str, str, str]:
    """(datasource, asset, batch definition) a suite validates."""
    if suite == "submission_file":
        return FILES_DATASOURCE, FILE_SHAPE_ASSET, "whole"
    if suite == "submission_run":
        return DATASOURCE, RUN_ASSET, BY_RUN
    return DATASOURCE, RUN_ASSET, BY_FILE


def build(dsn: str, root: Path | None = None) -> Path:
    """Write the GX project from the catalog (needs a bootstrapped warehouse to check the tables)."""
    import great_expectations as gx
    from great_expectations.core.partitioners import PartitionerColumnValue

    root = root or settings().expectations
    os.environ[URL_VARIABLE] = sqlalchemy_url(dsn)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = {"globally": False}
    context.enable_analytics(False)  # no telemetry from a government warehouse (and no internet on the hosts)
    context.variables.save()
    for vd in list(context.validation_definitions.all()):
        context.validation_definitions.delete(vd.name)
    for suite in list(context.suites.all()):
        context.suites.delete(suite.name)
    for name in (DATASOURCE, FILES_DATASOURCE):
        if name in context.data_sources.all():
            context.data_sources.delete(name)

    warehouse = context.data_sources.add_postgres(DATASOURCE, connection_string="${" + URL_VARIABLE + "}")
    files = warehouse.add_table_asset(RUN_ASSET, table_name="submission_files", schema_name="audit")
    files.add_batch_definition(BY_RUN, partitioner=PartitionerColumnValue(column_name="run_id"),
                               validate_partitioner=False)
    files.add_batch_definition(BY_FILE, partitioner=PartitionerColumnValue(column_name="file_id"),
                               validate_partitioner=False)
    shapes = context.data_sources.add_pandas(FILES_DATASOURCE)
    shapes.add_dataframe_asset(FILE_SHAPE_ASSET).add_batch_definition_whole_dataframe("whole")

    for name, expectations in suite_definitions().items():
        suite = context.suites.add(gx.ExpectationSuite(name=name, meta={"generated_by": __name__}))
        for expectation in expectations:
            suite.add_expectation(expectation)
        ds, asset, batch = suite_batch(name)
        batch_definition = context.data_sources.get(ds).get_asset(asset).get_batch_definition(batch)
        context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))
    log.info("GX project written under %s", root)
    return root


_CONTEXT: dict[str, object] = {}


def context_for(dsn: str, root: Path | None = None):
    """The file context, with the warehouse datasource pointing at `dsn` (one per DSN per process)."""
    import great_expectations as gx

    root = root or settings().expectations
    if not (root / "gx" / "validation_definitions").is_dir():
        raise FileNotFoundError(f"no GX project under {root}: run `python -m reform_etl.validation.project`")
    key = f"{root}|{dsn}"
    if key not in _CONTEXT:
        _CONTEXT.clear()  # the URL variable is process-wide: keep one context at a time
        os.environ[URL_VARIABLE] = sqlalchemy_url(dsn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CONTEXT[key] = gx.get_context(mode="file", project_root_dir=str(root))
    os.environ[URL_VARIABLE] = sqlalchemy_url(dsn)
    return _CONTEXT[key]


if __name__ == "__main__":  # pragma: no cover
    import sys

    from reform_etl import warehouse

    logging.basicConfig(level=logging.INFO)
    target = warehouse.resolve_dsn()
    warehouse.bootstrap(target)
    print(build(target, Path(sys.argv[1]) if len(sys.argv) > 1 else None))
