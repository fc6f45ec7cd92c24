"""The committed GX project under expectations/ is the rule catalog, and the catalog is SPEC §4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reform_etl.report import excel_safe, safe_dir_name
from reform_etl.validation import project
from reform_etl.validation import rules as R

GX = Path(__file__).resolve().parents[1] / "expectations" / "gx"

# SPEC §4, rule by rule, with the severity it must have (kind "*" = every kind it applies to).
SPEC_RULES = {
    # reject file
    ("submission_file", "file_unreadable"): "reject_file",
    ("submission_file", "file_empty"): "reject_file",
    ("submission_file", "wrong_kind"): "reject_file",
    ("submission_file", "missing_required_columns"): "reject_file",
    ("submission_file", "header_not_found"): "reject_file",
    # quarantine row
    ("par_scores", "unit_code_unknown"): "quarantine_row",
    ("dossier_stats", "unit_not_valid_in_period"): "quarantine_row",
    ("par_scores", "criterion_code_unknown"): "quarantine_row",
    ("it_kpis", "kpi_code_unknown"): "quarantine_row",
    ("dossier_stats", "field_code_unknown"): "quarantine_row",
    ("dossier_stats", "count_not_numeric"): "quarantine_row",
    ("dossier_stats", "count_negative"): "quarantine_row",
    ("par_scores", "score_out_of_range"): "quarantine_row",
    ("it_kpis", "numerator_gt_denominator"): "quarantine_row",
    ("it_kpis", "period_in_future"): "quarantine_row",
    ("dossier_stats", "received_not_balanced"): "quarantine_row",
    ("dossiers", "duplicate_key_in_file"): "quarantine_row",
    # warn
    ("dossier_stats_history", "carried_over_mismatch"): "warn",
    ("par_scores_history", "self_appraised_gap"): "warn",
    ("dossier_stats_history", "on_time_rate_swing"): "warn",
    ("submission_run", "unit_missing_for_period"): "warn",
    ("dossier_stats_history", "correction_fewer_rows"): "warn",
    ("it_kpis_history", "correction_fewer_rows"): "warn",
}


def _committed_suites() -> dict[str, list[dict]]:
    suites = {}
    for path in (GX / "expectations").glob("*.json"):
        suite = json.loads(path.read_text(encoding="utf-8"))
        suites[suite["name"]] = suite["expectations"]
    return suites


def _signature(expectation: dict) -> tuple:
    kwargs = expectation["kwargs"]
    return (expectation["type"], expectation["meta"]["rule"], expectation["meta"]["severity"],
            expectation["meta"]["kind"], kwargs.get("unexpected_rows_query") or kwargs.get("column"))


def test_committed_suites_match_the_catalog():
    """Edit reform_etl/validation/rules.py, then `python -m reform_etl.validation.project` and commit."""
    committed = {name: sorted(_signature(e) for e in exps) for name, exps in _committed_suites().items()}
    expected = {name: sorted(_signature(e.configuration.to_json_dict()) for e in exps)
                for name, exps in project.suite_definitions().items()}
    assert committed == expected


def test_one_suite_per_kind_and_every_expectation_has_a_severity():
    suites = _committed_suites()
    assert {"par_scores", "dossier_stats", "it_kpis", "dossiers", "submission_file"} <= set(suites)
    for name, expectations in suites.items():
        assert expectations, name
        for e in expectations:
            assert e["meta"]["severity"] in {"reject_file", "quarantine_row", "warn"}
            assert e["meta"]["message_vi"] and e["meta"]["message_en"]
    for name in suites:  # every suite has its validation definition
        assert (GX / "validation_definitions" / f"{name}.json").is_file()


@pytest.mark.parametrize(("suite", "rule"), sorted(SPEC_RULES))
def test_spec_rule_is_in_its_suite_with_its_severity(suite: str, rule: str):
    found = [e for e in _committed_suites()[suite] if e["meta"]["rule"] == rule]
    assert found, f"{rule} missing from suite {suite}"
    assert {e["meta"]["severity"] for e in found} == {SPEC_RULES[(suite, rule)]}


def test_committed_project_holds_no_connection_secrets():
    config = (GX / "great_expectations.yml").read_text(encoding="utf-8")
    assert "${" + project.URL_VARIABLE + "}" in config
    assert "127.0.0.1" not in config and "postgresql://" not in config


def test_rule_words_exist_in_both_languages():
    for _suite, _kind, rule in R.all_rules():
        assert rule.message_vi.strip() and rule.message_en.strip(), rule.name
        assert rule.message_vi != rule.message_en, rule.name


@pytest.mark.parametrize(("value", "safe"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-5", "'-5"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("227", "227"), ("Xã Hùng Lô", "Xã Hùng Lô"), (12, 12), (None, None),
])
def test_excel_safe_neutralises_formula_prefixes(value, safe):
    assert excel_safe(value) == safe


def test_run_folder_names_cannot_escape():
    assert safe_dir_name("../../etc") == "etc"
    assert safe_dir_name("scheduled__2026-11-22T18:00:00+00:00") == "scheduled__2026-11-22T18_00_00_00_00"
    assert "/" not in safe_dir_name("a/b")
