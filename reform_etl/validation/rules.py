"""The rule catalog of SPEC §4: every validation rule, its severity and its words for people.

Each rule is written once, here, as SQL over the raw text columns; from it come
* the Great Expectations suites under `expectations/` (`python -m reform_etl.validation.project`),
  where every rule is one expectation tagged in `meta` with its rule name and severity, and
* the quarantine statement, which applies the same predicates to move failing rows with every
  rule they failed (GX's own result carries at most 200 sample rows, so the full row list is
  taken by the database; the counts are cross-checked against GX's observed values).

Long on purpose: this is the one catalog (the issue's "one definition"), most of it rule data (SQL and
words in two languages); splitting it by kind would scatter what reviewers read side by side.

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

import re
from dataclasses import dataclass, field
from enum import StrEnum

from reform_etl.deadlines import deadline_at_sql
from reform_etl.kinds import KIND_SPECS, KindSpec, ValueType


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


def _bad_values(column: str, test: str, name: str) -> tuple[str, dict[str, ValueSet]]:
    """Row r's `column` is one of the file's distinct values of it for which `test` (on `d.v`) holds:
    the predicate, and the set `set_<column>_<name>` it reads (see Rule.sets)."""
    key = f"set_{column}_{name}"
    query = f"select d.v from {distinct_values(column)} d where d.v is not null and ({test})"
    member = f"r.{column} in {{{key}}}"
    return member, {key: ValueSet(query, column, test, member=member)}


SET = re.compile(r"\{(set_\w+)\}")
VALUE = re.compile(r"\bd\.v\b")  # the value under test in a ValueSet's test


def spelled_out(rule: Rule) -> str:
    """The rule's predicate with each of its sets written as its subquery of `{rows}`."""
    return SET.sub(lambda m: f"({rule.sets[m.group(1)].query})", rule.predicate)


def _json_obj(pairs: dict[str, str]) -> str:
    return "jsonb_build_object(" + ", ".join(f"'{k}', {e}" for k, e in pairs.items()) + ")"


def _raw_obs(*cols: str) -> str:
    return _json_obj({c: f"r.{c}" for c in cols})


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


def _key_expr(spec: KindSpec, alias: str) -> str:
    return "(" + ", ".join(key_cell(spec, k, alias) for k in spec.key) + ")"


# ---------------------------------------------------------------- rules common to all kinds

def _common_rules(spec: KindSpec) -> list[Rule]:
    pc = spec.period_column
    known = "r.unit_code in (select u.unit_code from audit.ref_units u)"
    period_word_vi = "Năm" if spec.yearly else "Ngày tiếp nhận" if pc == "received_at" else "Kỳ báo cáo"
    period_word_en = "year" if spec.yearly else "received date" if pc == "received_at" else "period"
    what = ("year" if spec.yearly else "date" if pc == "received_at"
            else "month or year" if spec.period_may_be_year else "month")
    is_date_column = spec.column(pc).type is ValueType.DATE
    invalid = f"not {is_date('d.v')}" if is_date_column else f"{start_of(spec, 'd.v')} is null"
    bad_period, bad_period_set = _bad_values(pc, invalid, "invalid")
    # The text of a valid period (ISO date, YYYY-MM or YYYY) orders as its date: comparing it with today's
    # first (one text comparison; today's text is computed once per query) spares most values the rest.
    width, pattern = (4, "YYYY") if spec.yearly else (10, "YYYY-MM-DD") if is_date_column else (7, "YYYY-MM")
    after_today = f"left(d.v, {width}) > (select to_char({TODAY}, '{pattern}'))"
    after_start = is_date("d.v") if is_date_column else f"{start_of(spec, 'd.v')} > {TODAY}"
    future, future_set = _bad_values(pc, f"{after_today} and {after_start}", "future")
    # (unit, period) pairs of the file where the unit did not exist: checked once per distinct pair, and
    # only for the units that no window of the registry covers whole over one of their periods in the file's
    # registry (audit.submission_partitions, usually none): their other rows are valid whatever their day.
    this_file = "p.file_id in (select y._file_id from {rows} y limit 1)"
    registered_start, registered_end = registry_bounds(spec, "p.period")
    partly_valid = (f"select p.unit_code from audit.submission_partitions p where {this_file} "
                    f"and not exists (select 1 from audit.ref_units w where w.unit_code = p.unit_code "
                    f"and w.valid_from <= {registered_start} "
                    f"and (w.valid_to is null or w.valid_to >= {registered_end}))")
    not_valid = f"(r.unit_code, {granule(spec)}) in {{set_unit_not_valid}}"
    not_valid_set = {"set_unit_not_valid": ValueSet(
        f"select d.u, d.g from (select distinct x.unit_code as u, "
        f"{granule(spec, 'x')} as g from {{rows}} x where x.unit_code in ({partly_valid}) "
        f"or not exists (select 1 from audit.submission_partitions p where {this_file}) "
        f"offset 0) d where {start_of(spec, 'd.g')} is not null "
        f"and d.u in (select k.unit_code from audit.ref_units k) and not exists (select 1 from audit.ref_units u "
        f"where u.unit_code = d.u and u.valid_from < {end_of(spec, 'd.g')} "
        f"and (u.valid_to is null or u.valid_to > {start_of(spec, 'd.g')}))", width=2,
        probe=f"select exists ({partly_valid}) or not exists (select 1 from audit.submission_partitions p "
              f"where {this_file})", member=not_valid)}
    return [
        Rule(
            "unit_code_unknown", Severity.QUARANTINE_ROW,
            "Mã đơn vị không có trong danh mục đơn vị hành chính / cơ quan",
            "Unit code is not in the unit registry",
            predicate=f"r.unit_code is null or not {known}",
            observed=_raw_obs("unit_code"), columns=("unit_code",),
        ),
        Rule(
            "unit_not_valid_in_period", Severity.QUARANTINE_ROW,
            f"Đơn vị không còn (hoặc chưa) tồn tại trong {period_word_vi.lower()} của dòng",
            f"Unit does not exist in the row's {period_word_en} (abolished or not yet created)",
            predicate=f"{not_valid} and not coalesce({bad_period}, false)",
            observed=_raw_obs("unit_code", pc), columns=("unit_code", pc), sets={**not_valid_set, **bad_period_set},
        ),
        Rule(
            "period_invalid", Severity.QUARANTINE_ROW,
            f"{period_word_vi} trống hoặc không đúng định dạng",
            f"The {period_word_en} is blank or not a valid {what}",
            predicate=f"r.{pc} is null or {bad_period}",
            observed=_raw_obs(pc), columns=(pc,), sets=bad_period_set,
        ),
        Rule(
            "period_in_future", Severity.QUARANTINE_ROW,
            f"{period_word_vi} ở tương lai",
            f"The {period_word_en} is in the future",
            predicate=future,
            observed=_raw_obs(pc), columns=(pc,), sets=future_set,
        ),
    ]


def _count_rules(spec: KindSpec) -> list[Rule]:
    cols = count_columns(spec)
    if not cols:
        return []
    required = {c.key for c in spec.columns if c.required}

    def not_numeric(c: str) -> str:
        blank_fails = "true" if c in required else "false"
        return f"(case when {v(c)} is null then {blank_fails} else {v(c)} !~ '{SIGNED_INT_RE}' end)"

    def negative(c: str) -> str:
        return f"coalesce({v(c)} ~ '^-[0-9]*[1-9][0-9]*$', false)"

    def too_large(c: str) -> str:
        # a whole number, not negative, that raw.count_cell (staging's reading of a count) cannot read;
        # the length test first spares the usual short count the rest
        return (f"coalesce(char_length({v(c)}) > {COUNT_DIGITS} and {v(c)} ~ '^[+]?[0-9]+$' "
                f"and raw.count_cell({v(c)}) is null, false)")

    def offending(test) -> str:
        return "jsonb_strip_nulls(" + _json_obj({c: f"case when {test(c)} then to_jsonb(coalesce(r.{c}, '')) end"
                                                  for c in cols}) + ")"

    return [
        Rule(
            "count_not_numeric", Severity.QUARANTINE_ROW,
            "Số lượng trống hoặc không phải số nguyên (ví dụ 'abc', '2,5', 'NaN', '1e309', '#DIV/0!')",
            "A count is blank or not a whole number (e.g. 'abc', '2.5', 'NaN', '1e309', '#DIV/0!')",
            predicate=" or ".join(not_numeric(c) for c in cols),
            observed=offending(not_numeric), columns=tuple(cols),
        ),
        Rule(
            "count_negative", Severity.QUARANTINE_ROW,
            "Số lượng âm", "A count is negative",
            predicate=" or ".join(negative(c) for c in cols),
            observed=offending(negative), columns=tuple(cols),
        ),
        Rule(
            "count_too_large", Severity.QUARANTINE_ROW,
            f"Số lượng quá lớn (hơn {COUNT_DIGITS} chữ số): kho dữ liệu không lưu được",
            f"A count is too large for the warehouse to hold (more than {COUNT_DIGITS} digits)",
            predicate=" or ".join(too_large(c) for c in cols),
            observed=offending(too_large), columns=tuple(cols),
        ),
    ]


def _duplicate_rule(spec: KindSpec) -> Rule:
    keys = ", ".join(spec.key)
    inner = ", ".join(key_cell(spec, k, "d") for k in spec.key)
    group = ", ".join(str(i) for i in range(1, len(spec.key) + 1))
    # Fewer distinct keys than rows, counted over the keys' 64-bit hashes, sorted by the parallel workers (the
    # count reads them in order): twice as fast as hashing a million groups, and as sorting the texts at 10
    # million (1.9 s against 3.4 s). Joined keys, and hashes, may only merge (never split) groups, so "no" is
    # exact; a "maybe" (a duplicate, or once in billions a collision) runs the set's own query.
    joined = " || chr(31) || ".join(key_cell(spec, k, "d") for k in spec.key)
    probe = (f"select count(*) > count(distinct s.k) from (select hashtextextended({joined}, 0) as k "
             f"from (select * from {{rows}}) d order by 1) s")
    member = f"{_key_expr(spec, 'r')} in {{set_duplicate_keys}}"
    return Rule(
        "duplicate_key_in_file", Severity.QUARANTINE_ROW,
        f"Trùng khóa ({keys}) trong cùng một tệp: mọi dòng trùng đều bị cách ly",
        f"Duplicate key ({keys}) inside one file: every row of the duplicate group is quarantined",
        predicate=member, observed=_raw_obs(*spec.key), columns=spec.key,
        sets={"set_duplicate_keys": ValueSet(f"select {inner} from (select * from {{rows}}) d group by {group} "
                                             "having count(*) > 1", probe=probe, width=len(spec.key),
                                             member=member)},
    )


def _code_rule(name: str, column: str, table: str, vi: str, en: str, required: bool, extra: str = "",
               also: str = "") -> Rule:
    """A code that must be in audit.<table> (blank failing if `required`); `also`: one more code accepted."""
    blank = f"{v(column)} is null" if required else "false"
    known_also = f" and {v(column)} <> '{also}'" if also else ""
    if extra:
        unknown = f"not exists (select 1 from audit.{table} x where x.{column} = r.{column}{extra})"
    else:
        unknown = f"not (r.{column} in (select x.{column} from audit.{table} x))"
    return Rule(
        name, Severity.QUARANTINE_ROW, vi, en,
        predicate=f"{blank} or ({v(column)} is not null{known_also} and {unknown})",
        observed=_raw_obs(column), columns=(column,),
    )


# ---------------------------------------------------------------- per kind

def _par_rules(spec: KindSpec) -> list[Rule]:
    year_match = f"case when {period_ok(spec)} then r.year::int between c.year_from and c.year_to else true end"
    crit = f"select 1 from audit.ref_criteria c where c.criterion_code = r.criterion_code and ({year_match})"
    max_points = (f"(select max(c.max_points) from audit.ref_criteria c "
                  f"where c.criterion_code = r.criterion_code and ({year_match}))")
    s, a = as_dec("self_score"), as_dec("appraised_score")
    return [
        _code_rule("criterion_code_unknown", "criterion_code", "ref_criteria",
                   "Mã tiêu chí không có trong bộ tiêu chí của năm", "Criterion code is not in that year's framework",
                   required=True,
                   extra=f" and ({year_match.replace('c.year', 'x.year')})"),
        Rule(
            "score_not_numeric", Severity.QUARANTINE_ROW,
            "Điểm không phải là số", "A score is not a number",
            predicate=(f"({v('self_score')} is not null and {v('self_score')} !~ '{DEC_RE}') or "
                       f"({v('appraised_score')} is not null and {v('appraised_score')} !~ '{DEC_RE}')"),
            observed=_raw_obs("self_score", "appraised_score"), columns=("self_score", "appraised_score"),
        ),
        Rule(
            "max_points_mismatch", Severity.QUARANTINE_ROW,
            "Điểm tối đa của tiêu chí trên bảng chấm điểm khác bộ tiêu chí đang áp dụng (bảng của phiên bản khác)",
            "The scoring sheet's maximum points for the criterion differ from the framework in force "
            "(a sheet of another framework version)",
            predicate=(f"{v('max_points')} is not null and ({v('max_points')} !~ '{DEC_RE}' or exists ({crit} "
                       f"and c.max_points <> {as_dec('max_points')}))"),
            observed=_json_obj({"max_points": "r.max_points", "framework_max_points": max_points}),
            columns=("max_points",),
        ),
        Rule(
            "score_out_of_range", Severity.QUARANTINE_ROW,
            "Điểm nhỏ hơn 0 hoặc vượt điểm tối đa của tiêu chí",
            "A score is below 0 or above the criterion's maximum points",
            predicate=(f"{s} < 0 or {a} < 0 or exists ({crit} and ({s} > c.max_points or {a} > c.max_points))"),
            observed=_json_obj({"self_score": "r.self_score", "appraised_score": "r.appraised_score",
                                "max_points": max_points}),
            columns=("self_score", "appraised_score"),
        ),
    ]


def _dossier_stats_rules(spec: KindSpec) -> list[Rule]:
    received = ("received_carried_over", "received_online", "received_direct", "received_postal")
    resolved = ("resolved_early", "resolved_on_time", "resolved_late", "pending_in_time", "pending_overdue")
    # received_postal may be blank (unknown: the official form counts it in received_direct): it adds 0
    postal_ok = f"({v('received_postal')} is null or {v('received_postal')} ~ '{INT_RE}')"
    all_ok = " and ".join([*(f"{v(c)} ~ '{INT_RE}'" for c in received + resolved if c != "received_postal"),
                           postal_ok])
    total_in = " + ".join(as_int(c) if c != "received_postal" else f"coalesce({as_int(c)}, 0)" for c in received)
    total_out = " + ".join(as_int(c) for c in resolved)
    return [
        # blank or ALL: all fields together (marts.dim_field's all-fields member)
        _code_rule("field_code_unknown", "field_code", "ref_fields",
                   "Mã lĩnh vực không có trong danh mục", "Field code is not in the field catalog", required=False,
                   also=ALL_FIELDS),
        Rule(
            "received_not_balanced", Severity.QUARANTINE_ROW,
            "Tổng tiếp nhận (kỳ trước chuyển qua + trực tuyến + trực tiếp + BCCI) khác đã giải quyết + đang giải quyết",
            "Received (carried over + online + direct + postal) differs from resolved + pending",
            predicate=f"coalesce({all_ok}, false) and ({total_in}) <> ({total_out})",
            observed=_json_obj({"received": f"case when coalesce({all_ok}, false) then {total_in} end",
                                "resolved_plus_pending": f"case when coalesce({all_ok}, false) then {total_out} end"}),
            columns=received + resolved,
        ),
    ]


def _numerator_rule() -> Rule:
    """A rate's numerator above its denominator (it_kpis, service_index)."""
    return Rule(
        "numerator_gt_denominator", Severity.QUARANTINE_ROW,
        "Tử số lớn hơn mẫu số", "Numerator is greater than the denominator",
        predicate=f"{as_dec('numerator')} > {as_dec('denominator')}",
        observed=_raw_obs("numerator", "denominator"), columns=("numerator", "denominator"),
    )


def _it_kpi_rules(spec: KindSpec) -> list[Rule]:
    return [
        _code_rule("kpi_code_unknown", "kpi_code", "ref_kpis",
                   "Mã chỉ tiêu không có trong danh mục", "KPI code is not in the KPI catalog", required=True),
        _numerator_rule(),
    ]


def _service_index_rules(spec: KindSpec) -> list[Rule]:
    score = v("published_score")
    return [
        _code_rule("metric_unknown", "metric_code", "ref_service_index_metrics",
                   "Mã chỉ số không có trong danh mục chỉ số 766 (seed service_index_metrics / service_index_groups)",
                   "Metric code is not in the Decision 766 catalogue (seeds service_index_metrics / "
                   "service_index_groups)", required=True),
        _numerator_rule(),
        Rule(
            "published_score_invalid", Severity.QUARANTINE_ROW,
            "Điểm công bố không phải là số từ 0 đến 100", "The published score is not a number from 0 to 100",
            predicate=(f"{score} is not null and ({score} !~ '{DEC_RE}' "
                       f"or {as_dec('published_score')} not between 0 and 100)"),
            observed=_raw_obs("published_score"), columns=("published_score",),
        ),
    ]


def _completed_before_received() -> Rule:
    """Completion before receipt, both valid date cells (else the date rules name the row). Canonical date
    cells order as text; moments are compared when both carry a time of day, days otherwise (a completion
    written as a date, on the day of a receipt at 08:00, is not before it)."""
    received, completed = v("received_at"), v("completed_at")
    invalid = [_bad_values(c, f"not {is_date('d.v')}", "invalid") for c in ("received_at", "completed_at")]
    before = (f"(case when octet_length({completed}) = 19 and octet_length({received}) = 19 "
              f"then {completed} < {received} else left({completed}, 10) < left({received}, 10) end)")
    return Rule(
        "completed_before_received", Severity.QUARANTINE_ROW,
        "Ngày trả kết quả trước ngày tiếp nhận hồ sơ", "The dossier was completed before it was received",
        predicate=(f"{completed} is not null and {received} is not null and {before} "
                   + "".join(f"and not coalesce({member}, false) " for member, _ in invalid)).rstrip(),
        observed=_raw_obs("received_at", "completed_at"), columns=("received_at", "completed_at"),
        sets={key: value_set for _, sets in invalid for key, value_set in sets.items()},
    )


def _dossier_rules(spec: KindSpec) -> list[Rule]:
    # raw.channel_of is the one reading of a channel cell: staging counts the row in the channel it names
    unknown_channel, unknown_channel_set = _bad_values("channel", "raw.channel_of(d.v) is null", "unknown")
    date_bad = [_bad_values(c, f"not {is_date('d.v')}", "invalid") for c in ("due_at", "completed_at")]
    return [
        _code_rule("field_code_unknown", "field_code", "ref_fields",
                   "Mã lĩnh vực không có trong danh mục", "Field code is not in the field catalog", required=True),
        Rule(
            "channel_unknown", Severity.QUARANTINE_ROW,
            "Kênh nộp không phải trực tuyến / trực tiếp / bưu chính công ích",
            "Channel is not online / direct / postal",
            predicate=f"{v('channel')} is null or {unknown_channel}",
            observed=_raw_obs("channel"), columns=("channel",), sets=unknown_channel_set,
        ),
        Rule(
            "date_invalid", Severity.QUARANTINE_ROW,
            "Ngày hẹn trả hoặc ngày trả kết quả không phải là ngày hợp lệ",
            "Due date or completion date is not a valid date",
            predicate=" or ".join(predicate for predicate, _ in date_bad),
            observed=_raw_obs("due_at", "completed_at"), columns=("due_at", "completed_at"),
            sets={key: query for _, sets in date_bad for key, query in sets.items()},
        ),
        _completed_before_received(),
    ]


_KIND_RULES = {
    "par_scores": _par_rules,
    "dossier_stats": _dossier_stats_rules,
    "it_kpis": _it_kpi_rules,
    "dossiers": _dossier_rules,
    "service_index": _service_index_rules,
}


def row_rules(kind: str) -> list[Rule]:
    """Rules checked on each row of one file (suite `<kind>`): quarantine and in-file warnings."""
    spec = KIND_SPECS[kind]
    return [*_common_rules(spec), *_count_rules(spec), *_KIND_RULES[kind](spec), _duplicate_rule(spec)]


# ---------------------------------------------------------------- cross-file warnings (suite `<kind>_history`)

NOT_QUARANTINED = ("not exists (select 1 from quarantine.{kind} q where q._file_id = {a}._file_id "
                   "and q._row_number = {a}._row_number)")


def _current_dossier_stats() -> str:
    """CTE `cur`: dossier_stats rows that are the current truth for their unit and month (file accepted, not
    superseded, row not quarantined), for the units of the file under test."""
    return (
        "cur as materialized (select s.* from raw.dossier_stats s, audit.v_submission_partitions p "
        "where p.kind = 'dossier_stats' and p.status = 'accepted' and p.is_current and p.file_id = s._file_id "
        "and p.unit_code = coalesce(s.unit_code, '') and p.period = left(coalesce(s.period, ''), 7) "
        "and s.unit_code in (select b.unit_code from (select * from {rows}) b) "
        f"and {NOT_QUARANTINED.format(kind='dossier_stats', a='s')})"
    )


def _previous_period(col: str) -> str:
    return (f"(case when {col} ~ '{PERIOD_RE}' then "
            f"to_char(to_date({col} || '-01', 'YYYY-MM-DD') - interval '1 month', 'YYYY-MM') end)")


def _rates_and_pending() -> str:
    """CTEs `rates` (a unit's on-time rate per month: its all-fields row if sent, else the sum of its fields)
    and `pending` (pending at the end of a month per unit and field), both from `cur`."""
    ok = f"{as_int('resolved_early', 'c')} + {as_int('resolved_on_time', 'c')}"
    done = f"{ok} + {as_int('resolved_late', 'c')}"
    field = f"nullif(c.field_code, '{ALL_FIELDS}')"  # blank or ALL: the all-fields row

    def rate(filt: str) -> str:
        return (f"round(100.0 * sum({ok}) filter (where {field} {filt}) "
                f"/ nullif(sum({done}) filter (where {field} {filt}), 0), 1)")

    return (
        f"rates as (select c.unit_code, c.period, coalesce({rate('is null')}, {rate('is not null')}) as rate "
        f"from cur c group by c.unit_code, c.period), "
        f"pending as (select c.unit_code, c.period, {field_key('c.field_code')} as field, "
        f"sum({as_int('pending_in_time', 'c')} + {as_int('pending_overdue', 'c')}) as pending "
        f"from cur c group by 1, 2, 3)"
    )


def _latest_score(column: str) -> str:
    """The current value of a PAR score for row r's key: from the latest accepted file that provides it."""
    return (
        f"(select c.{column} from raw.par_scores c, audit.submission_files f "
        f"where f.file_id = c._file_id and f.status = 'accepted' and c.unit_code = r.unit_code and c.year = r.year "
        f"and c.criterion_code = r.criterion_code and c.{column} ~ '{DEC_RE}' "
        f"and {NOT_QUARANTINED.format(kind='par_scores', a='c')} "
        f"order by f.received_at desc, f.file_id desc limit 1)"
    )


def _form_totals(kind: str) -> Rule:
    """A form's totals or subtotals rows that are not the sum of their rows, as the reader found them
    (audit.form_findings): the rows are loaded, the totals never are."""
    return Rule(
        "form_totals_mismatch", Severity.WARN,
        "Dòng tổng cộng / tổng điểm của biểu không bằng tổng các dòng của nó (dòng tổng không được nạp)",
        "A form's totals or subtotal row is not the sum of its rows (totals rows are never loaded)",
        query=("select w.sheet_row as _row_number, w.finding from audit.form_findings w "
               "where w.file_id = (select x._file_id from (select * from {rows}) x limit 1) "
               "and w.rule = 'form_totals_mismatch' order by w.sheet_row, w.finding_id"),
    )


# Kinds whose later file for a unit and period replaces the earlier one's rows (SPEC §3); PAR scores and 766
# figures are taken value by value from the latest file that provides each, so a shorter file removes nothing.
REPLACING_KINDS = ("dossier_stats", "it_kpis")


def _correction_rule() -> Rule:
    """A file that replaces an earlier accepted file for a unit and period with fewer rows (SPEC §4 warn)."""
    this_file = "(select y._file_id from (select * from {rows}) y limit 1)"
    earlier = (
        "select q.file_id, q.row_count from audit.submission_partitions q, audit.submission_files g "
        "where g.file_id = q.file_id and g.status = 'accepted' and q.kind = p.kind and q.unit_code = p.unit_code "
        "and q.period = p.period and (g.received_at, g.file_id) < (f.received_at, f.file_id) "
        "order by g.received_at desc, g.file_id desc limit 1"
    )
    return Rule(
        "correction_fewer_rows", Severity.WARN,
        "Tệp nộp sau thay thế tệp trước của cùng đơn vị và kỳ nhưng có ít dòng hơn: các dòng thiếu bị gỡ khỏi dữ liệu",
        "A later file replaces an earlier one for the same unit and period with fewer rows: the rows it lacks leave "
        "the marts",
        query=(
            f"select p.unit_code, p.period, p.file_id, prev.file_id as replaces_file_id, "
            f"prev.row_count as previous_rows, p.row_count as rows, "
            f"'tệp #' || p.file_id || ' thay thế tệp #' || prev.file_id || ' của đơn vị ' || p.unit_code "
            f"|| ', kỳ ' || p.period || ': ' || prev.row_count || ' dòng → ' || p.row_count || ' / file #' "
            f"|| p.file_id || ' replaces file #' || prev.file_id || ' for unit ' || p.unit_code || ', period ' "
            f"|| p.period || ': ' || prev.row_count || ' rows → ' || p.row_count as detail "
            f"from audit.submission_partitions p, audit.submission_files f, lateral ({earlier}) prev "
            f"where p.file_id = {this_file} and f.file_id = p.file_id and prev.row_count > p.row_count "
            f"order by p.unit_code, p.period"
        ),
    )


def history_rules(kind: str) -> list[Rule]:
    """Warnings that compare a file's rows with other files (run per accepted file, after all files of the run),
    and those the reader of an official form found in the file."""
    corrections = [_correction_rule()] if kind in REPLACING_KINDS else []
    if kind != "dossier_stats" and kind != "par_scores":
        return corrections
    mine = NOT_QUARANTINED.format(kind=kind, a="r")
    if kind == "par_scores":
        max_points = ("(select max(m.max_points) from audit.ref_criteria m where m.criterion_code = x.criterion_code "
                      f"and {as_int('year', 'x')} between m.year_from and m.year_to)")
        return [Rule(
            "self_appraised_gap", Severity.WARN,
            "Điểm tự đánh giá và điểm thẩm định chênh nhau quá một nửa điểm tối đa của tiêu chí",
            "Self score and appraised score differ by more than half the criterion's maximum points",
            # Scores may come from different files (self-assessment, then appraisal): the current value of
            # each is compared, and the warning sits on the row that brings the appraised score.
            query=(
                f"select * from (select r._row_number, r.unit_code, r.year, r.criterion_code, "
                f"{_latest_score('self_score')} as self_score, r.appraised_score "
                f"from (select * from {{rows}}) r where r.appraised_score ~ '{DEC_RE}' and r.year ~ '{YEAR_RE}' "
                f"and {mine}) x "
                f"where abs({as_dec('self_score', 'x')} - {as_dec('appraised_score', 'x')}) > {max_points} / 2 "
                f"order by x._row_number"
            ),
        ), _form_totals(kind)]
    carried = Rule(
        "carried_over_mismatch", Severity.WARN,
        "Số kỳ trước chuyển qua khác số đang giải quyết cuối tháng trước",
        "Carried over this month differs from last month's pending (in time + overdue)",
        query=(
            f"with {_current_dossier_stats()}, {_rates_and_pending()} "
            f"select r._row_number, r.unit_code, r.period, r.field_code, "
            f"r.received_carried_over as carried_over, p.pending as previous_pending "
            f"from (select * from {{rows}}) r, pending p "
            f"where r.period ~ '{PERIOD_RE}' and r.received_carried_over ~ '{INT_RE}' and {mine} "
            f"and p.unit_code = r.unit_code and p.period = {_previous_period('r.period')} "
            f"and p.field = {field_key('r.field_code')} and p.pending <> {as_int('received_carried_over')} "
            f"order by r._row_number"
        ),
    )
    swing = Rule(
        "on_time_rate_swing", Severity.WARN,
        "Tỷ lệ giải quyết đúng hạn của đơn vị thay đổi quá 30 điểm phần trăm so với tháng trước",
        "The unit's on-time rate moved by more than 30 points month on month",
        query=(
            f"with {_current_dossier_stats()}, {_rates_and_pending()} "
            f"select u.unit_code, u.period, a.rate as on_time_rate, b.rate as previous_on_time_rate "
            f"from (select distinct r.unit_code, r.period from (select * from {{rows}}) r "
            f"where r.period ~ '{PERIOD_RE}' and r.unit_code is not null and {mine}) u, rates a, rates b "
            f"where a.unit_code = u.unit_code and a.period = u.period and b.unit_code = u.unit_code "
            f"and b.period = {_previous_period('u.period')} and abs(a.rate - b.rate) > 30 "
            f"order by u.unit_code, u.period"
        ),
    )
    return [carried, swing, _form_totals(kind), *corrections]

# ---------------------------------------------------------------- run-level warnings (suite `submission_run`)

MISSING_UNIT_KINDS = ("par_scores", "dossier_stats", "it_kpis")


def _period_bounds(period: str) -> tuple[str, str]:
    start = (f"(case when {period} ~ '{YEAR_RE}' then make_date({period}::int, 1, 1) "
             f"else to_date({period} || '-01', 'YYYY-MM-DD') end)")
    end = (f"(case when {period} ~ '{YEAR_RE}' then make_date({period}::int + 1, 1, 1) "
           f"else (to_date({period} || '-01', 'YYYY-MM-DD') + interval '1 month')::date end)")
    return start, end


def run_rules() -> list[tuple[str, Rule]]:
    """(kind, rule) pairs checked once per run on the run's files (batch: audit.submission_files of the run)."""
    out = []
    for kind in MISSING_UNIT_KINDS:
        spec = KIND_SPECS[kind]
        regex = YEAR_RE if spec.yearly else PERIOD_RE
        width = 4 if spec.yearly else 7
        _start, end = _period_bounds("t.period")
        # who reported what: rows of accepted files that were not quarantined
        reported = (
            f"(select distinct s.unit_code, left(s.{spec.period_column}, {width}) as period "
            f"from raw.{kind} s, audit.submission_files f where f.file_id = s._file_id and f.status = 'accepted' "
            f"and s.unit_code is not null and {NOT_QUARANTINED.format(kind=kind, a='s')})"
        )
        query = (
            f"with reported as materialized {reported} "
            f"select t.period, roster.unit_code from "
            f"(select distinct left(s.{spec.period_column}, {width}) as period from raw.{kind} s "
            f"where s._file_id in (select f.file_id from (select * from {{rows}}) f where f.status = 'accepted') "
            f"and left(s.{spec.period_column}, {width}) ~ '{regex}') t, "
            f"(select distinct o.unit_code from reported o) roster "
            # only periods past their deadline: the one definition rpt_submission_status uses (reform_etl.deadlines)
            f"where now() > {deadline_at_sql('t.period')} "
            f"and exists (select 1 from reported h where h.period = t.period) "
            f"and not exists (select 1 from reported h where h.unit_code = roster.unit_code and h.period = t.period) "
            # on the roster for a period: the unit still exists on the period's last day (a district
            # abolished on 2025-07-01 is not expected to report the year 2025 or July 2025)
            f"and exists (select 1 from audit.ref_units u where u.unit_code = roster.unit_code "
            f"and u.valid_from < {end} and (u.valid_to is null or u.valid_to >= {end})) "
            f"order by t.period, roster.unit_code"
        )
        out.append((kind, Rule(
            "unit_missing_for_period", Severity.WARN,
            "Đơn vị chưa nộp báo cáo cho kỳ đã quá hạn nộp mà các đơn vị khác đã nộp",
            "A unit is missing for a period that other units reported and that is past its deadline",
            query=query,
        )))
    return out


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
