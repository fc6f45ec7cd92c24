"""Validation of SPEC §4 with Great Expectations, in the database.

Entry points (called by reform_etl.runs / the DAG):

* `validate_file(dsn, file_id, run_id)` — after the loader put a file's rows in raw.<kind>:
  runs the `submission_file` suite on the file's shape (reject rules) and the `<kind>` suite on
  the file's rows in Postgres (quarantine rules and in-file warnings), copies every failing row
  to quarantine.<kind> with all the rules it failed, stores one audit.validation_results row per
  rule, and sets the file accepted (or rejected) with its counts.
* `warn_checks(dsn, run_id)` — once per run, after every file is validated: the cross-file
  warnings (`<kind>_history`: carried over vs last month's pending, on-time rate swing) per
  accepted file, and the run-level `submission_run` suite (a unit missing for a period that
  others reported). Closes audit.validation_runs.

Staging must read only rows of accepted files that are not in quarantine.<kind>.
"""


from reform_etl.validation.cross_file import warn_checks
from reform_etl.validation.gx import SAMPLE_ROWS, ValidationError
from reform_etl.validation.runs import finish_run, start_run
from reform_etl.validation.verdict import (
    LOADER_CODES,
    Sets,
    failing_rows,
    file_shape,
    quarantine_sql,
    validate_file,
    verdict_counts,
    verdict_sets,
)

__all__ = [
    "LOADER_CODES", "SAMPLE_ROWS", "Sets", "ValidationError", "failing_rows", "file_shape", "finish_run",
    "quarantine_sql", "start_run", "validate_file", "verdict_counts", "verdict_sets", "warn_checks",
]
