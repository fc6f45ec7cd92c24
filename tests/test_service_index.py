"""Decision 766 as the national portal computes it, reproduced from its real published figures.

The two reference files of Phú Thọ 2026 (copies of ../shared/reference/ in tests/fixtures/portal766/: progress
of 36 units; transparency, satisfaction and digitisation of the province and 8 to 15 units, one row per metric
plus the group total) are turned into
`service_index` submissions as the portal names its units (communes by electronic id, H44.100), loaded,
validated and built by dbt: every published metric score and group total must come out of the marts to 0.01.
"""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from reform_etl import ingest, reference
from reform_etl import validation as V
from reform_etl.transform import run_dbt
from tests.helpers import dbt_build, dbt_flags

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "portal766"
PERIOD = "2026"
GROUPS = {"transparency": "TRANSPARENCY", "satisfaction": "SATISFACTION", "digitisation": "DIGITISATION"}
CENT = Decimal("0.01")
HEADER = "unit_code,period,metric_code,numerator,denominator,published_score"


def read(name: str) -> list[dict[str, str]]:
    with (FIXTURES / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def submitted_code(row: dict[str, str]) -> str:
    """The unit as the portal names it: H44 the province, H44.07 a department, H44.100 a commune."""
    return row["portal_code"]


def warehouse_code(row: dict[str, str]) -> str:
    """The unit as the marts hold it: communes by GSO code, departments by electronic id."""
    return "25" if row["portal_level"] == "PROVINCE_TOTAL" else row["gso_ward_code"] or row["portal_code"]


def reference_lines() -> list[str]:
    lines = []
    for r in read("portal766_progress_phutho_2026.csv"):
        unit = submitted_code(r)
        lines.append(f"{unit},{PERIOD},PROGRESS_ON_TIME,{r['total_on_time']},{r['total_received']},"
                     f"{r['published_score']}")
        lines.append(f"{unit},{PERIOD},PROGRESS,,,{r['published_score']}")
    for r in read("portal766_metrics_phutho_2026.csv"):
        metric = GROUPS[r["group"]] if r["metric_code"] == "GROUP_TOTAL" else r["metric_code"]
        lines.append(f"{submitted_code(r)},{PERIOD},{metric},{r['numerator']},{r['denominator']},"
                     f"{r['published_score']}")
    return lines


def load_and_validate(dsn: str, landing: Path, run_id: str) -> list[dict]:
    paths = ingest.discover(landing)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into audit.pipeline_runs (run_id) values (%s) on conflict do nothing", (run_id,))
    loaded = ingest.load_paths(paths, run_id=run_id, landing=landing, dsn=dsn)
    return [V.validate_file(dsn, f.file_id, run_id) for f in loaded if f.file_id]


@pytest.fixture(scope="module")
def built(warehouse_dsn: str, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("s766")
    landing = tmp / "landing"
    (landing / "service_index").mkdir(parents=True)
    (landing / "service_index" / "portal766_phutho_2026.csv").write_text(
        "\n".join([HEADER, *reference_lines()]) + "\n", encoding="utf-8")
    # Bad rows: each must be quarantined with its reason, never crash the run nor vanish.
    (landing / "service_index" / "portal766_bad_rows.csv").write_text("\n".join([
        HEADER,
        "H44.07,2026-08,NOT_A_METRIC,1,2,",  # row 2: unknown metric
        "H44.07,2026-08,DOSSIER_SYNC,5,4,",  # row 3: numerator > denominator
        "H44.07,2026-08,PUBLISH_ON_TIME,-1,4,",  # row 4: negative count
        "H44.999,2026-08,DOSSIER_SYNC,1,4,",  # row 5: an identifier that matches no unit
        "07900,2024-05,DOSSIER_SYNC,1,4,",  # row 6: a 2025 commune before it existed
        "H44.08,2026-08,DOSSIER_SYNC,1,4,",  # rows 7, 8: the same key twice
        "H44.08,2026-08,DOSSIER_SYNC,2,4,",
        "H44.08,2026-08,PUBLIC_CONTENT_FULL,1,2,abc",  # row 9: published score not a number
        "H44.08,2026-08,ORIGINAL_RESULT_AVAILABLE,3,4,",  # row 10: good
        "H44.08,2026-08,SO_HOA_GIAY_TO_GIAI_QUYET,1,4,3",  # row 11: good, published 3 where ours is 1.00
        "H44.08,2026-08,PROGRESS_ON_TIME,90,100,",  # row 12: good, the portal's progress counts
    ]) + "\n", encoding="utf-8")
    # The province's own II.06a figures for August 2026: H44.08 also has the portal's, H44.07 has only these.
    (landing / "dossier_stats").mkdir()
    (landing / "dossier_stats" / "ii06a_2026-08.csv").write_text("\n".join([
        "unit_code,period,received_carried_over,received_online,received_direct,received_postal,resolved_early,"
        "resolved_on_time,resolved_late,pending_in_time,pending_overdue",
        "H44.08,2026-08,0,100,0,0,10,70,15,5,0",  # (10 + 70 + 5) / 100: 17.00
        "H44.07,2026-08,0,40,0,0,0,30,8,2,0",  # (30 + 2) / 40: 16.00
    ]) + "\n", encoding="utf-8")
    # The portal's own responses, dropped as they are (one per group), for September 2026.
    for export in sorted(FIXTURES.glob("*_2026.json")):
        shutil.copy(export, landing / "service_index" / export.name.replace("_2026", "_2026-09"))
    # and one whose name gives no period (other bytes than the one above: the same bytes load once)
    (landing / "service_index" / "online_service.json").write_text(json.dumps(json.loads(
        (FIXTURES / "online_service_2026.json").read_text(encoding="utf-8")), indent=1), encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setenv("REFORM_ARCHIVE", str(tmp / "archive"))
    mp.setenv("WAREHOUSE_DSN", warehouse_dsn)
    try:
        reference.ensure_lookups(warehouse_dsn)
        outcomes = load_and_validate(warehouse_dsn, landing, "s766")
        target = tmp / "dbt-target"
        flags = dbt_flags(target)
        dbt_build(warehouse_dsn, target, "--select", "+rpt_service_index+", "+dim_unit", "+dim_period",
                  "--indirect-selection", "cautious")
    finally:
        mp.undo()
    return {"dsn": warehouse_dsn, "outcomes": outcomes, "flags": flags, "tmp": tmp}


def mart_scores(q) -> dict[tuple[str, str], tuple]:
    return {(u, m): (score, ratio, group, pct) for u, m, score, ratio, group, pct in q(
        "select unit_code, metric_code, score, ratio_pct, group_score, group_pct from marts.rpt_service_index "
        "where period = %s", PERIOD)}


def test_every_published_metric_score_is_reproduced(q):
    got = mart_scores(q)
    rows = [r for r in read("portal766_metrics_phutho_2026.csv")
            if r["metric_code"] != "GROUP_TOTAL" and r["published_score"]]
    assert len(rows) == 122
    progress = read("portal766_progress_phutho_2026.csv")
    assert len(progress) == 36
    mismatches = [(r["portal_code"], r["metric_code"], got[(warehouse_code(r), r["metric_code"])][0],
                   r["published_score"]) for r in rows
                  if abs(got[(warehouse_code(r), r["metric_code"])][0] - Decimal(r["published_score"])) > CENT]
    mismatches += [(r["portal_code"], "PROGRESS_ON_TIME", got[(warehouse_code(r), "PROGRESS_ON_TIME")][:2],
                    (r["published_score"], r["published_ratio_pct"])) for r in progress
                   if abs(got[(warehouse_code(r), "PROGRESS_ON_TIME")][0] - Decimal(r["published_score"])) > CENT
                   or abs(got[(warehouse_code(r), "PROGRESS_ON_TIME")][1] - Decimal(r["published_ratio_pct"])) > CENT]
    assert mismatches == []


def test_every_published_group_total_is_reproduced(q):
    got = mart_scores(q)
    totals = [r for r in read("portal766_metrics_phutho_2026.csv") if r["metric_code"] == "GROUP_TOTAL"]
    first_metric = {"transparency": "DOSSIER_SYNC", "satisfaction": "DOSSIER_RECEIVING_SATISFACTION",
                    "digitisation": "ORIGINAL_RESULT_AVAILABLE"}
    mismatches = []
    for r in totals:
        _, _, group, pct = got[(warehouse_code(r), first_metric[r["group"]])]
        if abs(group - Decimal(r["published_score"])) > CENT or abs(pct - Decimal(r["published_ratio_pct"])) > CENT:
            mismatches.append((r["group"], r["portal_code"], group, pct, r["published_score"]))
    assert mismatches == [] and len(totals) == 38


def test_province_wide_transparency_counts_for_every_unit(q):
    # H44.01 publishes only DOSSIER_SYNC (6); the province's three published metrics (0 + 0 + 1.96) count for it.
    rows = dict((m, (src, score)) for m, src, score in q(
        "select metric_code, value_source, score from marts.rpt_service_index "
        "where unit_code = 'H44.01' and period = %s and group_code = 'TRANSPARENCY'", PERIOD))
    assert rows == {"PUBLISH_ON_TIME": ("province", Decimal("0.00")),
                    "PUBLIC_UPDATE_ON_TIME": ("province", Decimal("0.00")),
                    "PUBLIC_CONTENT_FULL": ("province", Decimal("1.96")),
                    "DOSSIER_SYNC": ("portal", Decimal("6.00"))}


def test_no_denominator_rules_and_unscored_metrics(q):
    rows = {m: (score, scored) for m, score, scored in q(
        "select metric_code, score, is_scored from marts.rpt_service_index where unit_code = 'H44.08' "
        "and period = %s and group_code in ('SATISFACTION', 'DIGITISATION')", PERIOD)}
    assert rows["ELECTRONIC_CERTIFIED_COPY"] == (Decimal("2.00"), True)  # published without counts: full
    assert rows["PETITION_CLASSIFICATION_TTHC"] == (None, False)  # max 0: shown, not scored
    [(none_received,)] = q("select score from marts.rpt_service_index where unit_code = 'H44.23' "
                           "and period = %s and metric_code = 'PROGRESS_ON_TIME'", PERIOD)
    assert none_received == 0
    # no petitions at all: full 6 for both petition metrics (H44.01: 0 of 0)
    assert q("select metric_code, score from marts.rpt_service_index where unit_code = 'H44.01' and period = %s "
             "and metric_code like 'PETITION_%%_ON_TIME' or (unit_code = 'H44.01' and period = %s "
             "and metric_code = 'PETITION_HANDLING_SATISFACTION') order by 1", PERIOD, PERIOD) == [
        ("PETITION_HANDLING_SATISFACTION", Decimal("6.00")), ("PETITION_PROCESSING_ON_TIME", Decimal("6.00"))]


def test_portal_identifiers_are_mapped_to_gso_codes(q):
    # submitted as H44.100 (the portal's id of UBND Phường Việt Trì), held as the commune 07900
    assert q("select distinct submitted_unit_code from intermediate.int_service_index__current "
             "where unit_code = '07900'") == [("H44.100",)]
    assert q("select count(*) from marts.rpt_service_index where unit_code like 'H44.1__'") == [(0,)]


def test_reconciliation_is_empty_for_the_reproduced_figures(q):
    assert q("select unit_code, level, code, our_score, published_score from "
             "marts.rpt_service_index_reconciliation where period = %s", PERIOD) == []


def test_a_published_score_we_do_not_reproduce_is_listed_and_reported(q, built, tmp_path):
    assert q("select unit_code, level, code, our_score, published_score, difference "
             "from marts.rpt_service_index_reconciliation where period = '2026-08'") == [
        ("H44.08", "metric", "SO_HOA_GIAY_TO_GIAI_QUYET", Decimal("1.00"), Decimal("3"), Decimal("-2.00"))]
    from reform_etl.report import build_report

    page = build_report(built["dsn"], "s766", tmp_path).read_text(encoding="utf-8")
    assert "Decision 766: ours against the portal" in page and "SO_HOA_GIAY_TO_GIAI_QUYET" in page


def test_progress_from_the_portal_when_given_else_from_dossier_stats(q):
    rows = q("select unit_code, value_source, score, dossier_stats_score, dossier_stats_score_difference "
             "from marts.rpt_service_index where period = '2026-08' and metric_code = 'PROGRESS_ON_TIME' "
             "order by unit_code")
    assert rows == [("H44.07", "dossier_stats", Decimal("16.00"), Decimal("16.00"), None),
                    ("H44.08", "portal", Decimal("18.00"), Decimal("17.00"), Decimal("1.00"))]


def test_bad_rows_are_quarantined_with_their_reason(q, built):
    by_row = {n: sorted(r["rule"] for r in rules) for n, rules in q(
        "select q._row_number, q.failed_rules from quarantine.service_index q, audit.submission_files f "
        "where f.file_id = q._file_id and f.file_name = 'portal766_bad_rows.csv'")}
    assert by_row == {2: ["metric_unknown"], 3: ["numerator_gt_denominator"], 4: ["count_negative"],
                      5: ["unit_code_unknown"], 6: ["unit_not_valid_in_period"],
                      7: ["duplicate_key_in_file"], 8: ["duplicate_key_in_file"], 9: ["published_score_invalid"]}
    [(observed,)] = q("select f.value->'observed' from quarantine.service_index q, audit.submission_files s, "
                      "jsonb_array_elements(q.failed_rules) f where s.file_id = q._file_id "
                      "and s.file_name = 'portal766_bad_rows.csv' and q._row_number = 5")
    assert observed == {"unit_code": "H44.999"}  # the identifier is named
    assert q("select score from marts.rpt_service_index where unit_code = 'H44.08' and period = '2026-08' "
             "and metric_code = 'ORIGINAL_RESULT_AVAILABLE'") == [(Decimal("4.50"),)]


EXPORT_ROWS = {"transparency_2026-09.json": 15, "satisfaction_2026-09.json": 18, "digitisation_2026-09.json": 24,
               "progress_2026-09.json": 10, "online_payment_2026-09.json": 16, "online_service_2026-09.json": 3}


def test_the_portals_json_responses_load_with_their_rows(q):
    files = dict(q("select file_name, rows_loaded from audit.submission_files where kind = 'service_index' "
                   "and file_name like '%%.json' and status = 'accepted'"))
    assert {k: v for k, v in files.items() if k in EXPORT_ROWS} == EXPORT_ROWS
    assert q("select count(*) from quarantine.service_index q, audit.submission_files f where f.file_id = q._file_id "
             "and f.file_name like '%%_2026-09.json'") == [(0,)]


def test_the_portals_json_scores_come_out_of_the_marts(q):
    got = {(u, m): (score, group, published) for u, m, score, group, published in q(
        "select unit_code, metric_code, score, group_score, group_published_score from marts.rpt_service_index "
        "where period = '2026-09'")}
    assert got[("07900", "ONLINE_PAYMENT_DOSSIER")][1:] == (Decimal("6.74"), Decimal("6.74"))  # 4.90 + 1.18 + 0.66
    assert got[("25", "ONLINE_PAYMENT_DOSSIER")][1:] == (Decimal("6.67"), Decimal("6.67"))
    assert got[("08038", "PROGRESS_ON_TIME")][0] == Decimal("18.51")  # H44.125, UBND xã Chân Mộng
    # codes compare as text: H44.13 (Sở Ngoại vụ) and H44.130 (UBND xã Yên Kỳ) are different units
    assert got[("H44.13", "PROGRESS_ON_TIME")][0] == Decimal("12.00")
    assert got[("08113", "PROGRESS_ON_TIME")][0] == Decimal("19.32")
    # online services: the published group score, flagged published-only
    assert q("select score, is_published_only, value_source from marts.rpt_service_index where unit_code = '08038' "
             "and period = '2026-09' and metric_code = 'ONLINE_SERVICE'") == [(Decimal("6.31"), True, "published")]
    # a unit named only by name (no departmentCode): "UBND xã Lâm Thao - Tỉnh Phú Thọ" is the commune 08494
    assert got[("08494", "DOSSIER_SYNC")][1:] == (Decimal("7.96"), Decimal("7.96"))
    assert got[("H44.08", "DOSSIER_RECEIVING_SATISFACTION")][1:] == (Decimal("4.49"), Decimal("4.49"))
    assert got[("07900", "ORIGINAL_RESULT_AVAILABLE")][1:] == (Decimal("9.31"), Decimal("9.31"))
    assert q("select count(*) from marts.rpt_service_index_reconciliation where period = '2026-09'") == [(0,)]


def test_a_json_response_without_a_period_in_its_name_is_quarantined_not_lost(q):
    rows = q("select q.unit_code, q.failed_rules->0->>'rule' from quarantine.service_index q, "
             "audit.submission_files f where f.file_id = q._file_id and f.file_name = 'online_service.json' "
             "order by q._row_number")
    assert rows == [("H44", "period_invalid"), ("H44.01", "period_invalid"), ("H44.125", "period_invalid")]


def test_a_seed_value_change_moves_the_score(q, built, tmp_path):
    """Weights are data: CITIZEN_DATA_CONNECTED_FORMALITY full at 50 % instead of 100 % doubles 07900's score."""
    before = q("select score from marts.rpt_service_index where unit_code = '07900' and period = %s "
               "and metric_code = 'CITIZEN_DATA_CONNECTED_FORMALITY'", PERIOD)
    assert before == [(Decimal("0.33"),)]  # 2 x 63 / 385
    project = tmp_path / "dbt_project"
    shutil.copytree(REPO / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    seed = project / "seeds" / "service_index_metrics.csv"  # dbt_project/seeds links to ../seeds: copied as files
    text = seed.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("CITIZEN_DATA_CONNECTED_FORMALITY,"))
    assert ",100,0," in line
    seed.write_text(text.replace(line, line.replace(",100,0,", ",50,0,", 1)), encoding="utf-8")
    flags = ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("DBT_PROJECT_DIR", str(project))
        assert run_dbt(["seed", "--select", "service_index_metrics", *flags], built["dsn"]).success
        assert run_dbt(["run", "--select", "rpt_service_index", *flags], built["dsn"]).success
        after = q("select score, full_ratio_pct from marts.rpt_service_index where unit_code = '07900' "
                  "and period = %s and metric_code = 'CITIZEN_DATA_CONNECTED_FORMALITY'", PERIOD)
        assert after == [(Decimal("0.65"), Decimal("50"))]  # 2 x (16.36 % / 50 %)
    finally:
        mp.undo()
        run_dbt(["seed", "--select", "service_index_metrics", *built["flags"]], built["dsn"])
        run_dbt(["run", "--select", "rpt_service_index", *built["flags"]], built["dsn"])
