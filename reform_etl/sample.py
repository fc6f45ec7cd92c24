"""A deterministic sample province for demos and tests: Phú Thọ (GSO 25).

Units come from the official registry (`vietnamadminunits`): its 13 legacy districts report
until 2025-06, its 148 commune-level units and its departments (electronic ids, from the
departments seed) from 2025-07. Codes for criteria, fields and KPIs come from the seeds, so
the sample always matches the reference data. The files deliberately mix what provinces
really send: CSV and XLSX, the official II.06a form as one-stop software prints it (xlsx and
Excel 97 .xls), Vietnamese labels and English keys, title rows above the header,
decimal commas, thousands separators, codes that lost their leading zeros, several period
spellings, one resubmission that supersedes an earlier file, a file dropped in the wrong
folder, and a few rows that validation must quarantine or warn about.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from openpyxl import Workbook

from reform_etl import units
from reform_etl.config import settings
from reform_etl.kinds import KIND_SPECS

PROVINCE = "25"
VN = timezone(timedelta(hours=7))


def arrived(day: str) -> datetime:
    """When a file 'arrived' (its modification time): deterministic, so arrival order and
    on-time / late submission status are the same on every machine."""
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=VN)


@dataclass(frozen=True)
class Reference:
    leaves: list[tuple[str, float]]  # (criterion_code, max_points) of the framework's leaves
    fields: list[str]
    kpis: list[str]
    departments: list[tuple[str, str]]  # (electronic id, name)


def _read_seed(name: str) -> list[dict[str, str]]:
    path = settings().seeds / f"{name}.csv"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def load_reference() -> Reference:
    criteria = _read_seed("par_criteria")
    leaves = [
        (row["criterion_code"], float(row["max_points"]))
        for row in criteria
        if row.get("is_leaf", "true").lower() in ("true", "1", "t")
    ]
    fields = [row["field_code"] for row in _read_seed("fields")]
    kpis = [row["kpi_code"] for row in _read_seed("kpis")]
    departments = [
        (row["unit_code"], row["unit_name"]) for row in _read_seed("departments") if row["province_code"] == PROVINCE
    ]
    return Reference(leaves, fields, kpis, departments)


def months(first: str, last: str) -> Iterator[str]:
    year, month = int(first[:4]), int(first[5:7])
    while f"{year:04d}-{month:02d}" <= last:
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


class _Writer:
    """Writes one landing file as CSV or XLSX with the header style asked for."""

    def __init__(self, out: Path):
        self.out = out

    def write(
        self,
        kind: str,
        name: str,
        at: datetime,
        rows: list[dict],
        *,
        vietnamese: bool,
        title: bool = False,
        columns: list[str] | None = None,
        delimiter: str = ",",
        bom: bool = False,
    ) -> Path:
        spec = KIND_SPECS[kind]
        keys = columns or [k for k in spec.keys if any(k in row for row in rows)]
        header = [spec.column(k).label_vi if vietnamese else k for k in keys]
        path = self.out / kind / name
        path.parent.mkdir(parents=True, exist_ok=True)
        titles = [[f"TỈNH PHÚ THỌ - {spec.label_vi.upper()}"], [f"(Kèm theo báo cáo, tệp {name})"], []] if title else []
        body = [[row.get(k) for k in keys] for row in rows]
        if path.suffix == ".xlsx":
            workbook = Workbook()
            sheet = workbook.active
            sheet.title = kind
            for line in [*titles, header, *body]:
                sheet.append(line)
            if title:
                sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(keys))
            _save_reproducibly(workbook, path)
        else:
            with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
                writer = csv.writer(handle, delimiter=delimiter)
                writer.writerows([*titles, header, *[["" if v is None else v for v in line] for line in body]])
        # Arrival order matters (a resubmission supersedes what came before): set it explicitly.
        os.utime(path, (at.timestamp(), at.timestamp()))
        return path


def _save_reproducibly(workbook: Workbook, path: Path) -> None:
    """Same seed, same bytes: pin the timestamps openpyxl and zip would take from the clock."""
    buffer = io.BytesIO()
    workbook.save(buffer)
    stamp = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "docProps/core.xml":
                data = stamp.sub(rb"\g<1>2026-11-01T00:00:00Z\g<2>", data)
            target.writestr(
                zipfile.ZipInfo(item.filename, date_time=(2026, 11, 1, 0, 0, 0)),
                data,
                compress_type=zipfile.ZIP_DEFLATED,
            )


def _official_forms(out: Path, rng: random.Random) -> list[Path]:
    """Thanh Ba's official II.06a forms for March (xlsx, 13 columns) and April 2025 (Excel 97 .xls, another
    vendor's column order), by field: sent after the half-year file, they supersede its rows for those months."""
    from reform_etl.forms import printing

    files = []
    for month, layout, period_line, name in (
        ("2025-03", printing.VENDOR_A, "Kỳ báo cáo: Tháng 3/2025", "bieu_II06a_thanh_ba_2025-03.xlsx"),
        ("2025-04", printing.VENDOR_B, "(Từ ngày 01/04/2025 đến ngày 30/04/2025)", "bieu_II06a_thanh_ba_2025-04.xls"),
    ):
        body: list[tuple] = [("section", "I", "Huyện, thị xã, thành phố")]
        for number, field in enumerate(("Hộ tịch", "Lĩnh vực Đất đai", "Thành lập và hoạt động của hộ kinh doanh"), 1):
            [counts] = _dossier_series(rng, "232", [month], 120)
            body.append(("field", number, field, counts))
        body.append(("trong_do", "Trong đó: hồ sơ trực tuyến toàn trình", counts))
        rows, merges = printing.sheet(layout, "UBND huyện Thanh Ba", period_line, body)
        path = out / "dossier_stats" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".xlsx":
            _save_reproducibly(printing.workbook("Biểu II.06a", rows, merges), path)
        else:
            printing.write_xls(path, "Biểu II.06a", rows, merges)
        at = arrived("2025-07-10").timestamp()
        os.utime(path, (at, at))
        files.append(path)
    return files


def _par_sheet(out: Path, rows: list[dict]) -> Path:
    """Thanh Ba's 2023 scoring sheet as the province's template prints it (areas I … VII, subtotals, TỔNG ĐIỂM),
    sent after the province's 2023 CSV: it supersedes Thanh Ba's 2023 rows there with the same scores."""
    from reform_etl.forms import printing

    criteria = _read_seed("par_criteria")
    scores = {r["criterion_code"]: (float(r["self_score"]), float(r["appraised_score"])) for r in rows}
    cells, merges = printing.par_sheet("UBND huyện Thanh Ba", 2023, criteria, scores)
    path = out / "par_scores" / "bang_cham_diem_2023_thanh_ba.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_reproducibly(printing.workbook("Chấm điểm", cells, merges), path)
    at = arrived("2024-02-01").timestamp()
    os.utime(path, (at, at))
    return path


def _thousands(value: int, sep: str) -> str:
    return f"{value:,}".replace(",", sep)


def _dossier_series(rng: random.Random, code: str, periods: list[str], scale: int) -> list[dict]:
    """Consistent II.06a counts: carried over = last month's pending; received = resolved + pending."""
    rows, carried = [], rng.randint(0, scale // 10)
    for period in periods:
        online, direct = rng.randint(scale // 4, scale), rng.randint(scale // 5, scale)
        postal = rng.randint(0, scale // 20)
        total = carried + online + direct + postal
        resolved = int(total * rng.uniform(0.80, 0.97))
        late = int(resolved * rng.uniform(0.0, 0.08))
        early = int((resolved - late) * rng.uniform(0.2, 0.6))
        pending = total - resolved
        overdue = int(pending * rng.uniform(0.0, 0.2))
        rows.append(
            {
                "unit_code": code,
                "period": period,
                "field_code": None,
                "received_carried_over": carried,
                "received_online": online,
                "received_direct": direct,
                "received_postal": postal,
                "resolved_early": early,
                "resolved_on_time": resolved - late - early,
                "resolved_late": late,
                "pending_in_time": pending - overdue,
                "pending_overdue": overdue,
            }
        )
        carried = pending
    return rows


def _par_rows(rng: random.Random, codes: list[str], years: list[int], leaves: list[tuple[str, float]]) -> list[dict]:
    rows = []
    for code in codes:
        skill = rng.uniform(0.55, 0.95)
        for year in years:
            drift = rng.uniform(-0.08, 0.08)
            for leaf, max_points in leaves:
                appraised = round(max_points * min(1.0, max(0.0, skill + drift + rng.uniform(-0.15, 0.15))) * 4) / 4
                own = min(max_points, appraised + rng.choice([0, 0, 0.25, 0.5]))
                rows.append(
                    {
                        "unit_code": code,
                        "year": year,
                        "criterion_code": leaf,
                        "self_score": own,
                        "appraised_score": appraised,
                        "evidence": f"Báo cáo số {rng.randint(1, 300)}/BC-UBND",
                    }
                )
    return rows


def _kpi_rows(rng: random.Random, codes: list[str], periods: list[str], kpis: list[str]) -> list[dict]:
    rows = []
    for code in codes:
        for period in periods:
            for kpi in kpis:
                denominator = rng.randint(50, 2000)
                rows.append(
                    {
                        "unit_code": code,
                        "period": period,
                        "kpi_code": kpi,
                        "denominator": denominator,
                        "numerator": int(denominator * rng.uniform(0.6, 1.0)),
                    }
                )
    return rows


def _service_index_rows(rng: random.Random, codes: list[str], period: str) -> list[dict]:
    """Decision 766 counts as the portal publishes them, for the catalogue's metrics (seed service_index_metrics):
    province-wide metrics on the province's own row (the portal's id H44), online services as a published score
    only, and progress from the portal for every other unit (the others fall back on their II.06a figures)."""
    metrics = _read_seed("service_index_metrics")
    rows = []
    for number, code in enumerate(["H44", *codes]):
        for m in metrics:
            wide = m["is_province_wide"] == "true"
            if wide != (code == "H44") or (m["metric_code"] == "PROGRESS_ON_TIME" and number % 2):
                continue
            if m["score_method"] == "published":
                rows.append({"unit_code": code, "period": period, "metric_code": m["metric_code"],
                             "published_score": f"{rng.uniform(5, 9):.2f}".replace(".", ",")})
                continue
            if m["metric_code"] == "ELECTRONIC_CERTIFIED_COPY":  # published without counts
                rows.append({"unit_code": code, "period": period, "metric_code": m["metric_code"]})
                continue
            denominator = rng.choice([0, rng.randint(20, 3000)]) if m["group_code"] == "SATISFACTION" else \
                rng.randint(20, 3000)
            rows.append({"unit_code": code, "period": period, "metric_code": m["metric_code"],
                         "denominator": denominator, "numerator": int(denominator * rng.uniform(0.3, 1.0))})
    return rows


def _dossier_records(rng: random.Random, codes: list[str], fields: list[str], first: date, days: int) -> list[dict]:
    rows, channels = [], ["online", "direct", "postal"]
    for code in codes:
        for n in range(rng.randint(120, 220)):
            received = datetime.combine(first + timedelta(days=rng.randrange(days)), datetime.min.time()) + timedelta(
                hours=rng.randint(7, 16), minutes=rng.randint(0, 59)
            )
            due = received + timedelta(days=rng.choice([3, 5, 7, 10, 15]))
            outcome = rng.random()
            completed = (
                None
                if outcome > 0.9
                else due - timedelta(days=rng.randint(0, 3))
                if outcome < 0.85
                else (due + timedelta(days=rng.randint(1, 4)))
            )
            rows.append(
                {
                    "dossier_id": f"{code}-{received:%y%m}-{n:05d}",
                    "unit_code": code,
                    "field_code": rng.choice(fields),
                    "procedure_code": f"1.{rng.randint(1000, 9999):06d}",
                    "channel": rng.choice(channels),
                    "received_at": received.strftime("%d/%m/%Y %H:%M"),
                    "due_at": due.strftime("%d/%m/%Y %H:%M"),
                    "completed_at": completed.strftime("%d/%m/%Y %H:%M") if completed else None,
                    "status": "completed" if completed else "processing",
                    "satisfied": rng.choice(["có", "có", "có", "không", None]),
                }
            )
    return rows


def generate(out: Path | None = None, seed: int = 2026) -> list[Path]:
    """Write the sample province's submissions into `out` (a landing folder); returns the files."""
    out = (out or settings().landing).resolve()
    rng = random.Random(seed)
    ref = load_reference()
    districts = [u.code for u in units.legacy_districts(PROVINCE)]
    communes = [u.code for u in units.communes_2025(PROVINCE)]
    departments = [code for code, _ in ref.departments]
    new_units = communes + departments
    w = _Writer(out)
    files: list[Path] = []

    # --- PAR index scores: districts 2020-2024, communes 2025 -------------------------------
    par = _par_rows(rng, districts, [2020, 2021, 2022, 2023, 2024], ref.leaves)
    for row in par:  # Vietnamese workbook with decimal commas
        if row["year"] <= 2022:
            row["self_score"] = str(row["self_score"]).replace(".", ",")
            row["appraised_score"] = str(row["appraised_score"]).replace(".", ",")
    early = [r for r in par if r["year"] <= 2022]
    early[5]["appraised_score"] = "99"  # above the leaf's max: quarantined
    files.append(
        w.write("par_scores", "2020-2022_tham_dinh.xlsx", arrived("2023-01-10"), early, vietnamese=True, title=True)
    )
    files.append(
        w.write(
            "par_scores",
            "2023_par_scores.csv",
            arrived("2024-01-12"),
            [r for r in par if r["year"] == 2023],
            vietnamese=False,
        )
    )
    y2024 = [r for r in par if r["year"] == 2024]
    leaf_max = dict(ref.leaves)[y2024[7]["criterion_code"]]
    y2024[7]["self_score"], y2024[7]["appraised_score"] = leaf_max, 0.0  # differ by more than max / 2: a warning
    # 2024 arrives in two files: the self-assessment first, the council's appraisal later.
    files.append(
        w.write(
            "par_scores",
            "2024_tu_danh_gia.csv",
            arrived("2025-01-08"),
            y2024,
            vietnamese=True,
            bom=True,
            columns=["unit_code", "year", "criterion_code", "self_score", "evidence"],
        )
    )
    files.append(
        w.write(
            "par_scores",
            "2024_tham_dinh.xlsx",
            arrived("2025-01-14"),
            y2024,
            vietnamese=False,
            columns=["unit_code", "year", "criterion_code", "appraised_score"],
        )
    )
    files.append(_par_sheet(out, [r for r in par if r["year"] == 2023 and r["unit_code"] == "232"]))
    communes_par = _par_rows(rng, communes, [2025], ref.leaves)
    files.append(w.write("par_scores", "2025_cap_xa.csv", arrived("2026-01-20"), communes_par, vietnamese=True))

    # --- One-stop dossier statistics (II.06a), monthly --------------------------------------
    old_periods = list(months("2024-01", "2025-06"))
    new_periods = list(months("2025-07", "2026-10"))
    old = [r for code in districts for r in _dossier_series(rng, code, old_periods, 900)]
    new = [r for code in new_units for r in _dossier_series(rng, code, new_periods, 300)]
    y2024 = [
        dict(r, unit_code=int(r["unit_code"]), period=f"Tháng {int(r['period'][5:])}/{r['period'][:4]}")
        for r in old
        if r["period"] < "2025-01"
    ]
    files.append(
        w.write("dossier_stats", "2024_cap_huyen.xlsx", arrived("2025-01-04"), y2024, vietnamese=True, title=True)
    )
    h1 = [dict(r) for r in old if r["period"] >= "2025-01"]
    for row in h1:
        row["received_online"] = _thousands(row["received_online"], ".")
    # Carried over != last month's pending (a warning); pending grows alike so the month still balances.
    h1[3]["received_carried_over"] += 7
    h1[3]["pending_in_time"] += 7
    files.append(w.write("dossier_stats", "2025_6thang_dau.csv", arrived("2025-07-03"), h1, vietnamese=False))
    h2 = [
        dict(r, unit_code=r["unit_code"].lstrip("0"), period=f"{r['period'][5:]}/{r['period'][:4]}")
        for r in new
        if r["period"] < "2026-01"
    ]
    h2.append(dict(h2[0], unit_code="99999"))  # not a unit of the registry: quarantined
    files.append(
        w.write(
            "dossier_stats", "2025_6thang_cuoi_cap_xa.csv", arrived("2026-01-05"), h2, vietnamese=True, delimiter=";"
        )
    )
    y2026 = [
        dict(
            r,
            unit_code=int(r["unit_code"]) if r["unit_code"].isdigit() else r["unit_code"],
            period=f"T{int(r['period'][5:])}/{r['period'][:4]}",
        )
        for r in new
        if r["period"] >= "2026-01"
    ]
    y2026[10]["resolved_on_time"] += 5  # received != resolved + pending: quarantined
    files.append(
        w.write("dossier_stats", "2026_cap_xa.xlsx", arrived("2026-11-04"), y2026, vietnamese=False, title=True)
    )
    # Việt Trì corrects its June 2024 figures: this later file supersedes that part of 2024_cap_huyen.xlsx.
    fix = [dict(r) for r in old if r["unit_code"] == districts[0] and r["period"] == "2024-06"]
    fix[0]["resolved_early"] += 3
    fix[0]["resolved_on_time"] -= 3
    files.append(w.write("dossier_stats", "2024-06_viet_tri_bo_sung.csv", arrived("2025-02-10"), fix, vietnamese=True))

    files += _official_forms(out, random.Random(seed + 1))

    # --- IT-adoption KPIs, monthly ----------------------------------------------------------
    kpi_old = _kpi_rows(rng, districts, old_periods, ref.kpis)
    kpi_new = _kpi_rows(rng, new_units, new_periods, ref.kpis)
    kpi_new[2]["numerator"] = kpi_new[2]["denominator"] + 10  # numerator > denominator: quarantined
    files.append(w.write("it_kpis", "cntt_cap_huyen_2024-2025.xlsx", arrived("2025-07-04"), kpi_old, vietnamese=True))
    files.append(w.write("it_kpis", "cntt_cap_xa_2025-2026.csv", arrived("2026-11-05"), kpi_new, vietnamese=False))

    # --- Record-level dossiers of a few communes, September-October 2026 ----------------------
    records = _dossier_records(rng, communes[:8], ref.fields, date(2026, 9, 1), 61)
    files.append(w.write("dossiers", "ho_so_2026-09_10.csv", arrived("2026-11-02"), records, vietnamese=True))

    # --- Decision 766 service index: the portal's counts for October 2026 (province, 6 communes, 2 departments) --
    index_rows = _service_index_rows(rng, communes[:6] + departments[:2], "2026-10")
    index_rows[5]["published_score"] = "0,5"  # a published score our recomputation will not match: reconciliation
    index_rows.append(dict(index_rows[6], metric_code="CONG_KHAI"))  # not a metric of the catalogue: quarantined
    files.append(w.write("service_index", "chi_so_766_2026-10.csv", arrived("2026-11-06"), index_rows,
                         vietnamese=True))

    # --- A file dropped in the wrong folder: rejected, with the reason ----------------------
    misplaced = w.write("dossier_stats", "nham_thu_muc.csv", arrived("2026-11-03"), old[:3], vietnamese=True)
    target = out / "par_scores" / misplaced.name
    misplaced.replace(target)
    files.append(target)
    return files
