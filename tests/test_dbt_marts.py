"""The dbt star schema on a real Postgres: one `dbt build` on a hand-made dataset, many checks.

Every expected figure below is computed by hand from the rows this module inserts into raw.*,
audit.submission_files and audit.submission_partitions (the loader's contract).
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import errors, sql

from reform_etl import raw_tables, units
from reform_etl.kinds import KIND_SPECS
from reform_etl.transform import run_dbt
from tests.helpers import dbt_build, dbt_flags

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "dbt"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
REFERENCE_PERIOD = "2026-09"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN)


def add_file(
    conn: psycopg.Connection,
    kind: str,
    received_at: datetime,
    rows: list[dict],
    *,
    status: str = "accepted",
    loaded_at: datetime | None = None,
    quarantined_rows: dict[int, list[str]] | None = None,
) -> int:
    """Register a file the way the loader does: registry row, raw rows with lineage, partitions."""
    spec = KIND_SPECS[kind]
    file_id = conn.execute(
        "insert into audit.submission_files (kind, path, file_name, sha256, size_bytes, received_at, status, "
        "rows_total, rows_loaded, loaded_at) values (%s, %s, %s, %s, 1, %s, %s, %s, %s, %s) returning file_id",
        (
            kind,
            f"landing/{kind}/f.csv",
            "f.csv",
            uuid.uuid4().hex,
            received_at,
            status,
            len(rows),
            len(rows),
            loaded_at or received_at + timedelta(hours=1),
        ),
    ).fetchone()[0]
    if spec.by_file:  # the file's own table, attached to raw.<kind> as its partition
        conn.execute(raw_tables.file_table_ddl(kind, file_id))
        conn.execute(raw_tables.attach_file_table(kind, file_id))
    columns = spec.keys
    insert = sql.SQL("insert into {} (_file_id, _row_number, {}) values ({})")
    partitions: Counter[tuple[str, str]] = Counter()
    for number, row in enumerate(rows, start=2):
        values = [None if row.get(c) is None else str(row[c]) for c in columns]
        for schema in ["raw"] + (["quarantine"] if number in (quarantined_rows or {}) else []):
            extra = ", failed_rules" if schema == "quarantine" else ""
            conn.execute(
                insert.format(
                    sql.Identifier(schema, kind),
                    sql.SQL(", ".join(columns) + extra),
                    sql.SQL(", ".join(["%s"] * (len(columns) + 2 + bool(extra)))),
                ),
                [file_id, number, *values]
                + ([json.dumps([{"rule": r} for r in quarantined_rows[number]])] if extra else []),
            )
        period = str(row[spec.period_column])
        partitions[(row["unit_code"], period[:4] if spec.yearly else period[:7])] += 1
    for (unit, period), count in partitions.items():
        conn.execute(
            "insert into audit.submission_partitions (file_id, kind, unit_code, period, row_count) "
            "values (%s, %s, %s, %s, %s)",
            (file_id, kind, unit, period, count),
        )
    return file_id


def ii06a(
    unit: str,
    period: str,
    field: str | None = None,
    *,
    carried=0,
    online=0,
    direct=0,
    postal=0,
    early=0,
    on_time=0,
    late=0,
    pending_in_time=0,
    pending_overdue=0,
) -> dict:
    return {
        "unit_code": unit,
        "period": period,
        "field_code": field,
        "received_carried_over": carried,
        "received_online": online,
        "received_direct": direct,
        "received_postal": postal,
        "resolved_early": early,
        "resolved_on_time": on_time,
        "resolved_late": late,
        "pending_in_time": pending_in_time,
        "pending_overdue": pending_overdue,
    }


def par_rows(
    unit: str,
    year: int,
    total: float,
    leaves: list[tuple[str, float]],
    skip: str | None = None,
    self_extra: dict[str, float] | None = None,
) -> list[dict]:
    """Appraised scores reaching `total` by filling leaves in order; self score = appraised."""
    rows, remaining = [], Decimal(str(total))
    for code, max_points in leaves:
        if code == skip:
            score = Decimal(0)
        else:
            score = min(Decimal(str(max_points)), remaining)
            remaining -= score
        self_score = Decimal(str((self_extra or {}).get(code, score)))
        rows.append(
            {
                "unit_code": unit,
                "year": str(year),
                "criterion_code": code,
                "self_score": f"{self_score:g}",
                "appraised_score": f"{score:g}",
            }
        )
    assert remaining == 0
    return rows


def reference_rows() -> list[dict]:
    with (FIXTURES / "portal766_progress_phutho_2026.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def reference_unit_code(row: dict) -> str:
    # Departments by electronic id, communes by GSO ward code; the province total (H44, the
    # portal's aggregate of the whole province) is submitted as the province itself ('25').
    if row["portal_level"] == "PROVINCE_TOTAL":
        return "25"
    return row["gso_ward_code"] or row["portal_code"]


# --------------------------------------------------------------------------- dataset


@pytest.fixture(scope="module")
def built(warehouse_dsn: str, tmp_path_factory) -> dict:
    districts = [u.code for u in units.legacy_districts("25")][:10]
    with (Path(__file__).parents[1] / "seeds" / "par_criteria.csv").open(encoding="utf-8") as fh:
        leaves = [(r["criterion_code"], float(r["max_points"])) for r in csv.DictReader(fh)]
    climber = districts[9]
    ids: dict[str, int] = {}
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        # PAR 2023: index = 90, 89, ..., 81 -> the climber (last) is 10th.
        rows = []
        for i, unit in enumerate(districts):
            rows += par_rows(unit, 2023, 90 - i, leaves)
        ids["par_2023"] = add_file(conn, "par_scores", at("2024-01-10 09:00"), rows)
        # PAR 2024: first 90; the climber and districts[1] tie on 85 (2nd, 2nd); then 4th..10th.
        # The climber's leaf 1.1.1 comes from a later file that carries only the appraised score.
        totals_2024 = {districts[0]: 90, districts[1]: 85, climber: 84}
        for i, unit in enumerate(districts[2:9]):
            totals_2024[unit] = 80 - i
        rows = []
        for unit, total in totals_2024.items():
            if unit == climber:
                rows += par_rows(unit, 2024, total, leaves, skip="1.1.1", self_extra={"1.1.1": 0.5})
            else:
                rows += par_rows(unit, 2024, total, leaves)
        ids["par_2024"] = add_file(conn, "par_scores", at("2025-01-20 09:00"), rows)
        ids["par_2024_fix"] = add_file(
            conn,
            "par_scores",
            at("2025-02-01 09:00"),
            [
                {
                    "unit_code": climber,
                    "year": "2024",
                    "criterion_code": "1.1.1",
                    "self_score": None,
                    "appraised_score": "1",
                }
            ],
        )

        # II.06a: 1,295 of 1,296 resolved on time at Phường Việt Trì (07900), August 2025, on time.
        ids["vt"] = add_file(
            conn,
            "dossier_stats",
            at("2025-09-04 16:00"),
            [
                ii06a(
                    "07900",
                    "2025-08",
                    online=1000,
                    direct=300,
                    postal=6,
                    early=200,
                    on_time=1095,
                    late=1,
                    pending_in_time=10,
                )
            ],
        )
        # Nông Trang (07894): late file; a quarantined row (bad count) and a well-formed row that
        # validation quarantined anyway must both stay out of staging.
        ids["nt"] = add_file(
            conn,
            "dossier_stats",
            at("2025-09-06 10:00"),
            [
                ii06a("07894", "2025-08", "HT", online=10, on_time=10),
                {**ii06a("07894", "2025-08", "XD", online=5, on_time=5), "received_online": "abc"},
                ii06a("07894", "2025-08", "DD", online=7, on_time=7),
            ],
            quarantined_rows={3: ["non_numeric_count"], 4: ["received_ne_resolved_plus_pending"]},
        )
        # Supersede, both files before the build: district 227, March 2024.
        first_district = districts[0]
        ids["sup_old"] = add_file(
            conn,
            "dossier_stats",
            at("2024-04-03 08:00"),
            [
                ii06a(first_district, "2024-03", "HT", online=50, on_time=50),
                ii06a(first_district, "2024-03", "CT", online=30, on_time=30),
            ],
        )
        ids["sup_new"] = add_file(
            conn,
            "dossier_stats",
            at("2024-04-10 08:00"),
            [ii06a(first_district, "2024-03", "HT", online=60, early=20, on_time=40)],
        )
        # Supersede after the build (incremental run): district 228, May 2024.
        ids["inc_old"] = add_file(
            conn,
            "dossier_stats",
            at("2024-06-02 08:00"),
            [
                ii06a(districts[1], "2024-05", "HT", online=40, on_time=40),
                ii06a(districts[1], "2024-05", "CT", online=20, on_time=20),
            ],
        )
        # The 36 published portal rows (Decision 766 progress), as one dossier_stats file.
        ref_rows = []
        for r in reference_rows():
            received, on_time = int(r["total_received"]), int(r["total_on_time"])
            overdue = int(r["total_overdue"]) if r["total_overdue"] else received - on_time
            ref_rows.append(
                ii06a(reference_unit_code(r), REFERENCE_PERIOD, online=received, on_time=on_time, late=overdue)
            )
        ids["ref"] = add_file(conn, "dossier_stats", at("2026-10-03 08:00"), ref_rows)

        # IT KPIs, August 2025: satisfaction full at 90 %.
        ids["kpi"] = add_file(
            conn,
            "it_kpis",
            at("2025-09-03 08:00"),
            [
                {
                    "unit_code": "07900",
                    "period": "2025-08",
                    "kpi_code": "HAI_LONG",
                    "numerator": "90",
                    "denominator": "100",
                },
                {
                    "unit_code": "07900",
                    "period": "2025-08",
                    "kpi_code": "HAI_LONG_DVC",
                    "numerator": "45",
                    "denominator": "100",
                },
                {
                    "unit_code": "07900",
                    "period": "2025-08",
                    "kpi_code": "HS_SO_HOA",
                    "numerator": "0",
                    "denominator": "0",
                },
            ],
        )
        # A rejected file: never reaches staging; its unit-period shows 'rejected'.
        ids["rejected"] = add_file(
            conn,
            "it_kpis",
            at("2025-09-02 08:00"),
            [
                {
                    "unit_code": "07894",
                    "period": "2025-08",
                    "kpi_code": "HAI_LONG",
                    "numerator": "99",
                    "denominator": "100",
                }
            ],
            status="rejected",
        )

    target = tmp_path_factory.mktemp("dbt-target")
    flags = dbt_flags(target)
    result = dbt_build(warehouse_dsn, target)
    docs = run_dbt(["docs", "generate", *flags], warehouse_dsn)
    return {
        "dsn": warehouse_dsn,
        "districts": districts,
        "climber": climber,
        "ids": ids,
        "flags": flags,
        "target": target,
        "docs_ok": docs.success,
        "build": result,
    }


# --------------------------------------------------------------------------- one-stop


def test_on_time_rate_1295_of_1296(q):
    [(rate, resolved, received, pending)] = q(
        "select on_time_rate, resolved_total, received_total, pending_total from marts.fct_dossier_throughput "
        "where unit_code = '07900' and period = '2025-08'"
    )
    assert (rate, resolved, received, pending) == (Decimal("99.92"), 1296, 1306, 10)
    assert round(rate, 1) == Decimal("99.9")


def test_online_and_postal_rates(q):
    [(online, postal)] = q(
        "select online_rate, postal_rate from marts.fct_dossier_throughput "
        "where unit_code = '07900' and period = '2025-08'"
    )
    assert online == Decimal("76.57")  # 1000 / 1306
    assert postal == Decimal("0.46")  # 6 / 1306


def test_quarantined_and_rejected_rows_never_reach_staging(q, built):
    fields = q(
        "select field_code from staging.stg_reform__dossier_stats where file_id = %s order by 1", built["ids"]["nt"]
    )
    assert fields == [("HT",)]
    assert q("select count(*) from staging.stg_reform__it_kpis where file_id = %s", built["ids"]["rejected"]) == [(0,)]
    facts = q(
        "select field_code from marts.fct_dossier_throughput "
        "where unit_code = '07894' and period = '2025-08' order by 1"
    )
    assert facts == [("HT",)]


def test_superseded_file_is_replaced_not_added(q, built):
    rows = q(
        "select field_code, received_total, resolved_early, file_id from marts.fct_dossier_throughput "
        "where unit_code = %s and period = '2024-03'",
        built["districts"][0],
    )
    assert rows == [("HT", 60, 20, built["ids"]["sup_new"])]


def test_superseded_file_replaced_by_incremental_run(q, built):
    unit = built["districts"][1]
    before = q(
        "select field_code, received_total from marts.fct_dossier_throughput "
        "where unit_code = %s and period = '2024-05' order by 1",
        unit,
    )
    assert before == [("CT", 20), ("HT", 40)]
    with psycopg.connect(built["dsn"], autocommit=True) as conn:
        new_id = add_file(
            conn,
            "dossier_stats",
            at("2024-06-20 08:00"),
            [ii06a(unit, "2024-05", "HT", online=45, on_time=44, late=1)],
            loaded_at=datetime.now(tz=VN),
        )
    result = run_dbt(["run", "--select", "+fct_dossier_throughput", *built["flags"]], built["dsn"])
    assert result.success
    after = q(
        "select field_code, received_total, resolved_late, file_id from marts.fct_dossier_throughput "
        "where unit_code = %s and period = '2024-05'",
        unit,
    )
    assert after == [("HT", 45, 1, new_id)]
    # untouched partitions keep their rows
    assert q("select count(*) from marts.fct_dossier_throughput where unit_code = %s", built["districts"][0]) == [(1,)]
    assert q("select count(*) from marts.fct_dossier_throughput where unit_code = '07900'") == [(2,)]


def test_766_progress_156_of_161(q):
    [(ratio, score, max_score)] = q(
        "select ratio_pct, score, max_score from marts.rpt_service_index "
        "where unit_code = 'H44.01' and period = %s and metric_code = 'PROGRESS_ON_TIME'",
        REFERENCE_PERIOD,
    )
    assert (ratio, score, max_score) == (Decimal("96.89"), Decimal("19.38"), Decimal("20"))


def test_766_reproduces_all_36_published_rows(q):
    got = {
        code: (ratio, score)
        for code, ratio, score in q(
            "select unit_code, ratio_pct, score from marts.rpt_service_index "
            "where period = %s and metric_code = 'PROGRESS_ON_TIME'",
            REFERENCE_PERIOD,
        )
    }
    rows = reference_rows()
    assert len(rows) == 36
    mismatches = []
    for r in rows:
        ratio, score = got[reference_unit_code(r)]
        if abs(score - Decimal(r["published_score"])) > Decimal("0.01") or abs(
            ratio - Decimal(r["published_ratio_pct"])
        ) > Decimal("0.01"):
            mismatches.append((r["portal_code"], ratio, score, r["published_ratio_pct"], r["published_score"]))
    assert not mismatches


def test_766_progress_from_dossier_stats_when_no_portal_figure(q):
    rows = {
        metric: (source, score)
        for metric, source, score in q(
            "select metric_code, value_source, score from marts.rpt_service_index "
            "where unit_code = '07900' and period = '2025-08'"
        )
    }
    assert rows.pop("PROGRESS_ON_TIME") == ("dossier_stats", Decimal("19.98"))  # 20 x (200 + 1095 + 10) / 1306
    assert set(rows.values()) == {(None, None)}  # nothing else submitted: shown without a score


def test_it_adoption_rate_and_target(q):
    rows = dict(
        (k, (rate, meets))
        for k, rate, meets in q(
            "select kpi_code, rate, meets_target from marts.fct_it_adoption where unit_code = '07900'"
        )
    )
    assert rows["HAI_LONG"] == (Decimal("90.00"), True)
    assert rows["HAI_LONG_DVC"] == (Decimal("45.00"), False)
    assert rows["HS_SO_HOA"] == (None, None)


# --------------------------------------------------------------------------- PAR


def test_rank_change_10th_to_2nd_is_plus_8(q, built):
    [(rank, previous, change, index_pct, self_total)] = q(
        "select rank_in_province, previous_rank, rank_change, index_pct, self_total from marts.rpt_par_index "
        "where unit_code = %s and year = 2024",
        built["climber"],
    )
    assert (previous, rank, change) == (10, 2, 8)
    # leaf 1.1.1: appraised 1 from the later file, self 0.5 kept from the earlier one
    assert index_pct == Decimal("85.00")
    assert self_total == Decimal("84.50")


def test_ties_share_a_rank_1_2_2_4(q):
    ranks = [
        r for (r,) in q("select rank_in_province from marts.rpt_par_index where year = 2024 order by rank_in_province")
    ]
    assert ranks == [1, 2, 2, 4, 5, 6, 7, 8, 9, 10]


def test_each_score_from_latest_file_that_provides_it(q, built):
    [(self_score, appraised, self_file, appraised_file)] = q(
        "select self_score, appraised_score, self_score_file_id, appraised_score_file_id "
        "from marts.fct_criteria_scores where unit_code = %s and year = 2024 and criterion_code = '1.1.1'",
        built["climber"],
    )
    assert (self_score, appraised) == (Decimal("0.5"), Decimal("1"))
    assert (self_file, appraised_file) == (built["ids"]["par_2024"], built["ids"]["par_2024_fix"])


def test_bands_and_content_areas(q, built):
    bands = dict(q("select index_pct::text, band from marts.rpt_par_index where year = 2023"))
    assert bands["90.00"] == "Tốt" and bands["81.00"] == "Tốt"
    assert dict(q("select index_pct::text, band from marts.rpt_par_index where year = 2024"))["74.00"] == "Khá"
    areas = q(
        "select content_area_code, points, max_points, pct from marts.rpt_content_area_scores "
        "where unit_code = %s and year = 2023 order by 1",
        built["districts"][0],
    )
    assert len(areas) == 7
    assert sum(p for _, p, _, _ in areas) == 90
    assert sum(m for _, _, m, _ in areas) == 100
    assert areas[0][1:] == (Decimal("12.00"), Decimal("12"), Decimal("100.00"))  # filled in order


def test_framework_seed_shape(q):
    [(areas, criteria, leaves, total, survey)] = q(
        "select count(distinct content_area_code), count(distinct criterion_group_code), count(*), "
        "sum(max_points), sum(max_points) filter (where is_survey) from marts.dim_criterion"
    )
    assert (areas, criteria, leaves, total, survey) == (7, 40, 80, 100, 30)


# --------------------------------------------------------------------------- submission status


def test_submission_status(q, built):
    status = {
        (u, k, p): s for u, k, p, s in q("select unit_code, kind, period, status from marts.rpt_submission_status")
    }
    assert status[("07900", "dossier_stats", "2025-08")] == "on_time"  # 4 Sep, due 5 Sep
    assert status[("07894", "dossier_stats", "2025-08")] == "late"  # 6 Sep
    assert status[("07894", "it_kpis", "2025-08")] == "rejected"
    assert status[("07909", "dossier_stats", "2025-08")] == "missing"
    assert status[(built["districts"][0], "par_scores", "2023")] == "on_time"  # 10 Jan, due 15 Jan
    assert status[(built["districts"][0], "par_scores", "2024")] == "late"  # 20 Jan
    assert status[("H44.07", "dossier_stats", "2025-08")] == "missing"  # departments report after the reform
    # districts are not expected after the reform, communes not before it
    assert (built["districts"][0], "dossier_stats", "2025-08") not in status
    assert ("07900", "dossier_stats", "2024-03") not in status


# --------------------------------------------------------------------------- dimensions


def test_dim_unit_scd2(q):
    rows = q(
        "select level, valid_from::text, valid_to::text, is_current, successor_unit_code from marts.dim_unit "
        "where unit_code = '26' order by valid_from"
    )
    assert rows == [("province", "1900-01-01", "2025-06-30", False, "25")]  # Vĩnh Phúc merged into Phú Thọ
    assert q("select count(*) from marts.dim_unit where level = 'district' and province_code = '25'") == [(13,)]
    assert q("select count(*) from marts.dim_unit where level = 'commune' and province_code = '25'") == [(148,)]
    assert q("select count(*) from marts.dim_unit where level = 'department' and province_code = '25'") == [(12,)]
    assert q("select count(distinct province_code) from marts.dim_unit where is_current") == [(34,)]
    [(unit_key,)] = q("select unit_key from marts.fct_dossier_throughput where unit_code = 'H44.07'")
    assert q("select level from marts.dim_unit where unit_key = %s", unit_key) == [("department",)]


def test_dim_period_labels(q):
    assert q("select label_vi, label_en, quarter from marts.dim_period where period = '2021-03'") == [
        ("Tháng 3/2021", "March 2021", 1)
    ]


# --------------------------------------------------------------------------- access, docs


def test_bi_reader_reads_marts_only(built):
    with psycopg.connect(built["dsn"], autocommit=True) as conn:
        conn.execute("set role bi_reader")
        assert conn.execute("select count(*) from marts.rpt_par_index").fetchone()[0] == 20
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("select * from raw.dossier_stats")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("insert into marts.dim_field (field_code) values ('X')")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("select * from staging.stg_reform__dossier_stats")


def test_unit_scoped_role_sees_only_its_units_rows(built, monkeypatch):
    """RLS on facts and reports: a district's analyst sees its district; bi_reader still sees all."""
    from reform_etl import access

    monkeypatch.setenv("WAREHOUSE_DSN", built["dsn"])
    unit = built["districts"][0]
    access.grant_unit("analyst_rls_test", unit, dsn=built["dsn"], nologin=True)  # reached by SET ROLE
    with psycopg.connect(built["dsn"], autocommit=True) as conn:
        everyone = conn.execute("select count(*), count(distinct unit_code) from marts.rpt_par_index").fetchone()
        conn.execute("set role analyst_rls_test")
        tables = ("rpt_par_index", "fct_criteria_scores", "fct_dossier_throughput", "rpt_service_index",
                  "rpt_submission_status", "rpt_content_area_scores", "fct_it_adoption")
        for table in tables:
            units = {r[0] for r in conn.execute(f"select distinct unit_code from marts.{table}").fetchall()}
            assert units <= {unit}, table
        mine = conn.execute("select count(*) from marts.rpt_par_index").fetchone()[0]
        assert 0 < mine < everyone[0]
        assert conn.execute("select count(*) from marts.dim_unit").fetchone()[0] > 1  # dimensions stay whole
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("select * from raw.par_scores")
        conn.execute("reset role")
        conn.execute("set role bi_reader")
        assert conn.execute("select count(*), count(distinct unit_code) from marts.rpt_par_index").fetchone() == (
            everyone)
        conn.execute("reset role")
        conn.execute("delete from audit.unit_role_bindings where role_name = 'analyst_rls_test'")
        conn.execute("revoke bi_reader from analyst_rls_test")
        conn.execute("drop role analyst_rls_test")


def test_docs_and_manifest(built):
    assert built["docs_ok"]
    catalog = json.loads((built["target"] / "catalog.json").read_text())
    assert "model.reform.rpt_par_index" in catalog["nodes"]
    manifest = json.loads((built["target"] / "manifest.json").read_text())
    assert "exposure.reform.par_reform_dashboards" in manifest["exposures"]
    node = manifest["nodes"]["model.reform.fct_dossier_throughput"]
    assert node["contract"]["enforced"] and node["schema"] == "marts"
    assert "Tỷ lệ đúng hạn" in node["columns"]["on_time_rate"]["description"]


def test_backfill_window_rebuilds_its_periods(q, built):
    """A later file of 2024-03 is rejected after the fact: a backfill of that month restores the
    earlier submission (whatever the load times) and leaves other months alone."""
    unit = built["districts"][0]
    with psycopg.connect(built["dsn"], autocommit=True) as conn:
        conn.execute(
            "update audit.submission_files set status = 'rejected' where file_id = %s", (built["ids"]["sup_new"],)
        )
    try:
        dbt_vars = json.dumps({"backfill_from": "2024-03", "backfill_to": "2024-03"})
        result = run_dbt(
            ["run", "--select", "+fct_dossier_throughput", "--vars", dbt_vars, *built["flags"]], built["dsn"]
        )
        assert result.success
        rows = q(
            "select field_code, received_total, file_id from marts.fct_dossier_throughput "
            "where unit_code = %s and period = '2024-03' order by 1",
            unit,
        )
        assert rows == [("CT", 30, built["ids"]["sup_old"]), ("HT", 50, built["ids"]["sup_old"])]
        assert q("select count(*) from marts.fct_dossier_throughput where period = %s", REFERENCE_PERIOD) == [(36,)]
    finally:
        with psycopg.connect(built["dsn"], autocommit=True) as conn:
            conn.execute(
                "update audit.submission_files set status = 'accepted' where file_id = %s", (built["ids"]["sup_new"],)
            )


# --------------------------------------------------------------------------- who to chase, dbt docs offline


def test_late_lists_who_to_chase_in_the_terminal_and_xlsx(built, tmp_path, monkeypatch, capsys):
    from openpyxl import load_workbook

    from reform_etl import cli, late

    rows = late.chase_list(built["dsn"], "2025-08")
    by_key = {(r["unit_code"], r["kind"]): r for r in rows}
    assert by_key[("07894", "dossier_stats")]["status"] == "late"
    assert by_key[("07894", "it_kpis")]["status"] == "rejected"
    assert by_key[("07909", "dossier_stats")]["status"] == "missing"
    assert by_key[("H44.07", "dossier_stats")]["what_is_missing"] == "Chưa nhận được tệp nào / nothing received"
    assert ("07900", "dossier_stats") not in by_key  # on time: nobody to chase
    assert {r["period"] for r in rows} == {"2025-08"} and all(r["unit_name"] and r["deadline_date"] for r in rows)
    with psycopg.connect(built["dsn"]) as conn:
        [(expected,)] = conn.execute("select count(*) from marts.rpt_submission_status where period = '2025-08' "
                                     "and status in ('late', 'missing', 'incomplete', 'rejected')").fetchall()
    assert len(rows) == expected

    monkeypatch.setenv("WAREHOUSE_DSN", built["dsn"])
    out = tmp_path / "late.xlsx"
    assert cli.main(["late", "--period", "2025-08", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "07909" in printed and str(out) in printed.replace("\n", "")
    sheet = load_workbook(out).active
    table = [[c.value for c in row] for row in sheet.iter_rows()]
    assert table[0][:4] == ["Mã đơn vị / unit", "Tên đơn vị / unit name", "Loại / kind", "Kỳ / period"]
    assert len(table) == len(rows) + 1 and sheet.auto_filter.ref
    missing = next(r for r in table[1:] if r[0] == "07909" and r[2] == "dossier_stats")
    assert missing[1] == by_key[("07909", "dossier_stats")]["unit_name"] and missing[5].startswith("Chưa nộp")


def test_dbt_docs_open_from_the_file_system(built):
    from reform_etl.cli import DOCS_ARGS, static_docs

    assert run_dbt([*DOCS_ARGS, *built["flags"]], built["dsn"]).success
    page = static_docs(built["target"]).read_text(encoding="utf-8")
    # one self-contained file: the manifest and catalog inside, nothing fetched beside it
    assert "unit_code" in page
    assert re.search(r'"model\.[a-z_]+\.rpt_submission_status"', page)  # the manifest is inside
