"""The provincial leader's dashboard: one static HTML page, charts drawn at build time as inline SVG.

`build_dashboard(dsn, path)` reads `marts` as `bi_reader` (the connection does `SET ROLE bi_reader`,
so only that role's grants are used, read-only) and writes one page that opens from the file system
with no network: PAR ranking per year (rank change, band colour), the content-area scores of one
unit against the province, the on-time rate by unit and month (heat map), IT-adoption KPIs against
their targets, the Decision 766 groups per unit, and the submission status matrix (who is late or
missing). Charts are Vega-Lite specs (Altair) rendered to SVG by `vl-convert`: no JavaScript.
Vietnamese first, English second. A section whose mart is missing or empty says so; the page is
always written. Never writes to the warehouse.

One module on purpose: each of the six sections is its mart's query beside the chart drawn from it, and
the page around them is short; split into reading and charting, every section would be read in two files.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import altair as alt
import psycopg
import vl_convert

from reform_etl import warehouse

log = logging.getLogger(__name__)

READER_ROLE = "bi_reader"
VN = ZoneInfo("Asia/Ho_Chi_Minh")  # the page's clock is the province's
MAX_ROWS = 40  # units shown in the per-unit charts (the lowest first) so that the page stays readable
YEARS_SHOWN = 3
TABLE_ROWS = 30  # rows of the late / missing list under the matrix
MONTHS_SHOWN = 12
# Vietnamese number format for every chart (1.234,5).
VI_LOCALE = {"decimal": ",", "thousands": ".", "grouping": [3], "currency": ["", " ₫"]}

# seeds/par_bands.csv codes; a province's own band gets a colour of the fallback list, best first
BAND_COLOURS = {"TOT": "#1a9850", "KHA": "#91cf60", "TRUNG_BINH": "#fdae61", "YEU": "#d73027"}
FALLBACK_COLOURS = ["#1a9850", "#91cf60", "#fdae61", "#f46d43", "#d73027", "#888888"]
STATUS = {  # status -> (Vietnamese, English, colour)
    "on_time": ("Đúng hạn", "On time", "#1a9850"),
    "late": ("Trễ hạn", "Late", "#fdae61"),
    "missing": ("Chưa nộp", "Missing", "#d73027"),
    "rejected": ("Bị từ chối", "Rejected", "#7b3294"),
    "incomplete": ("Chưa đủ", "Incomplete", "#fee08b"),
    "not_yet_due": ("Chưa đến hạn", "Not yet due", "#bdbdbd"),
}
WORST = ["missing", "rejected", "incomplete", "late"]  # the statuses a leader acts on, worst first
KIND_WORDS = {
    "dossier_stats": ("Hồ sơ một cửa", "One-stop dossiers"),
    "it_kpis": ("Ứng dụng CNTT", "IT adoption"),
    "par_scores": ("Điểm CCHC", "PAR scores"),
    "service_index": ("Chỉ số 766", "766 index"),
}


@dataclass
class Section:
    """One block of the page: bilingual title, what it shows, its chart (SVG) and extra HTML."""

    key: str
    title_vi: str
    title_en: str
    note: str = ""
    svgs: list[str] | None = None
    extra: str = ""
    empty_reason: str = ""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _plain(value: object) -> object:
    """A database value as JSON data for Vega (Decimal -> float, dates -> ISO text)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class Reader:
    """Queries `marts` as bi_reader on one read-only session; a failed query fails only its section.

    Logs in as bi_reader with its password (`warehouse.role_dsn`); where that role has no password
    known here, connects with `dsn` and does `SET ROLE bi_reader`: either way only bi_reader's grants
    are used. Raises psycopg errors when neither works."""

    def __init__(self, dsn: str):
        try:
            self.conn = psycopg.connect(warehouse.role_dsn(READER_ROLE, dsn), autocommit=True)
        except LookupError:
            self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(f"set role {READER_ROLE}")
        self.conn.execute("set default_transaction_read_only = on")
        self.conn.execute("set timezone = 'Asia/Ho_Chi_Minh'")  # times on the page are the province's

    def rows(self, query: str, params: tuple = ()) -> list[dict]:
        cur = self.conn.execute(query, params)
        names = [d.name for d in cur.description]
        return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]

    def close(self) -> None:
        self.conn.close()


_ID = re.compile(r'\bid="([^"]+)"')


def svg(chart: alt.TopLevelMixin, prefix: str) -> str:
    """Render a chart to SVG text, its element ids prefixed so that several charts share one page."""
    text = vl_convert.vegalite_to_svg(chart.to_dict(), format_locale=VI_LOCALE)
    for name in set(_ID.findall(text)):
        new = f"{prefix}-{name}"
        text = text.replace(f'id="{name}"', f'id="{new}"').replace(f"url(#{name})", f"url(#{new})")
        text = text.replace(f'href="#{name}"', f'href="#{new}"')
    return text


def _rank_change_text(change: object) -> str:
    if change is None:  # not ranked the year before (a new unit, or the first year)
        return ""
    return f"▲{change}" if change > 0 else (f"▼{-change}" if change < 0 else "=")


def par_ranking(reader: Reader) -> Section:
    s = Section("par", "Xếp hạng chỉ số CCHC theo năm", "PAR index ranking per year",
                "Thứ hạng trong tỉnh (cùng cấp), thay đổi so với năm trước, màu theo xếp loại / "
                "Rank in the province (same level), change on the previous year, colour by band.")
    rows = reader.rows("""
        select year, level, unit_code, coalesce(unit_name, unit_code) as unit_name, index_pct,
               rank_in_province, units_ranked, previous_rank, rank_change, band_code, band
        from marts.rpt_par_index
        where year in (select distinct year from marts.rpt_par_index order by year desc limit %s)
        order by year desc, level, rank_in_province, unit_code""", (YEARS_SHOWN,))
    if not rows:
        s.empty_reason = "rpt_par_index"
        return s
    best = {}  # band -> its highest index: the legend reads best to worst
    for r in rows:
        best[(r["band_code"], r["band"])] = max(best.get((r["band_code"], r["band"]), 0), r["index_pct"])
    bands = sorted(best, key=lambda b: -best[b])
    domain = [b[1] for b in bands]
    colours = [BAND_COLOURS.get(code, FALLBACK_COLOURS[min(i, 5)]) for i, (code, _) in enumerate(bands)]
    s.svgs = []
    for (year, level) in dict.fromkeys((r["year"], r["level"]) for r in rows):
        data = [dict(r, label=f"{r['rank_in_province']}. {r['unit_name']}",
                     change=_rank_change_text(r["rank_change"]))
                for r in rows if r["year"] == year and r["level"] == level]
        base = alt.Chart(alt.Data(values=data)).encode(
            y=alt.Y("label:N", sort=[d["label"] for d in data], title=None),  # rows come in rank order
        )
        bars = base.mark_bar().encode(
            x=alt.X("index_pct:Q", title="Chỉ số CCHC (%) / PAR index (%)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("band:N", scale=alt.Scale(domain=domain, range=colours),
                            legend=alt.Legend(title="Xếp loại / Band", orient="bottom")),
        )
        labels = base.mark_text(align="left", dx=4, fontSize=10).encode(
            x="index_pct:Q", text=alt.Text("change:N"))
        chart = (bars + labels).properties(
            title=f"Năm {year} · cấp {level} / {year}, {level} level ({len(data)} đơn vị / units)",
            width=520, height=alt.Step(14))
        s.svgs.append(svg(chart, f"par-{year}-{level}"))
    latest = [r for r in rows if r["year"] == rows[0]["year"]]
    moved = sorted((r for r in latest if r["rank_change"]), key=lambda r: -abs(r["rank_change"]))[:5]
    if moved:
        items = "".join(f"<li>{_e(r['unit_name'])}: {_e(r['previous_rank'])} → {_e(r['rank_in_province'])} "
                        f"({_e(_rank_change_text(r['rank_change']))})</li>" for r in moved)
        s.extra = f"<p>Thay đổi thứ hạng lớn nhất năm {rows[0]['year']} / Largest rank changes:</p><ul>{items}</ul>"
    return s


def content_areas(reader: Reader, unit_code: str | None) -> Section:
    s = Section("areas", "Điểm theo lĩnh vực: đơn vị so với toàn tỉnh",
                "Content-area scores: unit against the province")
    latest = reader.rows("select max(year) as year from marts.rpt_content_area_scores")[0]["year"]
    if latest is None:
        s.empty_reason = "rpt_content_area_scores"
        return s
    if unit_code is None:  # the last-ranked unit of the latest year: the one a leader asks about first
        last = reader.rows("""
            select unit_code from marts.rpt_par_index where year = %s
            order by rank_in_province desc, unit_code limit 1""", (latest,))
        unit_code = last[0]["unit_code"] if last else None
    rows = reader.rows("""
        with area as (
            select s.*, u.level from marts.rpt_content_area_scores s
            left join marts.dim_unit u on u.unit_key = s.unit_key where s.year = %s
        ), chosen as (select * from area where unit_code = %s)
        select a.content_area_code, min(a.content_area_name) as area_name,
               round(avg(a.pct), 2) as province_pct,
               max(c.pct) as unit_pct, max(c.unit_name) as unit_name
        from area a left join chosen c on c.content_area_code = a.content_area_code
        where a.level is not distinct from (select min(level) from chosen) or not exists (select 1 from chosen)
        group by a.content_area_code order by a.content_area_code""", (latest, unit_code))
    if not rows or all(r["unit_pct"] is None for r in rows):
        s.empty_reason = "rpt_content_area_scores"
        return s
    name = next(r["unit_name"] for r in rows if r["unit_name"])
    data = []
    for r in rows:
        area = f"{r['content_area_code']}. {r['area_name']}"
        data.append({"area": area, "who": f"{name}", "pct": r["unit_pct"]})
        data.append({"area": area, "who": "Trung bình tỉnh / Province average", "pct": r["province_pct"]})
    chart = alt.Chart(alt.Data(values=data)).mark_bar().encode(
        y=alt.Y("area:N", title=None, sort=None, axis=alt.Axis(labelLimit=320)),
        yOffset=alt.YOffset("who:N", sort=[name]),
        x=alt.X("pct:Q", title="Tỷ lệ điểm đạt (%) / Share of the maximum (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("who:N", sort=[name], scale=alt.Scale(range=["#2c7fb8", "#bdbdbd"]),
                        legend=alt.Legend(title=None, orient="bottom", labelLimit=320)),
    ).properties(width=420, height=alt.Step(11), title=f"{name} ({unit_code}), năm / year {latest}")
    s.svgs = [svg(chart, "areas")]
    s.note = (f"Đơn vị: {_e(name)}, so với trung bình các đơn vị cùng cấp / "
              f"Unit {_e(name)} against the average of the units of its level.")
    return s


def on_time_heatmap(reader: Reader) -> Section:
    s = Section("ontime", "Tỷ lệ giải quyết hồ sơ đúng hạn theo đơn vị và tháng",
                "On-time rate by unit and month")
    rows = reader.rows("""
        with unit_month as (
            -- a unit reports either the all-fields row or one row per field: never add both
            select t.unit_code, t.period,
                   coalesce(sum(t.resolved_early + t.resolved_on_time) filter (where t.field_code = 'ALL'),
                            sum(t.resolved_early + t.resolved_on_time)) as in_time,
                   coalesce(sum(t.resolved_total) filter (where t.field_code = 'ALL'), sum(t.resolved_total)) as total
            from marts.fct_dossier_throughput t
            where t.period > to_char(to_date((select max(period) from marts.fct_dossier_throughput) || '-01',
                                             'YYYY-MM-DD') - make_interval(months => %s), 'YYYY-MM')
            group by t.unit_code, t.period
        )
        select m.unit_code, coalesce(u.unit_name, m.unit_code) as unit_name, m.period,
               round(100.0 * m.in_time / nullif(m.total, 0), 1) as rate,
               avg(100.0 * m.in_time / nullif(m.total, 0)) over (partition by m.unit_code) as mean_rate
        from unit_month m
        left join lateral (  -- the unit's latest version: a legacy district keeps its name
            select d.unit_name from marts.dim_unit d where d.unit_code = m.unit_code
            order by d.valid_to desc limit 1) u on true
        order by mean_rate, m.unit_code, m.period""", (MONTHS_SHOWN,))
    if not rows:
        s.empty_reason = "fct_dossier_throughput"
        return s
    units = list(dict.fromkeys(r["unit_code"] for r in rows))
    shown = set(units[:MAX_ROWS])
    data = [dict(r, unit=f"{r['unit_name']} ({r['unit_code']})") for r in rows if r["unit_code"] in shown]
    order = list(dict.fromkeys(d["unit"] for d in data))
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("period:O", title="Tháng / Month"),
        y=alt.Y("unit:N", sort=order, title=None),
    ).properties(width=alt.Step(36), height=alt.Step(14))
    # every unit x month reported: grey where nothing was resolved (no rate), coloured by the rate on top
    reported = base.mark_rect(color="#e0e0e0")
    rated = base.mark_rect().encode(
        color=alt.Color("rate:Q", title="Đúng hạn (%) / On time (%)",
                        scale=alt.Scale(scheme="redyellowgreen", domain=[50, 100], clamp=True)))
    text = base.mark_text(fontSize=8).encode(text=alt.Text("rate_text:N"))
    for d in data:
        d["rate_text"] = "—" if d["rate"] is None else f"{d['rate']:.0f}"
    s.svgs = [svg(reported + rated + text, "ontime")]
    s.note = (f"{len(order)} đơn vị có tỷ lệ trung bình thấp nhất (trên {len(units)}), "
              f"{MONTHS_SHOWN} tháng gần nhất / the {len(order)} units with the lowest mean rate "
              f"(of {len(units)}), last {MONTHS_SHOWN} months.")
    return s


def it_kpis(reader: Reader) -> Section:
    s = Section("kpis", "Chỉ tiêu ứng dụng CNTT so với mục tiêu", "IT-adoption KPIs against their targets")
    rows = reader.rows("""
        with latest as (select max(period) as period from marts.fct_it_adoption)
        select k.kpi_code, k.kpi_name_vi, k.kpi_name_en, k.target_pct, k.direction, f.period,
               round(100.0 * sum(f.numerator) / nullif(sum(f.denominator), 0), 2) as rate,
               count(*) filter (where f.meets_target) as units_meeting, count(*) as units
        from marts.fct_it_adoption f
        join marts.dim_kpi k on k.kpi_code = f.kpi_code
        where f.period = (select period from latest)
        group by k.kpi_code, k.kpi_name_vi, k.kpi_name_en, k.target_pct, k.direction, k.sort_order, f.period
        order by k.sort_order""")
    if not rows:
        s.empty_reason = "fct_it_adoption"
        return s
    data = []
    for r in rows:
        meets = r["rate"] is not None and (
            r["rate"] <= r["target_pct"] if r["direction"] == "lower" else r["rate"] >= r["target_pct"])
        data.append(dict(r, kpi=f"{r['kpi_name_vi']} / {r['kpi_name_en']}",
                         status="Đạt / Met" if meets else "Chưa đạt / Not met",
                         units_text=f"{r['units_meeting']}/{r['units']} đạt / met"))
    base = alt.Chart(alt.Data(values=data)).encode(y=alt.Y(
        "kpi:N", sort=None, title=None,
        axis=alt.Axis(labelExpr="split(datum.label, ' / ')", labelLimit=440)))  # Vietnamese, English below
    bars = base.mark_bar().encode(
        x=alt.X("rate:Q", title="Tỷ lệ toàn tỉnh (%) / Province rate (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("status:N", scale=alt.Scale(domain=["Đạt / Met", "Chưa đạt / Not met"],
                                                    range=["#1a9850", "#d73027"]),
                        legend=alt.Legend(title=None, orient="bottom")))
    target = base.mark_tick(color="black", thickness=3, size=18).encode(x="target_pct:Q")
    labels = base.mark_text(align="left", dx=6, fontSize=10).encode(x=alt.value(445), text="units_text:N")
    chart = (bars + target + labels).properties(width=440, height=alt.Step(34),
                                                title=f"Tháng / Month {rows[0]['period']}")
    s.svgs = [svg(chart, "kpis")]
    s.note = ("Thanh: tỷ lệ chung của các đơn vị (tổng tử số / tổng mẫu số); vạch đen: chỉ tiêu mục tiêu / "
              "Bars: the units' pooled rate (sum of numerators / sum of denominators); black tick: the target.")
    return s


def service_index(reader: Reader) -> Section:
    s = Section("s766", "Chỉ số phục vụ (Quyết định 766) theo nhóm và đơn vị",
                "Decision 766 service index by group and unit")
    rows = reader.rows("""
        with latest as (select max(period) as period from marts.rpt_service_index where period like '____-__')
        select r.unit_code, coalesce(max(u.unit_name), r.unit_code) as unit_name, r.period,
               r.group_code, max(r.group_name) as group_name, max(r.group_name_en) as group_name_en,
               max(r.group_score) as group_score, max(r.total_score) as total_score
        from marts.rpt_service_index r
        left join marts.dim_unit u on u.unit_key = r.unit_key
        where r.period = (select period from latest)
        group by r.unit_code, r.period, r.group_code
        order by max(r.total_score) nulls first, r.unit_code, r.group_code""")
    if not rows:
        s.empty_reason = "rpt_service_index"
        return s
    units = list(dict.fromkeys(r["unit_code"] for r in rows))
    shown = set(units[:MAX_ROWS])
    data = [dict(r, unit=f"{r['unit_name']} ({r['unit_code']})", group=f"{r['group_name']} / {r['group_name_en']}")
            for r in rows if r["unit_code"] in shown]
    order = list(dict.fromkeys(d["unit"] for d in data))
    chart = alt.Chart(alt.Data(values=data)).mark_bar().encode(
        y=alt.Y("unit:N", sort=order, title=None),
        x=alt.X("group_score:Q", stack="zero", title="Điểm (tối đa 100) / Score (out of 100)",
                scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("group:N", title="Nhóm / Group",
                        legend=alt.Legend(orient="bottom", columns=2, labelLimit=320)),
    ).properties(width=520, height=alt.Step(14), title=f"Tháng / Month {rows[0]['period']}")
    s.svgs = [svg(chart, "s766")]
    s.note = (f"{len(order)} đơn vị có tổng điểm thấp nhất (trên {len(units)}) / "
              f"the {len(order)} units with the lowest total (of {len(units)}).")
    return s


def submission_matrix(reader: Reader) -> Section:
    s = Section("status", "Tình hình nộp báo cáo kỳ gần nhất đã đến hạn", "Submission status of the latest due period")
    rows = reader.rows("""
        with due as (
            -- per kind, the latest period whose deadline has passed (else the earliest still to come)
            select kind, coalesce(max(period) filter (where deadline_date < current_date), min(period)) as period
            from marts.rpt_submission_status group by kind
        )
        select r.unit_code, coalesce(r.unit_name, r.unit_code) as unit_name, r.kind, r.period, r.status,
               r.deadline_date, r.submitted_at
        from marts.rpt_submission_status r join due using (kind, period)
        order by r.unit_code, r.kind""")
    if not rows:
        s.empty_reason = "rpt_submission_status"
        return s
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    # worst first: missing, then rejected, then late
    flagged = sorted((r for r in rows if r["status"] in WORST),
                     key=lambda r: (WORST.index(r["status"]), r["unit_code"]))
    flagged_units = list(dict.fromkeys(r["unit_code"] for r in flagged))
    shown = set(flagged_units[:MAX_ROWS]) or {rows[0]["unit_code"]}
    data = []
    for r in rows:
        if r["unit_code"] not in shown:
            continue
        vi, en, _ = STATUS.get(r["status"], (r["status"], r["status"], "#000"))
        kvi, ken = KIND_WORDS.get(r["kind"], (r["kind"], r["kind"]))
        data.append(dict(r, unit=f"{r['unit_name']} ({r['unit_code']})", status_text=f"{vi} / {en}",
                         kind_text=f"{kvi} {r['period']}"))
    label = {d["unit_code"]: d["unit"] for d in data}
    chart = alt.Chart(alt.Data(values=data)).mark_rect(stroke="white").encode(
        x=alt.X("kind_text:N", title=None, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("unit:N", title=None, axis=alt.Axis(labelLimit=300), sort=list(dict.fromkeys(
            label[u] for u in flagged_units if u in label))),  # the worst first
        color=alt.Color("status_text:N", title="Tình trạng / Status",
                        scale=alt.Scale(domain=[f"{v[0]} / {v[1]}" for v in STATUS.values()],
                                        range=[v[2] for v in STATUS.values()]),
                        legend=alt.Legend(orient="bottom", columns=3)),
    ).properties(width=alt.Step(150), height=alt.Step(16))
    s.svgs = [svg(chart, "status")]
    summary = "; ".join(f"{STATUS.get(k, (k, k))[0]} / {STATUS.get(k, (k, k))[1]}: {v}"
                        for k, v in sorted(counts.items()))
    s.note = (f"Đơn vị × loại báo cáo: {summary}. Ma trận chỉ hiện các đơn vị trễ hạn, chưa nộp hoặc bị từ chối "
              f"({len(flagged_units)}) / Unit × kind counts as above; the matrix shows only the units late, "
              f"missing or rejected ({len(flagged_units)}).")
    late = flagged[:TABLE_ROWS]
    if late:
        body = "".join(
            f"<tr><td>{_e(r['unit_code'])}</td><td>{_e(r['unit_name'])}</td>"
            f"<td>{_e(' / '.join(KIND_WORDS.get(r['kind'], (r['kind'],))))}</td>"
            f"<td>{_e(r['period'])}</td><td>{_e(' / '.join(STATUS.get(r['status'], (r['status'],))[:2]))}</td>"
            f"<td>{_e(r['deadline_date'])}</td><td>{_e((r['submitted_at'] or '')[:16].replace('T', ' '))}</td></tr>"
            for r in late)
        s.extra = ("<table><tr><th>Mã / Code</th><th>Đơn vị / Unit</th><th>Loại / Kind</th><th>Kỳ / Period</th>"
                   "<th>Tình trạng / Status</th><th>Hạn / Deadline</th><th>Nộp lúc / Submitted</th></tr>"
                   f"{body}</table>")
        if len(flagged) > len(late):
            more = len(flagged) - len(late)
            s.extra += f"<p class='note'>… và {more} dòng nữa / and {more} more.</p>"
    return s


TITLES = {  # a section's title when its mart cannot be read at all
    "par_ranking": ("Xếp hạng chỉ số CCHC theo năm", "PAR index ranking per year"),
    "content_areas": ("Điểm theo lĩnh vực", "Content-area scores"),
    "on_time_heatmap": ("Tỷ lệ giải quyết hồ sơ đúng hạn", "On-time rate"),
    "it_kpis": ("Chỉ tiêu ứng dụng CNTT", "IT-adoption KPIs"),
    "service_index": ("Chỉ số phục vụ 766", "Decision 766 service index"),
    "submission_matrix": ("Tình hình nộp báo cáo", "Submission status"),
}
SECTIONS = [par_ranking, content_areas, on_time_heatmap, it_kpis, service_index, submission_matrix]

CSS = """
body{font-family:"Noto Sans","DejaVu Sans",Arial,sans-serif;margin:1.5rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem;margin-bottom:.2rem} h1 small,h2 small{display:block;font-weight:normal;color:#666}
h2{font-size:1.2rem;border-bottom:2px solid #2c7fb8;padding-bottom:.2rem;margin-top:2rem}
figure{margin:.5rem 0;overflow-x:auto} .note{color:#444;font-size:.9rem}
.empty{background:#fff3cd;padding:.5rem 1rem} nav a{margin-right:1rem}
table{border-collapse:collapse;font-size:.85rem} td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
"""


def _section_html(s: Section) -> str:
    head = f"<h2 id='{s.key}'>{_e(s.title_vi)}<small>{_e(s.title_en)}</small></h2>"
    if s.empty_reason:
        return (f"<section class='chart-section' data-empty='1'>{head}<p class='empty'>Chưa có số liệu "
                f"(marts.{_e(s.empty_reason)}) / No data yet (marts.{_e(s.empty_reason)}).</p></section>")
    figures = "".join(f"<figure class='chart'>{x}</figure>" for x in s.svgs or [])
    note = f"<p class='note'>{s.note}</p>" if s.note else ""
    return f"<section class='chart-section'>{head}{note}{figures}{s.extra}</section>"


def render(sections: list[Section], built_at: datetime, report_href: str | None) -> str:
    """The page's HTML: no script, no external resource."""
    nav = "".join(f"<a href='#{s.key}'>{_e(s.title_vi)}</a>" for s in sections)
    report = (f"<p><a href='{_e(report_href)}'>Báo cáo lần chạy / Run report</a></p>" if report_href else "")
    return (
        "<!doctype html><html lang='vi'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">"
        "<title>Bảng điều hành CCHC / PAR dashboard</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>Bảng điều hành cải cách hành chính<small>Administrative reform dashboard</small></h1>"
        f"<p class='note'>Số liệu từ kho dữ liệu (lược đồ marts, vai trò bi_reader), lập lúc "
        f"{_e(built_at.strftime('%d/%m/%Y %H:%M'))} / Figures from the warehouse marts (read as bi_reader), "
        f"built {_e(built_at.isoformat(timespec='minutes'))}.</p>{report}<nav>{nav}</nav>"
        + "".join(_section_html(s) for s in sections)
        + "</body></html>"
    )


def build_dashboard(dsn: str, path: Path, *, unit_code: str | None = None, report_href: str | None = None) -> Path:
    """Write the dashboard page to `path`; returns it. Raises psycopg errors only when the database
    cannot be reached or bi_reader cannot be assumed (a section's own failure is shown on the page)."""
    reader = Reader(dsn)
    sections: list[Section] = []
    try:
        for make in SECTIONS:
            try:
                section = make(reader, unit_code) if make is content_areas else make(reader)
            except psycopg.Error as exc:  # a mart missing or not readable: the rest of the page still helps
                log.warning("dashboard section %s: %s", make.__name__, exc)
                vi, en = TITLES[make.__name__]
                section = Section(make.__name__, vi, en, empty_reason=f"{type(exc).__name__}")
            sections.append(section)
    finally:
        reader.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(sections, datetime.now(VN), report_href), encoding="utf-8")
    return path


def write_for_run(dsn: str, run_folder: Path) -> Path | None:
    """The nightly hook: `<run folder>/dashboard.html`, copied to `<reports>/latest/dashboard.html`.
    Never raises: the run report must not fail because of its dashboard (the failure is logged)."""
    try:
        page = build_dashboard(dsn, run_folder / "dashboard.html", report_href="index.html")
        latest = run_folder.parent / "latest"
        latest.mkdir(exist_ok=True)
        text = page.read_text(encoding="utf-8").replace(
            "href='index.html'", f"href='../{html.escape(run_folder.name)}/index.html'")
        (latest / "dashboard.html").write_text(text, encoding="utf-8")
        return page
    except Exception:
        log.exception("building the dashboard of %s failed", run_folder)
        return None


