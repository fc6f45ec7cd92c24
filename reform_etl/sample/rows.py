"""The sample province's rows: its reference codes (from the seeds), its dates, and one generator per kind
(PAR scores, II.06a counts, IT KPIs, 766 service index, record-level dossiers). Deterministic: each takes
the caller's random.Random.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from reform_etl.config import settings

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


def read_seed(name: str) -> list[dict[str, str]]:
    path = settings().seeds / f"{name}.csv"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def load_reference() -> Reference:
    criteria = read_seed("par_criteria")
    leaves = [
        (row["criterion_code"], float(row["max_points"]))
        for row in criteria
        if row.get("is_leaf", "true").lower() in ("true", "1", "t")
    ]
    fields = [row["field_code"] for row in read_seed("fields")]
    kpis = [row["kpi_code"] for row in read_seed("kpis")]
    departments = [
        (row["unit_code"], row["unit_name"]) for row in read_seed("departments") if row["province_code"] == PROVINCE
    ]
    return Reference(leaves, fields, kpis, departments)


def months(first: str, last: str) -> Iterator[str]:
    year, month = int(first[:4]), int(first[5:7])
    while f"{year:04d}-{month:02d}" <= last:
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)



def thousands(value: int, sep: str) -> str:
    return f"{value:,}".replace(",", sep)


def dossier_series(rng: random.Random, code: str, periods: list[str], scale: int) -> list[dict]:
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


def par_rows(rng: random.Random, codes: list[str], years: list[int], leaves: list[tuple[str, float]]) -> list[dict]:
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


def kpi_rows(rng: random.Random, codes: list[str], periods: list[str], kpis: list[str]) -> list[dict]:
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


def service_index_rows(rng: random.Random, codes: list[str], period: str) -> list[dict]:
    """Decision 766 counts as the portal publishes them, for the catalogue's metrics (seed service_index_metrics):
    province-wide metrics on the province's own row (the portal's id H44), online services as a published score
    only, and progress from the portal for every other unit (the others fall back on their II.06a figures)."""
    metrics = read_seed("service_index_metrics")
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


def dossier_records(rng: random.Random, codes: list[str], fields: list[str], first: date, days: int) -> list[dict]:
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
