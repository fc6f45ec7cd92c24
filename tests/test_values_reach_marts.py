"""Every value validation accepts reaches the marts with the meaning it was accepted with (issue 16 items
1, 2, 12, 13, 14).

Validation (reform_etl/validation/rules.py) and staging (dbt) read a cell through the same SQL functions
(003_normalise.sql): raw.channel_of for a channel, raw.count_cell for a count. The first tests hold the
rules against those functions value by value; the module's one run loads real files through the loader,
validates them and builds the marts with dbt, then follows each row to the marts.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import psycopg
import pytest

from reform_etl import ingest
from reform_etl import validation as V
from reform_etl.validation import rules as R
from tests.helpers import dbt_build

RUN = "values_reach_marts"
A, B = "07900", "07894"  # Phường Việt Trì, Phường Nông Trang (Phú Thọ, 2025 communes)


def _rule(kind: str, name: str) -> R.Rule:
    [rule] = [r for r in R.row_rules(kind) if r.name == name]
    return rule


def _fails(db: psycopg.Connection, rule: R.Rule, row: dict[str, str | None]) -> bool:
    """Whether `row` (column -> raw cell) fails `rule`, its sets spelled out over the one row."""
    one_row = "(select " + ", ".join(f"%({c})s::text as {c}" for c in row) + ")"
    predicate = R.spelled_out(rule).replace("{rows}", one_row)
    (failed,) = db.execute(f"select coalesce(({predicate}), false) from {one_row} r", row).fetchone()
    return failed


def _strip_accents(text: str) -> str:
    plain = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", plain.replace("đ", "d").replace("Đ", "D"))


# SPEC §3's Vietnamese names, as offices write them (raw.channel_names holds them folded)
VIETNAMESE_CHANNELS = [("Trực tuyến", "online"), ("Trực tiếp", "direct"), ("Bưu chính công ích", "postal"),
                       ("Bưu chính", "postal"), ("BCCI", "postal")]


def channel_spellings(db: psycopg.Connection) -> list[tuple[str, str]]:
    """(spelling, channel): every name of raw.channel_names (the one definition) and SPEC §3's Vietnamese
    names as offices write them: as listed, upper, lower, title case, without accents, decomposed (NFD),
    with doubled spaces."""
    names = db.execute("select name, channel from raw.channel_names()").fetchall()
    out = []
    for name, channel in [*names, *VIETNAMESE_CHANNELS]:
        for form in (name, name.upper(), name.lower(), name.title(), _strip_accents(name),
                     _strip_accents(name).upper(), unicodedata.normalize("NFD", name), name.replace(" ", "  ")):
            out.append((form, channel))
    return list(dict.fromkeys(out))


NOT_CHANNELS = ["fax", "email", "tructuyen", "Trực", "bưu điện", "online direct", "postal2", "BCC I"]


def test_every_channel_name_the_rule_accepts_is_read_by_staging_as_its_channel(db):
    rule = _rule("dossiers", "channel_unknown")
    spellings = channel_spellings(db)
    assert len(spellings) > 30
    for spelling, channel in spellings:
        assert not _fails(db, rule, {"channel": spelling}), spelling
        assert db.execute("select raw.channel_of(%s)", (spelling,)).fetchone()[0] == channel, spelling
    for other in [*NOT_CHANNELS, None]:
        assert _fails(db, rule, {"channel": other}), other
        assert db.execute("select raw.channel_of(%s)", (other,)).fetchone()[0] is None, other


COUNT_CELLS = ["0", "7", "1.296", "1,296", "1 296", "0007", "999999999999999", "1000000000000000",
               "99999999999999999999", "9.999.999.999.999.999", "-5", "-0", "abc", "2,5", "1e309", "+12"]


@pytest.mark.parametrize("kind", [k for k, spec in R.KIND_SPECS.items() if R.count_columns(spec)])
def test_a_count_the_rules_accept_is_one_staging_reads_and_one_they_refuse_is_named(db, kind):
    """Each cell as the loader stores it (raw.norm_count) in every count column of the kind: the count rules
    pass it exactly when staging's reading (raw.count_cell) is a count (a whole number, not negative)."""
    rules = [_rule(kind, name) for name in ("count_not_numeric", "count_negative", "count_too_large")]
    columns = R.count_columns(R.KIND_SPECS[kind])
    for cell in COUNT_CELLS:
        (raw, read) = db.execute("select raw.norm_count(%s), raw.count_cell(raw.norm_count(%s))",
                                 (cell, cell)).fetchone()
        for column in columns:
            row = {c: "1" for c in columns} | {column: raw}
            failed = {rule.name for rule in rules if _fails(db, rule, row)}
            assert (not failed) == (read is not None and read >= 0), (cell, column, raw, read, failed)
            if len(raw.lstrip("0")) > R.COUNT_DIGITS and raw.isdigit():
                assert failed == {"count_too_large"}, (cell, column)


@pytest.mark.parametrize(("cell", "period", "stored"), [
    ("Huyện Thanh Ba", "2024-03", "Huyện Thanh Ba"),  # a name is no code: kept as it arrived
    ("  UBND  huyện  Thanh Ba ", "2024-03", "UBND  huyện  Thanh Ba"),  # trimmed, inner spaces kept
    ("Xã Chân\u00a0Mộng", "2025-08", "Xã Chân\u00a0Mộng"),
    ("h44.07", "2025-08", "H44.07"), ("H44. 07", "2025-08", "H44.07"),  # an electronic id, respaced
    ("7900", "2025-08", "07900"), ("07 900", "2025-08", "07900"), ("27", "2024-03", "027"),
    ("12ab", "2024-03", "12ab"), ("H-44", "2025-08", "H-44"),
])
def test_the_unit_code_normaliser_fixes_only_code_shaped_cells(db, cell, period, stored):
    assert db.execute("select raw.norm_unit_code(%s, %s)", (cell, period)).fetchone()[0] == stored


@pytest.mark.parametrize(("received", "completed", "fails"), [
    ("2026-09-03", "2026-09-01", True),
    ("2026-09-03T08:00:00", "2026-09-03T07:59:59", True),  # both moments: an hour before
    ("2026-09-03T08:00:00", "2026-09-03", False),  # a completion written as a date, the day of receipt
    ("2026-09-03", "2026-09-03T00:00:00", False),
    ("2026-09-03T08:00:00", "2026-09-04T07:00:00", False),
    ("2026-09-03", None, False),  # pending
    ("2026-09-03", "2026-02-30", False),  # no date: date_invalid names it
    ("2026-09-3", "2026-09-01", False),  # no receipt date: period_invalid names it
])
def test_completed_before_received(db, received, completed, fails):
    rule = _rule("dossiers", "completed_before_received")
    assert _fails(db, rule, {"received_at": received, "completed_at": completed}) is fails


# ---------------------------------------------------------------- one run: loader, validation, dbt


@dataclass
class Built:
    dsn: str
    files: dict[str, dict]  # file name -> audit.submission_files row
    quarantined: dict[str, dict[int, dict[str, object]]]  # file name -> row -> rule -> observed
    channels: dict[str, str]  # dossier id -> channel its spelling names


def _rows_of(conn: psycopg.Connection, query: str, *params) -> list[tuple]:
    return conn.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def built(warehouse_dsn: str, tmp_path_factory) -> Built:
    root = tmp_path_factory.mktemp("values")
    landing = root / "landing"
    for kind in ("dossiers", "dossier_stats", "it_kpis"):
        (landing / kind).mkdir(parents=True)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        spellings = channel_spellings(conn)
        conn.execute("insert into audit.pipeline_runs (run_id) values (%s)", (RUN,))
    channels: dict[str, str] = {}
    lines = ["Mã hồ sơ,Mã đơn vị,Mã lĩnh vực,Mã TTHC,Kênh nộp,Ngày tiếp nhận,Ngày hẹn trả,Ngày trả kết quả,Trạng thái"]
    for i, (spelling, channel) in enumerate(spellings):
        channels[f"V{i:03d}"] = channel
        done = f"2026-09-{5 + i % 20:02d}" if i % 3 else ""  # some completed, some pending
        lines.append(f'V{i:03d},{A},HT,1.001234,"{spelling}",2026-09-{1 + i % 20:02d},2026-09-{10 + i % 15:02d},'
                     f"{done},x")
    lines += [  # rows 2 + len(spellings) onwards
        f"X1,{A},HT,1.001234,fax,2026-09-02,2026-09-10,,x",
        f"X2,{A},HT,1.001234,Trực tuyến,2026-09-05,2026-09-10,2026-09-01,x",  # completed before it was received
        f"X3,{A},HT,1.001234,online,2026-09-05T08:00:00,2026-09-10,2026-09-05,x",  # the same day: fine
    ]
    channels["X3"] = "online"
    (landing / "dossiers" / "vietnamese_channels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    kpis = ["unit_code,period,kpi_code,numerator,denominator",
            "230,2023-02,DVC_TOAN_TRINH,80,100", "230,2023-02,HS_TRUC_TUYEN,40,100", "230,2023-02,HS_BCCI,5,100",
            "230,2023-02,HS_MOT_CUA_DT,99,100", "227,2023-02,DVC_TOAN_TRINH,1.296,2.000",
            "230,2023-03,DVC_TOAN_TRINH,99999999999999999999,99999999999999999999",  # the row
            "Huyện Thanh Ba,2023-02,DVC_TOAN_TRINH,1,2"]  # a name where the code goes
    (landing / "it_kpis" / "counts.csv").write_text("\n".join(kpis) + "\n", encoding="utf-8")

    header = ("unit_code,period,field_code,received_carried_over,received_online,received_direct,received_postal,"
              "resolved_early,resolved_on_time,resolved_late,pending_in_time,pending_overdue")
    stats = [header,
             f"{A},2026-09,ALL,0,3,2,1,1,2,1,1,1",  # all fields, written ALL
             f"{B},2026-09,,0,1,1,0,1,1,0,0,0",  # all fields, left blank
             f"{B},2026-08,ALL,0,1,0,0,1,0,0,0,0",
             f"{B},2026-08,,0,1,0,0,1,0,0,0,0",  # blank and ALL in one file: the same key twice
             f"{A},2026-08,HT,0,1000000000000000,0,0,1000000000000000,0,0,0,0"]  # 16 digits
    (landing / "dossier_stats" / "all_fields.csv").write_text("\n".join(stats) + "\n", encoding="utf-8")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", warehouse_dsn)
        mp.setenv("REFORM_ARCHIVE", str(root / "archive"))
        mp.setenv("REFORM_LANDING", str(landing))
        for result in ingest.load_paths([landing], run_id=RUN, landing=landing, dsn=warehouse_dsn):
            V.validate_file(warehouse_dsn, result.file_id, RUN)
        target = root / "dbt-target"
        result = dbt_build(warehouse_dsn, target, "--select", "+fct_dossier_records_monthly", "+rpt_reconciliation",
                           "+fct_it_adoption", "+fct_dossier_throughput", "+dim_unit", "+dim_period", "+dim_field",
                           "--indirect-selection", "cautious")
    assert "assert_dossier_records_ii06a_identities" in {r.node.name for r in result.result}
    with psycopg.connect(warehouse_dsn) as conn:
        cur = conn.execute("select * from audit.submission_files where run_id = %s", (RUN,))
        names = [d.name for d in cur.description]
        files = {row[names.index("file_name")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
        quarantined: dict[str, dict[int, dict[str, object]]] = {}
        for kind in ("dossiers", "dossier_stats", "it_kpis"):
            for name, number, failed in conn.execute(
                    f"select f.file_name, q._row_number, q.failed_rules from quarantine.{kind} q "
                    "join audit.submission_files f on f.file_id = q._file_id where f.run_id = %s", (RUN,)):
                quarantined.setdefault(name, {})[number] = {r["rule"]: r.get("observed") for r in failed}
    return Built(warehouse_dsn, files, quarantined, channels)


def test_the_run_loads_every_file_and_its_dbt_build_passes_the_ii06a_identities(built):
    """`built` asserts the build (assert_dossier_records_ii06a_identities among its tests) passed."""
    assert {name: f["status"] for name, f in built.files.items()} == {
        "vietnamese_channels.csv": "accepted", "counts.csv": "accepted", "all_fields.csv": "accepted"}


def test_vietnamese_channels_are_counted_in_their_channel(built):
    first_extra = 2 + len(built.channels) - 1  # X1's row number: after the spellings (X3 is in channels)
    assert built.quarantined["vietnamese_channels.csv"] == {
        first_extra: {"channel_unknown": {"channel": "fax"}},
        first_extra + 1: {"completed_before_received": {"received_at": "2026-09-05", "completed_at": "2026-09-01"}},
    }
    with psycopg.connect(built.dsn) as conn:
        latest = dict(_rows_of(conn, "select dossier_id, channel from intermediate.int_dossiers__latest"))
        assert latest == built.channels
        received = _rows_of(conn, "select received_online, received_direct, received_postal "
                                  "from intermediate.int_dossiers__monthly "
                                  "where unit_code = %s and period = '2026-09' and field_code = 'ALL'", A)
    expected = tuple(sum(1 for c in built.channels.values() if c == channel)
                     for channel in ("online", "direct", "postal"))
    assert received == [expected] and min(expected) > 5


def test_a_count_too_large_is_quarantined_and_every_accepted_row_reaches_the_fact(built):
    kpis, stats = built.files["counts.csv"], built.files["all_fields.csv"]
    assert built.quarantined["counts.csv"] == {
        7: {"count_too_large": {"numerator": "99999999999999999999", "denominator": "99999999999999999999"}},
        8: {"unit_code_unknown": {"unit_code": "Huyện Thanh Ba"}},  # the cell as it was written
    }
    assert built.quarantined["all_fields.csv"] == {
        4: {"duplicate_key_in_file": {"unit_code": B, "period": "2026-08", "field_code": "ALL"}},
        5: {"duplicate_key_in_file": {"unit_code": B, "period": "2026-08", "field_code": None}},
        6: {"count_too_large": {"received_online": "1000000000000000", "resolved_early": "1000000000000000"}},
    }
    with psycopg.connect(built.dsn) as conn:
        (adoption,) = conn.execute("select count(*) from marts.fct_it_adoption where file_id = %s",
                                   (kpis["file_id"],)).fetchone()
        (throughput,) = conn.execute("select count(*) from marts.fct_dossier_throughput where file_id = %s",
                                     (stats["file_id"],)).fetchone()
        (read,) = conn.execute("select numerator from marts.fct_it_adoption where file_id = %s and unit_code = '227'",
                               (kpis["file_id"],)).fetchone()
    # rows_loaded counts the rows that passed validation: each is in the fact
    assert (kpis["rows_total"], kpis["rows_quarantined"], kpis["rows_loaded"], adoption) == (7, 2, 5, 5)
    assert (stats["rows_total"], stats["rows_quarantined"], stats["rows_loaded"], throughput) == (5, 3, 2, 2)
    assert read == 1296


def test_a_field_code_all_lands_in_the_same_mart_rows_as_a_blank_one(built):
    with psycopg.connect(built.dsn) as conn:
        rows = _rows_of(conn, "select t.unit_code, t.field_code, t.received_total, d.is_all_fields "
                              "from marts.fct_dossier_throughput t join marts.dim_field d using (field_code) "
                              "where t.period = '2026-09' order by 1")
    assert rows == [(B, "ALL", 2, True), (A, "ALL", 6, True)]


def test_raw_keeps_a_unit_cell_as_it_arrived(built):
    with psycopg.connect(built.dsn) as conn:
        cells = [c for (c,) in conn.execute("select unit_code from raw.it_kpis where _file_id = %s order by 1",
                                            (built.files["counts.csv"]["file_id"],))]
    assert "Huyện Thanh Ba" in cells and "230" in cells

