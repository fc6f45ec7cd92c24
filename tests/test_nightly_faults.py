"""One nightly run (the real DAG, in-process) over a landing folder holding the file-level faults of issue 16
(links out of the folder, an upload in progress) and a duplicate (issue 20): it succeeds and its report and
summary list every one of them; nothing outside the folder is opened."""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reform_etl import orchestration, transform
from tests.test_dags import SMALL, _cut

# Paths the process opened while the night ran. An audit hook cannot be removed, so it is added once, when
# the test starts (not at import), and records nothing outside the night: the rest of the session pays one
# comparison per open.
OPENED: list[str] = []
_WATCHING: list[bool] = []


def _audit_open(event: str, args: tuple) -> None:
    if _WATCHING and event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        OPENED.append(os.fsdecode(args[0]))


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    if "AIRFLOW_HOME" not in os.environ or "airflow.configuration" not in sys.modules:
        os.environ["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow"))
    home = orchestration.prepare_airflow(Path(os.environ["AIRFLOW_HOME"]))
    transform.ensure_manifest()
    return home


@pytest.mark.slow
def test_a_nightly_over_faulty_landing_files_succeeds_and_reports_each(airflow_home, make_database, tmp_path,
                                                                        monkeypatch):
    from reform_etl import sample

    dsn = make_database("nightly_faults")
    full = tmp_path / "sample"
    sample.generate(full)
    landing = tmp_path / "landing"
    kpis = "it_kpis/cntt_cap_xa_2025-2026.csv"
    _cut(full / kpis, landing / kpis, SMALL[kpis])
    old = time.time() - 3600
    shutil.copyfile(landing / kpis, landing / "it_kpis" / "ban_sao.csv")  # the same bytes again
    secret = tmp_path / "outside" / "secret.csv"
    _cut(full / kpis, secret, 3)
    (landing / "it_kpis" / "lien_ket.csv").symlink_to(secret)
    (landing / "dossier_stats").mkdir()
    (landing / "dossier_stats" / "host.csv").symlink_to("/etc/hostname")
    for path in (landing / kpis, landing / "it_kpis" / "ban_sao.csv"):
        os.utime(path, (old, old + (path.name == "ban_sao.csv")))
    _cut(full / kpis, landing / "it_kpis" / "dang_tai_len.csv", 7)  # an upload still in progress: written now

    monkeypatch.setenv("WAREHOUSE_DSN", dsn)
    monkeypatch.setenv("REFORM_QUIET_SECONDS", "300")
    monkeypatch.setenv("REFORM_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("REFORM_ARCHIVE", str(tmp_path / "archive"))
    OPENED.clear()
    sys.addaudithook(_audit_open)
    _WATCHING.append(True)
    try:
        result = orchestration.run_nightly(landing, logical_date=datetime.now(UTC), dsn=dsn, skip_dbt_tests=True)
    finally:
        _WATCHING.clear()
    assert result.succeeded, result.render()
    assert not {str(secret), "/etc/hostname"} & set(OPENED)
    summary = result.summary
    assert (summary["files_loaded"], summary["files_rejected"], summary["files_duplicate"],
            summary["files_waiting"]) == (1, 2, 1, 1), summary
    assert {r["error_code"] for r in summary["rejected"]} == {"unsafe_file_path"}
    assert summary["waiting"] == [str(landing / "it_kpis" / "dang_tai_len.csv")]
    page = Path(summary["report"]).read_text(encoding="utf-8")
    for shown in ("lien_ket.csv", "host.csv", "unsafe_file_path", "ban_sao.csv", "dang_tai_len.csv",
                  "Thành công / success"):
        assert shown in page, shown
