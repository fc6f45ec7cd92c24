"""A deterministic sample province for demos and tests: Phú Thọ (GSO 25).

Units come from the official registry (`vietnamadminunits`): its 13 legacy districts report
until 2025-06, its 148 commune-level units and its departments (electronic ids, from the
departments seed) from 2025-07. Codes for criteria, fields and KPIs come from the seeds, so
the sample always matches the reference data. The files deliberately mix what provinces
really send: CSV and XLSX, the official II.06a form as one-stop software prints it (xlsx and
Excel 97 .xls), Vietnamese labels and English keys, title rows above the header,
decimal commas, thousands separators, codes that lost their leading zeros, several period
spellings, one resubmission that supersedes an earlier file, a file dropped in the wrong
folder, and a few rows that validation must quarantine or warn about.

`province.generate` writes the files; `rows` makes their rows (one generator per kind), `files` writes
them (CSV, XLSX, the printed official forms).
"""

from reform_etl.sample.province import generate
from reform_etl.sample.rows import PROVINCE, Reference, arrived, load_reference, months

__all__ = ["PROVINCE", "Reference", "arrived", "generate", "load_reference", "months"]
