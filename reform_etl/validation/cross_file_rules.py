"""Cross-file warnings: a file's rows against other files (suite `<kind>_history`, per accepted file after
all files of the run) and the run's files against the unit roster (suite `submission_run`).

Part of the catalog of `validation/rules.py` (read through it: `rules.history_rules`, `rules.run_rules`);
`validation/cross_file.py` runs them.
"""

from __future__ import annotations

from reform_etl.deadlines import deadline_at_sql
from reform_etl.kinds import KIND_SPECS
from reform_etl.validation.rule_sql import (
    ALL_FIELDS,
    DEC_RE,
    INT_RE,
    PERIOD_RE,
    YEAR_RE,
    Rule,
    Severity,
    as_dec,
    as_int,
    field_key,
)

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
