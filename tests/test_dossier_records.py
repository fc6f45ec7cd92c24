"""Record-level dossiers -> II.06a per unit x month x field, and the reconciliation report.

One `dbt build` on hand-made records (module scope), one incremental run on top of it. Every
expected figure is worked out by hand in the comments next to the rows.
"""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
import pytest

from reform_etl import units
from reform_etl.transform import run_dbt
from tests.helpers import dbt_build, dbt_flags
from tests.test_dbt_marts import VN, add_file, at, ii06a

pytestmark = pytest.mark.slow

A, B = "07900", "07894"  # Phường Việt Trì, Phường Nông Trang (Phú Thọ, 2025 communes)
COUNTS = [
    "received_carried_over",
    "received_online",
    "received_direct",
    "received_postal",
    "resolved_early",
    "resolved_on_time",
    "resolved_late",
    "pending_in_time",
    "pending_overdue",
]
SELECT = ["--select", "+fct_dossier_records_monthly", "+rpt_reconciliation"]


def rec(dossier_id, unit, field, channel, received, due, completed=None) -> dict:
    return {
        "dossier_id": dossier_id,
        "unit_code": unit,
        "field_code": field,
        "procedure_code": "1.001234",
        "channel": channel,
        "received_at": received,
        "due_at": due,
        "completed_at": completed,
        "status": "completed" if completed else "processing",
        "satisfied": None,
    }


@pytest.fixture(scope="module")
def built(warehouse_dsn: str, tmp_path_factory) -> dict:
    other = next(u.code for u in units.communes_2025("25") if u.code not in (A, B))
    ids: dict[str, int] = {}
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        ids["first"] = add_file(
            conn,
            "dossiers",
            at("2026-10-02 08:00"),
            [
                # unit A, field HT, September 2026
                rec("D1", A, "HT", "online", "2026-09-02", "2026-09-10", "2026-09-11"),  # the day after: late
                rec("D2", A, "HT", "direct", "2026-09-05", "2026-09-20"),  # open past due: pending overdue
                rec("D3", A, "HT", "postal", "2026-09-08", "2026-09-15", "2026-09-14T17:00:00"),  # early
                # due 08:00, returned 16:30 the same day: on time (dates are compared, not times)
                rec("D4", A, "HT", "online", "2026-09-10T08:00:00", "2026-09-17T08:00:00", "2026-09-17T16:30:00"),
                rec("D5", A, "HT", "online", "2026-09-25", "2026-10-05", "2026-10-03"),  # Sep in time, Oct early
                rec("D6", A, "HT", "direct", "2026-09-28", "2026-09-30"),  # due on the month's last day: in time
                rec("D7", A, "HT", "online", "2026-09-12", "2026-09-19"),  # resubmitted below
                rec("D8", A, "CT", "online", "2026-09-03", "2026-09-06", "2026-09-06"),  # CT on time
                # unit B, September: one early, one on time
                rec("E1", B, "HT", "online", "2026-09-10", "2026-09-15", "2026-09-12"),
                rec("E2", B, "HT", "direct", "2026-09-20", "2026-09-25", "2026-09-25"),
            ],
        )
        # A later file resubmits D7, now completed on its due date; plus October's D9 (late).
        ids["second"] = add_file(
            conn,
            "dossiers",
            at("2026-10-20 08:00"),
            [
                rec("D7", A, "HT", "online", "2026-09-12", "2026-09-19", "2026-09-19"),
                rec("D9", A, "HT", "online", "2026-10-01", "2026-10-08", "2026-10-09"),
            ],
        )
        # Self-reported II.06a, September 2026.
        # A per field: HT differs from the records on resolved_late (0 vs 1) and pending_overdue
        # (2 vs 1); CT is not reported at all (records: 1 online, 1 on time).
        ids["stats_a"] = add_file(
            conn,
            "dossier_stats",
            at("2026-10-04 08:00"),
            [
                ii06a(
                    A,
                    "2026-09",
                    "HT",
                    online=4,
                    direct=2,
                    postal=1,
                    early=1,
                    on_time=2,
                    pending_in_time=2,
                    pending_overdue=2,
                ),
            ],
        )
        # B reports all fields together and agrees with its records; `other` has no records.
        ids["stats_b"] = add_file(
            conn,
            "dossier_stats",
            at("2026-10-04 09:00"),
            [
                ii06a(B, "2026-09", online=1, direct=1, early=1, on_time=1),
                ii06a(other, "2026-09", online=9, on_time=9),
            ],
        )

    target = tmp_path_factory.mktemp("dbt-target")
    flags = dbt_flags(target)
    # the dossier models, their parents and the dimensions their relationship tests point at
    dbt_build(warehouse_dsn, target, *SELECT, "+dim_unit", "+dim_period", "+dim_field",
              "--indirect-selection", "cautious")
    return {"dsn": warehouse_dsn, "ids": ids, "flags": flags, "other": other, "target": target}


def counts(q, unit: str, period: str, field: str, table: str = "marts.fct_dossier_records_monthly") -> dict:
    rows = q(
        f"select {', '.join(COUNTS)} from {table} where unit_code = %s and period = %s and field_code = %s",
        unit,
        period,
        field,
    )
    assert len(rows) == 1, (unit, period, field, rows)
    return {c: v for c, v in zip(COUNTS, rows[0], strict=True) if v}


def test_september_ht_early_on_time_late_pending(q):
    assert counts(q, A, "2026-09", "HT") == {
        "received_online": 4,  # D1 D4 D5 D7
        "received_direct": 2,  # D2 D6
        "received_postal": 1,  # D3
        "resolved_early": 1,  # D3
        "resolved_on_time": 2,  # D4 (same day, later hour) and D7 (resubmitted, counted once)
        "resolved_late": 1,  # D1: completed the day after its due date
        "pending_in_time": 2,  # D5 (due in October), D6 (due on 30 September)
        "pending_overdue": 1,  # D2: still open past its due date at month end
    }


def test_october_carried_over_across_month_boundary(q):
    assert counts(q, A, "2026-10", "HT") == {
        "received_carried_over": 3,  # D2 D5 D6: received in September, not completed before October
        "received_online": 1,  # D9
        "resolved_early": 1,  # D5
        "resolved_late": 1,  # D9
        "pending_overdue": 2,  # D2, D6 (due 30 September)
    }


def test_fields_and_all_fields_row(q):
    assert counts(q, A, "2026-09", "CT") == {"received_online": 1, "resolved_on_time": 1}
    # no CT dossier was open in October: no row
    assert q(
        "select count(*) from marts.fct_dossier_records_monthly where unit_code = %s and period = '2026-10' "
        "and field_code = 'CT'",
        A,
    ) == [(0,)]
    # the intermediate keeps an all-fields row per unit x month = sum of the fields
    assert counts(q, A, "2026-09", "ALL", "intermediate.int_dossiers__monthly") == {
        "received_online": 5,
        "received_direct": 2,
        "received_postal": 1,
        "resolved_early": 1,
        "resolved_on_time": 3,
        "resolved_late": 1,
        "pending_in_time": 2,
        "pending_overdue": 1,
    }
    assert q("select count(*) from marts.fct_dossier_records_monthly where field_code = 'ALL'") == [(0,)]


def test_resubmitted_dossier_counted_once_latest_file_wins(q, built):
    rows = q("select completed_on, file_id from intermediate.int_dossiers__latest where dossier_id = 'D7'")
    assert rows == [(datetime(2026, 9, 19).date(), built["ids"]["second"])]
    assert q("select count(*) from intermediate.int_dossiers__latest") == [(11,)]


def test_rates_and_units(q):
    [(on_time, online, unit_key)] = q(
        "select on_time_rate, online_rate, unit_key from marts.fct_dossier_records_monthly "
        "where unit_code = %s and period = '2026-09' and field_code = 'HT'",
        A,
    )
    assert (float(on_time), float(online)) == (75.0, 57.14)  # (1 + 2) / 4; 4 / 7
    assert unit_key is not None


def test_reconciliation_differences_per_column(q, built):
    rows = q(
        "select unit_code, period, field_code, column_name, reported_value, derived_value, difference, "
        "reported_file_id from marts.rpt_reconciliation order by field_code, column_name"
    )
    stats_a = built["ids"]["stats_a"]
    assert rows == [
        (A, "2026-09", "CT", "received_online", 0, 1, -1, None),
        (A, "2026-09", "CT", "resolved_on_time", 0, 1, -1, None),
        (A, "2026-09", "HT", "pending_overdue", 2, 1, 1, stats_a),
        (A, "2026-09", "HT", "resolved_late", 0, 1, -1, stats_a),
    ]
    # B agrees with its records (all-fields report vs all its records): no row; `other` has no
    # records and A has no report for October: nothing to reconcile.


def test_marts_grants_row_security_and_bilingual_contract(q, built):
    for table in ("fct_dossier_records_monthly", "rpt_reconciliation"):
        [(rls,)] = q("select relrowsecurity from pg_class where oid = %s::regclass", f"marts.{table}")
        assert rls, table
        assert q("select polname from pg_policy where polrelid = %s::regclass", f"marts.{table}") == [("unit_scope",)]
        for role in ("bi_reader", "auditor"):
            assert q("select has_table_privilege(%s, %s, 'select')", role, f"marts.{table}") == [(True,)]
    manifest = json.loads((built["target"] / "manifest.json").read_text())
    for name in ("fct_dossier_records_monthly", "rpt_reconciliation"):
        node = manifest["nodes"][f"model.reform.{name}"]
        assert node["config"]["contract"]["enforced"]
        for column in node["columns"].values():
            assert " / " in column["description"] and column["data_type"], (name, column["name"])


def test_incremental_run_recomputes_only_touched_partitions(q, built):
    def stamps(table: str) -> dict:
        return {(u, p, f): t for u, p, f, t in q(f"select unit_code, period, field_code, dbt_updated_at from {table}")}

    int_before = stamps("intermediate.int_dossiers__monthly")
    mart_before = stamps("marts.fct_dossier_records_monthly")
    latest = "select dossier_id, file_id, loaded_at from intermediate.int_dossiers__latest"
    latest_before = {r[0]: r[1:] for r in q(latest)}
    with psycopg.connect(built["dsn"], autocommit=True) as conn:
        new_id = add_file(
            conn,
            "dossiers",
            at("2026-10-21 08:00"),
            [rec("D10", A, "HT", "postal", "2026-10-15", "2026-10-20")],  # a new day: open past due
            loaded_at=datetime.now(tz=VN),
        )
    result = run_dbt(["run", *SELECT, *built["flags"]], built["dsn"])
    assert result.success

    int_after = stamps("intermediate.int_dossiers__monthly")
    mart_after = stamps("marts.fct_dossier_records_monthly")
    assert set(int_after) == set(int_before)
    changed = {k for k in int_after if int_after[k] != int_before[k]}
    assert changed == {(A, "2026-10", "HT"), (A, "2026-10", "ALL")}
    assert {k for k in mart_after if mart_after.get(k) != mart_before.get(k)} == {(A, "2026-10", "HT")}
    # dossiers of earlier files keep their stored rows
    latest_after = {r[0]: r[1:] for r in q(latest)}
    assert latest_after.pop("D10")[0] == new_id
    assert latest_after == latest_before
    assert counts(q, A, "2026-10", "HT") == {
        "received_carried_over": 3,
        "received_online": 1,
        "received_postal": 1,
        "resolved_early": 1,
        "resolved_late": 1,
        "pending_overdue": 3,
    }
    # same night again: same tables
    assert run_dbt(["run", *SELECT, *built["flags"]], built["dsn"]).success
    assert counts(q, A, "2026-10", "HT")["pending_overdue"] == 3
    assert q("select count(*) from marts.fct_dossier_records_monthly") == [(4,)]


def test_backfill_after_a_file_is_rejected(q, built):
    """The resubmission file is rejected after the fact: a backfill of September-October takes D7
    back to its first (open) version and drops D9; restoring the file and backfilling again
    gives the incremental tables back."""
    window = ["--vars", json.dumps({"backfill_from": "2026-09", "backfill_to": "2026-10"})]

    def set_status(status: str) -> None:
        with psycopg.connect(built["dsn"], autocommit=True) as conn:
            conn.execute(
                "update audit.submission_files set status = %s where file_id = %s", (status, built["ids"]["second"])
            )

    set_status("rejected")
    try:
        assert run_dbt(["run", *SELECT, *window, *built["flags"]], built["dsn"]).success
        assert counts(q, A, "2026-09", "HT") == {
            "received_online": 4,
            "received_direct": 2,
            "received_postal": 1,
            "resolved_early": 1,
            "resolved_on_time": 1,
            "resolved_late": 1,
            "pending_in_time": 2,
            "pending_overdue": 2,  # D2, D7
        }
        assert counts(q, A, "2026-10", "HT") == {
            "received_carried_over": 4,
            "received_postal": 1,
            "resolved_early": 1,
            "pending_overdue": 4,
        }
        assert q("select count(*) from intermediate.int_dossiers__latest where dossier_id = 'D9'") == [(0,)]
    finally:
        set_status("accepted")
    assert run_dbt(["run", *SELECT, *window, *built["flags"]], built["dsn"]).success
    assert counts(q, A, "2026-10", "HT")["pending_overdue"] == 3
    assert counts(q, A, "2026-09", "HT")["resolved_on_time"] == 2
    assert counts(q, B, "2026-09", "HT") == {
        "received_online": 1,
        "received_direct": 1,
        "resolved_early": 1,
        "resolved_on_time": 1,
    }
