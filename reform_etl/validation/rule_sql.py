"""What a rule of the catalog is (`Rule`, `ValueSet`, `Severity`) and the SQL building blocks rules are
written with: cells as raw holds them, periods, keys, the `{set_<name>}` sets. The catalog is
`validation/rules.py` (see its docstring for the SQL conventions); this module holds no rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from reform_etl.kinds import KindSpec, ValueType


class Severity(StrEnum):
    REJECT_FILE = "reject_file"
    QUARANTINE_ROW = "quarantine_row"
    WARN = "warn"


SEVERITY_WORDS = {
    Severity.REJECT_FILE: ("Từ chối tệp", "File rejected"),
    Severity.QUARANTINE_ROW: ("Cách ly dòng", "Row quarantined"),
    Severity.WARN: ("Cảnh báo", "Warning"),
}


@dataclass(frozen=True)
class ValueSet:
    """Values of the file a rule tests as a set: `query` (over {rows}) returns those that fail. A set of
    one column's distinct values that fail `test` (of `d.v`, a test of the value alone) names the
    column: the verdict tests all such sets on one pass over the distinct values of their columns, or,
    where a column's values are mostly distinct (date-times to the second), or where the loader proved
    every date cell of the file valid, tests each row's value in place (`member`, the predicate's test of
    membership, becomes `in_place()`: the same test of `r`'s cell).
    When the set is empty (the usual), the verdict writes `member` as false, which the planner folds.
    `probe`, if given, is a cheaper query over {rows} whose one boolean is false only when the set
    is empty (usually it is: the set's own query is then skipped); `width` is the query's columns."""
    query: str
    column: str = ""
    test: str = ""
    probe: str = ""
    width: int = 1
    member: str = ""

    def in_place(self, valid_date: bool = False) -> str:
        """`test` of row r's own cell (a set of one column's values), null cells failing nothing. `valid_date`:
        every cell of the column is known to be a valid date cell (audit.submission_files.has_proven_dates),
        so the test's `is_date` of it is true (`not true`: the planner drops the whole test)."""
        test = self.test.replace(is_date("d.v"), "true") if valid_date else self.test
        return f"(r.{self.column} is not null and ({VALUE.sub(f'r.{self.column}', test)}))"


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    message_vi: str
    message_en: str
    predicate: str = ""  # row rules: SQL that is true when row r FAILS
    observed: str = "null::jsonb"  # row rules: SQL jsonb of the values that made it fail
    query: str = ""  # set-level rules: a full query returning the failing rows/groups
    columns: tuple[str, ...] = field(default_factory=tuple)  # the columns a row rule is about
    sets: dict[str, ValueSet] = field(default_factory=dict)  # row rules: `{set_<name>}` of the predicate

    @property
    def is_row_rule(self) -> bool:
        return bool(self.predicate)


# ---------------------------------------------------------------- SQL building blocks

TODAY = "(now() at time zone 'Asia/Ho_Chi_Minh')::date"
INT_RE = "^[0-9]+$"
SIGNED_INT_RE = "^[+-]?[0-9]+$"
DEC_RE = "^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)$"
PERIOD_RE = "^[12][0-9][0-9][0-9]-(0[1-9]|1[0-2])$"
YEAR_RE = "^[12][0-9][0-9][0-9]$"
ALL_FIELDS = "ALL"  # the all-fields member of marts.dim_field; a blank field code means the same
COUNT_DIGITS = 15  # significant digits of a count raw.count_cell reads (003_normalise.sql)


def v(col: str, alias: str = "r") -> str:
    """The cell, blank as null: as raw holds it (both load paths trim every cell and store a blank one
    as null, ingest.normalise._normaliser), so no trimming per row here; a row rule costs a scan of the file."""
    return f"{alias}.{col}"


def as_int(col: str, alias: str = "r") -> str:
    return f"(case when {v(col, alias)} ~ '{INT_RE}' then {v(col, alias)}::numeric end)"


def as_dec(col: str, alias: str = "r") -> str:
    return f"(case when {v(col, alias)} ~ '{DEC_RE}' then {v(col, alias)}::numeric end)"


def period_ok(spec: KindSpec, alias: str = "r") -> str:
    col = v(spec.period_column, alias)
    if spec.yearly:
        return f"coalesce({col} ~ '{YEAR_RE}', false)"
    if spec.column(spec.period_column).type is ValueType.DATE:  # raw dates are trimmed by the loader
        return is_date(col)
    if spec.period_may_be_year:
        return f"coalesce({col} ~ '{PERIOD_RE}' or {col} ~ '{YEAR_RE}', false)"
    return f"coalesce({col} ~ '{PERIOD_RE}', false)"


def is_date(value: str) -> str:
    """A date cell naming a real day (and time of day) in the loader's canonical form; false for null.
    The test staging reads dates with (003_normalise.sql), so what passes here staging can read."""
    return f"raw.is_date_cell({value})"


def start_of(spec: KindSpec, value: str) -> str:
    """First day of the period a normalised period cell names (null: blank or invalid)."""
    if spec.yearly:
        return f"(case when {value} ~ '{YEAR_RE}' then make_date({value}::int, 1, 1) end)"
    if spec.column(spec.period_column).type is ValueType.DATE:
        return f"audit.try_date({value})"
    if spec.period_may_be_year:
        return (f"(case when {value} ~ '{PERIOD_RE}' then to_date({value} || '-01', 'YYYY-MM-DD') "
                f"when {value} ~ '{YEAR_RE}' then make_date({value}::int, 1, 1) end)")
    return f"(case when {value} ~ '{PERIOD_RE}' then to_date({value} || '-01', 'YYYY-MM-DD') end)"


def end_of(spec: KindSpec, value: str) -> str:
    """Exclusive end of that period."""
    if spec.period_may_be_year:
        return (f"({start_of(spec, value)} + case when {value} ~ '{YEAR_RE}' then interval '1 year' "
                f"else interval '1 month' end)::date")
    step = "1 year" if spec.yearly else "1 day" if spec.column(spec.period_column).type is ValueType.DATE else "1 month"
    return f"({start_of(spec, value)} + interval '{step}')::date"


def registry_bounds(spec: KindSpec, value: str) -> tuple[str, str]:
    """First day and exclusive end of a period as the file registry holds it (audit.submission_partitions:
    the year, or the month, also of a date), null when invalid."""
    if spec.yearly:
        start, step = f"(case when {value} ~ '{YEAR_RE}' then make_date({value}::int, 1, 1) end)", "1 year"
    elif spec.period_may_be_year:
        return start_of(spec, value), end_of(spec, value)
    else:
        start, step = f"(case when {value} ~ '{PERIOD_RE}' then to_date({value} || '-01', 'YYYY-MM-DD') end)", "1 month"
    return start, f"({start} + interval '{step}')::date"


def granule(spec: KindSpec, alias: str = "r") -> str:
    """The part of the period cell a unit's validity depends on: the day of a date-time."""
    if spec.column(spec.period_column).type is ValueType.DATE:
        return f"left({alias}.{spec.period_column}, 10)"
    return f"{alias}.{spec.period_column}"


def distinct_values(column: str) -> str:
    # offset 0: a test on the values runs on the distinct values, not pushed onto every row
    return f"(select distinct x.{column} as v from {{rows}} x offset 0)"


SET = re.compile(r"\{(set_\w+)\}")
VALUE = re.compile(r"\bd\.v\b")  # the value under test in a ValueSet's test


def spelled_out(rule: Rule) -> str:
    """The rule's predicate with each of its sets written as its subquery of `{rows}`."""
    return SET.sub(lambda m: f"({rule.sets[m.group(1)].query})", rule.predicate)


def count_columns(spec: KindSpec) -> list[str]:
    return [c.key for c in spec.columns if c.type is ValueType.COUNT]


def all_fields(spec: KindSpec) -> bool:
    """Whether the kind's field code may be blank, meaning all fields, as ALL_FIELDS does (SPEC §3)."""
    return "field_code" in spec.keys and not spec.column("field_code").required


def field_key(cell: str) -> str:
    """A field code cell where blank and ALL_FIELDS mean all fields: '' for both (staging reads both as
    ALL_FIELDS, the all-fields member of marts.dim_field)."""
    return f"coalesce(nullif({cell}, '{ALL_FIELDS}'), '')"


def key_cell(spec: KindSpec, key: str, alias: str) -> str:
    """A key cell as the marts tell keys apart: blank as ''; a blank field code and ALL_FIELDS as one."""
    if key == "field_code" and all_fields(spec):
        return field_key(f"{alias}.{key}")
    return f"coalesce({alias}.{key}, '')"
