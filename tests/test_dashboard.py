"""The leader's dashboard: built from `marts` as bi_reader beside the run report, static and offline, and
opened in a real headless Chromium (Debian's, `make chromium`): every chart drawn with data marks, no
console error, no network request. Screenshots are saved to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from reform_etl import dashboard
from reform_etl.report import build_report
from tests.test_dbt_marts import built, reference_rows  # noqa: F401  (the hand-made dataset, built once here)

pytestmark = pytest.mark.slow

RUN = "scheduled__2026-11-22T18:00:00+00:00"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SECTIONS = ["par", "areas", "ontime", "kpis", "s766", "status"]


def sections(page: str) -> dict[str, str]:
    """Each section's HTML by its key."""
    parts = re.findall(r"<section class='chart-section'[^>]*><h2 id='(\w+)'>(.*?)</section>", page, re.S)
    return dict(parts)


def data_marks(fragment: str) -> int:
    """Data marks in the SVG of a fragment: the items of Vega's `role-mark` groups (a bar, a cell, a tick)."""
    count = 0
    for group in re.findall(r'<g class="mark-(?:rect|symbol|rule|area|line)[^"]*role-mark[^"]*"[^>]*>(.*?)</g>',
                            fragment, re.S):
        count += len(re.findall(r"<(?:path|rect|line)\b", group))
    return count


@pytest.fixture(scope="module")
def reports(built, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("reports")
    with psycopg.connect(built["dsn"], autocommit=True) as conn:
        conn.execute("insert into audit.pipeline_runs (run_id) values (%s)", (RUN,))
    build_report(built["dsn"], RUN, out)
    return out


@pytest.fixture(scope="module")
def page(reports: Path) -> str:
    return (reports / "scheduled__2026-11-22T18_00_00_00_00" / "dashboard.html").read_text(encoding="utf-8")


def test_the_nightly_report_writes_the_dashboard_beside_it_and_as_latest(reports: Path, page: str):
    run = reports / "scheduled__2026-11-22T18_00_00_00_00"
    assert (run / "index.html").is_file()
    assert "href='index.html'" in page
    latest = (reports / "latest" / "dashboard.html").read_text(encoding="utf-8")
    assert "href='../scheduled__2026-11-22T18_00_00_00_00/index.html'" in latest
    assert latest.replace("../scheduled__2026-11-22T18_00_00_00_00/", "") == page


def test_every_section_has_a_chart_with_data_and_no_external_resource(page: str):
    found = sections(page)
    assert list(found) == SECTIONS
    for key, html in found.items():
        assert "<svg" in html and data_marks(html) > 0, key
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/", "")
    assert "https://" not in page
    assert page.index("Xếp hạng chỉ số CCHC") < page.index("PAR index ranking")  # Vietnamese first


def test_par_ranking_shows_the_rank_change_from_the_mart(built, page: str):  # noqa: F811
    par = sections(page)["par"]
    climber = built["climber"]
    with psycopg.connect(built["dsn"]) as conn:
        name, rank, previous, change = conn.execute(
            "select unit_name, rank_in_province, previous_rank, rank_change from marts.rpt_par_index "
            "where unit_code = %s and year = 2024", (climber,)).fetchone()
        ranked_2024 = conn.execute("select count(*) from marts.rpt_par_index where year = 2024").fetchone()[0]
    assert (rank, previous, change) == (2, 10, 8)  # as built by hand: 10th in 2023, tied 2nd in 2024
    assert f"2. {name}" in par and "▲8" in par
    assert f"{name}: 10 → 2 (▲8)" in par
    first_chart = par.split("</figure>")[0]
    assert "2024" in first_chart and data_marks(first_chart) == ranked_2024  # one bar per ranked unit


def test_the_heat_map_has_one_cell_per_unit_and_month(page: str):
    # the latest month is the portal's 2026-09 (36 units); the 12 months before it hold nothing else.
    # Each unit x month is a grey cell, coloured by its rate on top where something was resolved.
    rows = reference_rows()
    rated = [r for r in rows if int(r["total_received"]) > 0]
    assert len(rated) == len(rows) - 1  # the one unit that resolved nothing has no rate: grey, "—"
    heat = sections(page)["ontime"]
    assert data_marks(heat) == len(rows) + len(rated)
    assert ">—</text>" in heat


def test_kpis_read_against_their_targets(page: str):
    kpis = sections(page)["kpis"]
    assert "Tháng / Month 2025-08" in kpis
    assert "Satisfaction with dossier handling" in kpis


def test_the_page_is_read_with_bi_readers_grants(built, tmp_path: Path):  # noqa: F811
    """Without bi_reader's grant on rpt_par_index the ranking cannot be read (the superuser could):
    the page says so and the other sections are still drawn."""
    with psycopg.connect(built["dsn"], autocommit=True) as conn:
        conn.execute("revoke select on marts.rpt_par_index from bi_reader")
        try:
            page = dashboard.build_dashboard(built["dsn"], tmp_path / "d.html").read_text(encoding="utf-8")
        finally:
            conn.execute("grant select on marts.rpt_par_index to bi_reader")
    assert "No data yet (marts.InsufficientPrivilege)" in page
    assert data_marks(sections(page)["kpis"]) > 0


def test_the_page_reads_as_bi_reader_who_logs_in_and_cannot_write(built):  # noqa: F811
    reader = dashboard.Reader(built["dsn"])
    try:
        assert reader.rows("select session_user as s, current_user as c")[0] == {"s": "bi_reader", "c": "bi_reader"}
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.rows("delete from marts.dim_kpi")
    finally:
        reader.close()


def test_a_warehouse_without_marts_still_gets_a_page(make_database, tmp_path: Path):
    page = dashboard.build_dashboard(make_database("nomarts"), tmp_path / "d.html").read_text(encoding="utf-8")
    assert page.count("class='empty'") == len(SECTIONS)
    assert "Chưa có số liệu" in page


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make chromium` (apt-get install chromium)"
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, viewport={"width": 1200, "height": 900},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def open_in_browser(context, path: Path, shot: str) -> tuple[object, list[str], list[str]]:
    """Open a file:// page; returns (page, console errors, non-file requests) and saves a full screenshot."""
    page = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file://", "data:")) else None)
    page.goto(path.as_uri(), wait_until="load")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page, errors, requests


@pytest.mark.parametrize("which", ["run", "latest"])
def test_the_dashboard_renders_in_chromium(browser, reports: Path, which: str):
    folder = "scheduled__2026-11-22T18_00_00_00_00" if which == "run" else "latest"
    page, errors, requests = open_in_browser(browser, reports / folder / "dashboard.html", f"dashboard-{which}.png")
    charts = page.locator("figure.chart svg")
    assert charts.count() >= len(SECTIONS)
    for i in range(charts.count()):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, i
        # data marks drawn with a real size on the page (not only present in the markup)
        marks = chart.locator("g.role-mark > path, g.role-mark > rect, g.role-mark > line")
        assert marks.count() > 0, i
        assert any((marks.nth(j).bounding_box() or {}).get("width", 0) > 0 for j in range(min(marks.count(), 5)))
    blocks = page.locator("section.chart-section")
    assert blocks.count() == len(SECTIONS)
    if which == "run":  # one picture per chart, easier to read than the whole page
        for i, key in enumerate(SECTIONS):
            blocks.nth(i).screenshot(path=str(ARTIFACTS / f"dashboard-{key}.png"))
    assert errors == [] and requests == []
    link = page.locator("a", has_text="Run report")
    target = (reports / folder / link.get_attribute("href")).resolve()
    assert target == (reports / "scheduled__2026-11-22T18_00_00_00_00" / "index.html").resolve()
    page.close()


def test_the_run_report_renders_in_chromium(browser, reports: Path):
    page, errors, requests = open_in_browser(
        browser, reports / "scheduled__2026-11-22T18_00_00_00_00" / "index.html", "run-report.png")
    assert page.locator("h1").count() >= 1
    assert errors == [] and requests == []
    page.close()
