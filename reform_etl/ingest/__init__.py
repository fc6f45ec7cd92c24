"""Landing folder -> raw.<kind>, one transaction per file, with lineage and a file registry.

A file is registered in audit.submission_files whatever becomes of it: loaded, rejected (a
file-level rule failed; the reason is stored), duplicate (the same bytes were loaded before)
or failed (the pipeline itself broke; retried next run). Rows are COPYed with their file id
and source row number; a later file for the same unit and period supersedes the earlier one
through audit.v_submission_partitions.
"""


from reform_etl.ingest.copy import FileBytes, read_bytes
from reform_etl.ingest.discover import SKIPPED_PREFIXES, Discovery, discover, discover_files, kind_of
from reform_etl.ingest.load import load_file, load_paths
from reform_etl.ingest.normalise import NORMALISE_SQL
from reform_etl.ingest.readers import FileRejected
from reform_etl.ingest.registry import FileResult

__all__ = [
    "NORMALISE_SQL", "SKIPPED_PREFIXES", "Discovery", "FileBytes", "FileRejected", "FileResult", "discover",
    "discover_files", "kind_of", "load_file", "load_paths", "read_bytes",
]
