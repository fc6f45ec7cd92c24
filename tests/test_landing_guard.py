"""The landing folder's guard: nothing read from outside, nothing half-written, a rejection seen twice is
reported (issue 16 items 3, 4, 7) and a duplicate belongs to the run that saw it (issue 20 item 4)."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

from reform_etl import cli, ingest, report, runs
from reform_etl.ingest import load as ingest_load
from reform_etl.transform.decision import transform_state

KPI_HEADER = ["unit_code", "period", "kpi_code", "numerator", "denominator"]
OPENED: list[str] = []


def _audit_open(event: str, args: tuple) -> None:
    if event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit_open)  # every file this process opens, to prove a path outside was never read


def _kpis(path: Path, rows: int = 3, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(KPI_HEADER)] + [f"227,2025-0{i + 1},dvc_online_rate,5{i},90"
                                                           for i in range(rows)]) + "\n", encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _archived(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]


def test_links_out_of_the_landing_folder_are_rejected_without_being_opened(db, landing, tmp_path):
    outside = _kpis(tmp_path / "elsewhere" / "secret.csv", rows=1)
    (landing / "it_kpis").mkdir()
    (landing / "it_kpis" / "x.csv").symlink_to(outside)
    (landing / "it_kpis" / "host.csv").symlink_to("/etc/hostname")
    inside = _kpis(landing / "it_kpis" / "real.csv")
    (landing / "it_kpis" / "alias.csv").symlink_to(inside)  # a link that stays inside: one file, loaded once
    OPENED.clear()
    results = {Path(r.path).name: r for r in ingest.load_paths([landing], run_id=None, landing=landing)}
    assert not {str(outside), "/etc/hostname"} & set(OPENED)
    assert {n: (r.status, r.error_code) for n, r in results.items()} == {
        "x.csv": ("rejected", "unsafe_file_path"), "host.csv": ("rejected", "unsafe_file_path"),
        "real.csv": ("loaded", None)}
    assert "a link to " + str(outside) in results["x.csv"].error
    digests = {row[0] for row in db.execute("select sha256 from audit.submission_files")}
    assert hashlib.sha256(outside.read_bytes()).hexdigest() not in digests
    assert [p.read_bytes() for p in _archived(tmp_path)] == [inside.read_bytes()]
    # The next night offers none of them again (the links are known by their own size and time).
    assert ingest.discover(landing) == []
    # Offered by name (`reform-etl load <link>`), the link is still refused unread, and reported again.
    OPENED.clear()
    [again] = ingest.load_paths([landing / "it_kpis" / "host.csv"], landing=landing)
    assert (again.status, again.error_code, again.seen_before) == ("rejected", "unsafe_file_path", True)
    assert "/etc/hostname" not in OPENED


def test_the_same_rejected_or_missing_path_offered_twice_is_reported_not_a_crash(db, landing, tmp_path, capsys):
    outside = _kpis(tmp_path / "outside" / "landing" / "x.csv")
    missing = landing / "it_kpis" / "gone.csv"
    for _ in range(2):
        assert cli.main(["load", str(outside), str(missing), "--landing", str(landing)]) == 0
    printed = capsys.readouterr().out.replace("\n", "")  # (rich wraps long lines)
    assert "seen before" in printed and "unsafe_file_path" in printed and "gone.csv" in printed
    assert db.execute("select error_code, count(*) from audit.submission_files where path = any(%s) "
                      "group by 1 order by 1", ([str(outside), str(missing)],)).fetchall() == [
        ("unreadable", 1), ("unsafe_file_path", 1)]


def test_a_file_modified_within_the_quiet_period_waits_for_a_later_run(db, landing, monkeypatch, tmp_path):
    monkeypatch.setenv("REFORM_QUIET_SECONDS", "300")
    uploading = _kpis(landing / "it_kpis" / "uploading.csv")
    settled = _kpis(landing / "it_kpis" / "settled.csv", rows=2, mtime=time.time() - 301)
    found = ingest.discover_files(landing)
    assert (found.fresh, found.waiting) == ([settled], [uploading])
    [result] = ingest.load_paths([uploading], landing=landing)  # offered by name, it waits too
    assert (result.status, result.file_id, result.error_code) == ("waiting", None, "file_not_stable")
    assert not db.execute("select 1 from audit.submission_files where path = %s", (str(uploading),)).fetchall()
    os.utime(uploading, (time.time() - 301, time.time() - 301))  # the upload ended five minutes ago
    assert sorted(ingest.discover(landing)) == sorted([settled, uploading])


def test_a_file_that_changes_while_it_is_read_is_not_half_loaded(db, warehouse_dsn, landing, monkeypatch, tmp_path):
    path = _kpis(landing / "it_kpis" / "growing.csv", rows=2)
    read = ingest_load.read_bytes

    def read_then_append(p: Path):
        facts = read(p)
        with p.open("a", encoding="utf-8") as handle:  # the uploader writes more rows between hash and COPY
            handle.write("227,2025-09,dvc_online_rate,59,90\n")
        return facts

    monkeypatch.setattr(ingest_load, "read_bytes", read_then_append)
    runs.start_run(warehouse_dsn, "growing_run")
    result = runs.load_file(warehouse_dsn, str(path), "growing_run", landing)  # the nightly's load step
    assert (result["status"], result["file_id"], result["error_code"]) == ("waiting", None, "file_not_stable")
    assert "changed while it was read" in result["error"]
    assert runs.finish_run(warehouse_dsn, "growing_run")["waiting"] == [str(path)]  # the run's summary lists it
    assert db.execute("select count(*) from audit.submission_files where path = %s", (str(path),)).fetchone() == (0,)
    assert db.execute("select count(*) from raw.it_kpis where period = '2025-09'").fetchone() == (0,)
    assert _archived(tmp_path) == []
    monkeypatch.setattr(ingest_load, "read_bytes", read)
    [again] = ingest.load_paths([landing], landing=landing)  # the next run: whole, once
    assert (again.status, again.rows_loaded) == ("loaded", 3)


def test_a_duplicate_belongs_to_the_run_that_saw_it_and_changes_no_dbt_decision(db, landing, warehouse_dsn):
    first = _kpis(landing / "it_kpis" / "a.csv", mtime=time.time() - 60)
    runs.start_run(warehouse_dsn, "dup_run_1")
    ingest.load_paths([first], run_id="dup_run_1", landing=landing)
    state = transform_state(db)
    copy = landing / "it_kpis" / "a_copy.csv"
    copy.write_bytes(first.read_bytes())
    runs.start_run(warehouse_dsn, "dup_run_2")
    [dup] = ingest.load_paths([landing], run_id="dup_run_2", landing=landing)
    assert dup.status == "duplicate"
    assert db.execute("select run_id from audit.submission_files where file_id = %s", (dup.file_id,)).fetchone() == (
        "dup_run_2",)
    summary = runs.run_summary(warehouse_dsn, "dup_run_2")
    assert (summary["files_seen"], summary["files_duplicate"]) == (1, 1)
    page = report.render_page(report.read_run(warehouse_dsn, "dup_run_2"), "dup_run_2", False)
    assert "a_copy.csv" in page and f"#{dup.duplicate_of}" in page
    assert transform_state(db)["files_fingerprint"] == state["files_fingerprint"]  # no dbt build for it
