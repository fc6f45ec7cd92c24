"""The rule catalog of SPEC §4: every validation rule, its severity and its words for people.

Each rule is written once, here, as SQL over the raw text columns; from it come
* the Great Expectations suites under `expectations/` (`python -m reform_etl.validation.project`),
  where every rule is one expectation tagged in `meta` with its rule name and severity, and
* the quarantine statement, which applies the same predicates to move failing rows with every
  rule they failed (GX's own result carries at most 200 sample rows, so the full row list is
  taken by the database; the counts are cross-checked against GX's observed values).

This module is the catalog's one entry point: the file rules are here, the others in
`validation/row_rules.py` (each row of a file) and `validation/cross_file_rules.py` (a file against other
files, a run against the roster), all written with the blocks of `validation/rule_sql.py`, whose
names this module re-exports (`rules.Rule`, `rules.spelled_out`, ...).

Severities: `reject_file` (nothing of the file loads), `quarantine_row` (the row goes to
quarantine.<kind>, good rows load), `warn` (loads, flagged in the report).

SQL conventions: the row under test is `r`; `{rows}` stands for the rows of the file under test
(the raw table filtered to the file; GX substitutes its batch there in set-level queries).
Raw cells are already trimmed, blanks null, by the loader. Checks that cost microseconds per
value (dates, validity of a unit in a period) run once per distinct value of the file, and
checks of the file as a whole (duplicate keys) once per file: a rule names such a set of failing
values `{set_<name>}` and carries its query in `Rule.sets`; the verdict computes each set once,
before its pass over the rows, and GX's copy of the predicate spells the query out
(`spelled_out`). Code lookups are written `x in (select ...)` for the same reason. A record-level
file of millions of rows holds a few thousand distinct units, days and codes. Queries avoid the
word JOIN (GX would then stop aliasing its batch), bind-like colons and percent signs.
"""

from __future__ import annotations

from dataclasses import dataclass

from reform_etl.kinds import KIND_SPECS
from reform_etl.validation.cross_file_rules import MISSING_UNIT_KINDS, REPLACING_KINDS, history_rules, run_rules
from reform_etl.validation.row_rules import row_rules
from reform_etl.validation.rule_sql import (
    ALL_FIELDS,
    COUNT_DIGITS,
    DEC_RE,
    INT_RE,
    PERIOD_RE,
    SET,
    SEVERITY_WORDS,
    SIGNED_INT_RE,
    TODAY,
    VALUE,
    YEAR_RE,
    Rule,
    Severity,
    ValueSet,
    all_fields,
    as_dec,
    as_int,
    count_columns,
    distinct_values,
    end_of,
    field_key,
    granule,
    is_date,
    key_cell,
    period_ok,
    registry_bounds,
    spelled_out,
    start_of,
    v,
)

__all__ = [
    "ALL_FIELDS", "COUNT_DIGITS", "DEC_RE", "FILE_RULES", "INT_RE", "KIND_SPECS", "MISSING_UNIT_KINDS", "PERIOD_RE",
    "REPLACING_KINDS", "SET", "SEVERITY_WORDS", "SIGNED_INT_RE", "TODAY", "VALUE", "YEAR_RE", "FileRule", "Rule",
    "Severity", "ValueSet", "all_fields", "all_rules", "as_dec", "as_int", "count_columns", "distinct_values",
    "end_of", "field_key", "file_rule_for", "granule", "history_rules", "is_date", "key_cell", "period_ok",
    "registry_bounds", "row_rules", "run_rules", "spelled_out", "start_of", "v", "words",
]


# ---------------------------------------------------------------- file-level rules (suite `submission_file`)

@dataclass(frozen=True)
class FileRule:
    name: str
    column: str  # boolean column of the file-shape frame that must be True
    loader_codes: tuple[str, ...]  # the loader's error_code(s) that mean this rule failed
    message_vi: str
    message_en: str
    severity: Severity = Severity.REJECT_FILE


FILE_RULES = (
    FileRule("unsafe_file_path", "path_is_safe", ("unsafe_file_path", "bad_path"),  # bad_path: older rows
             "Đường dẫn tệp không an toàn hoặc nằm ngoài thư mục nhận",
             "Unsafe file path, or outside the landing folder"),
    FileRule("file_unreadable", "is_readable", ("unreadable",),
             "Không đọc được tệp (hỏng, có mật khẩu, không phải CSV/XLSX/XLS/ODS, hoặc mã hóa không hỗ trợ)",
             "File cannot be read (corrupt, encrypted, not CSV/XLSX/XLS/ODS, or an unsupported encoding)"),
    FileRule("file_too_large", "is_within_limits", ("file_too_large",),
             "Bảng tính giải nén ra quá lớn hoặc quá nhiều ô để đọc an toàn",
             "Workbook decompresses to more bytes or cells than can be read safely"),
    FileRule("form_title_unresolved", "has_unit_and_period", ("unit_unresolved", "period_unresolved"),
             "Biểu không ghi (hoặc ghi tên không xác định được) đơn vị báo cáo hoặc kỳ báo cáo",
             "The form does not state its unit or period, or names a unit that cannot be resolved"),
    FileRule("wrong_kind", "kind_matches", ("wrong_kind",),
             "Tệp không thuộc loại dữ liệu của thư mục", "File is not of the kind its folder names"),
    FileRule("header_not_found", "has_header", ("no_header",),
             "Không tìm thấy dòng tiêu đề cột nhận biết được", "No recognisable header row"),
    FileRule("missing_required_columns", "has_required_columns", ("missing_columns",),
             "Thiếu cột bắt buộc", "Required columns are missing"),
    FileRule("duplicate_columns", "has_unique_columns", ("duplicate_columns",),
             "Có cột bị lặp lại trong dòng tiêu đề", "A column appears twice in the header"),
    FileRule("file_empty", "has_data_rows", ("empty",),
             "Tệp rỗng hoặc chỉ có dòng tiêu đề", "File is empty or has a header only"),
    FileRule("file_not_parsed", "is_parsed", (),
             "Tệp không xử lý được vì lý do khác (xem chi tiết lỗi)", "File could not be processed (see the error)"),
)


def file_rule_for(error_code: str | None) -> FileRule | None:
    """The file rule a loader's error_code means (`bad_path` -> `unsafe_file_path`), None if none does."""
    return next((rule for rule in FILE_RULES if error_code in rule.loader_codes), None)


def all_rules() -> list[tuple[str, str, Rule | FileRule]]:
    """(suite, kind, rule) for every rule: the list the report and the docs show."""
    out: list[tuple[str, str, Rule | FileRule]] = [("submission_file", "*", r) for r in FILE_RULES]
    for kind in KIND_SPECS:
        out += [(kind, kind, r) for r in row_rules(kind)]
        out += [(f"{kind}_history", kind, r) for r in history_rules(kind)]
    out += [("submission_run", kind, r) for kind, r in run_rules()]
    return out


def words(rule_name: str) -> tuple[str, str]:
    """Vietnamese and English words for a rule name (first definition wins)."""
    for _suite, _kind, rule in all_rules():
        if rule.name == rule_name:
            return rule.message_vi, rule.message_en
    return rule_name, rule_name
