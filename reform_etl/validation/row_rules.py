"""Row rules (suite `<kind>`): the checks of each row of one file, common to all kinds and per kind.

Part of the catalog of `validation/rules.py` (read through it: `rules.row_rules`); written with the
building blocks of `validation/rule_sql.py`.
"""

from __future__ import annotations

from reform_etl.kinds import KIND_SPECS, KindSpec, ValueType
from reform_etl.validation.rule_sql import (
    ALL_FIELDS,
    COUNT_DIGITS,
    DEC_RE,
    INT_RE,
    SIGNED_INT_RE,
    TODAY,
    Rule,
    Severity,
    ValueSet,
    as_dec,
    as_int,
    count_columns,
    distinct_values,
    end_of,
    granule,
    is_date,
    key_cell,
    period_ok,
    registry_bounds,
    start_of,
    v,
)


def _bad_values(column: str, test: str, name: str) -> tuple[str, dict[str, ValueSet]]:
    """Row r's `column` is one of the file's distinct values of it for which `test` (on `d.v`) holds:
    the predicate, and the set `set_<column>_<name>` it reads (see Rule.sets)."""
    key = f"set_{column}_{name}"
    query = f"select d.v from {distinct_values(column)} d where d.v is not null and ({test})"
    member = f"r.{column} in {{{key}}}"
    return member, {key: ValueSet(query, column, test, member=member)}


def _json_obj(pairs: dict[str, str]) -> str:
    return "jsonb_build_object(" + ", ".join(f"'{k}', {e}" for k, e in pairs.items()) + ")"


def _raw_obs(*cols: str) -> str:
    return _json_obj({c: f"r.{c}" for c in cols})


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
    # count reads them in order): faster than hashing a million groups or sorting the texts. Joined keys,
    # and hashes, may only merge (never split) groups, so "no" is
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
