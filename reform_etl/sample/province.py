"""The sample province's submissions, file by file: what each file holds and which of its rows validation
must quarantine or warn about (see `reform_etl.sample`).
"""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

from reform_etl import units
from reform_etl.config import settings
from reform_etl.sample.files import Writer, official_forms, par_sheet
from reform_etl.sample.rows import (
    PROVINCE,
    arrived,
    dossier_records,
    dossier_series,
    kpi_rows,
    load_reference,
    months,
    par_rows,
    service_index_rows,
    thousands,
)


def generate(out: Path | None = None, seed: int = 2026) -> list[Path]:
    """Write the sample province's submissions into `out` (a landing folder); returns the files."""
    out = (out or settings().landing).resolve()
    rng = random.Random(seed)
    ref = load_reference()
    districts = [u.code for u in units.legacy_districts(PROVINCE)]
    communes = [u.code for u in units.communes_2025(PROVINCE)]
    departments = [code for code, _ in ref.departments]
    new_units = communes + departments
    w = Writer(out)
    files: list[Path] = []

    # --- PAR index scores: districts 2020-2024, communes 2025 -------------------------------
    par = par_rows(rng, districts, [2020, 2021, 2022, 2023, 2024], ref.leaves)
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
    files.append(par_sheet(out, [r for r in par if r["year"] == 2023 and r["unit_code"] == "232"]))
    communes_par = par_rows(rng, communes, [2025], ref.leaves)
    files.append(w.write("par_scores", "2025_cap_xa.csv", arrived("2026-01-20"), communes_par, vietnamese=True))

    # --- One-stop dossier statistics (II.06a), monthly --------------------------------------
    old_periods = list(months("2024-01", "2025-06"))
    new_periods = list(months("2025-07", "2026-10"))
    old = [r for code in districts for r in dossier_series(rng, code, old_periods, 900)]
    new = [r for code in new_units for r in dossier_series(rng, code, new_periods, 300)]
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
        row["received_online"] = thousands(row["received_online"], ".")
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

    files += official_forms(out, random.Random(seed + 1))

    # --- IT-adoption KPIs, monthly ----------------------------------------------------------
    kpi_old = kpi_rows(rng, districts, old_periods, ref.kpis)
    kpi_new = kpi_rows(rng, new_units, new_periods, ref.kpis)
    kpi_new[2]["numerator"] = kpi_new[2]["denominator"] + 10  # numerator > denominator: quarantined
    files.append(w.write("it_kpis", "cntt_cap_huyen_2024-2025.xlsx", arrived("2025-07-04"), kpi_old, vietnamese=True))
    files.append(w.write("it_kpis", "cntt_cap_xa_2025-2026.csv", arrived("2026-11-05"), kpi_new, vietnamese=False))

    # --- Record-level dossiers of a few communes, September-October 2026 ----------------------
    records = dossier_records(rng, communes[:8], ref.fields, date(2026, 9, 1), 61)
    files.append(w.write("dossiers", "ho_so_2026-09_10.csv", arrived("2026-11-02"), records, vietnamese=True))

    # --- Decision 766 service index: the portal's counts for October 2026 (province, 6 communes, 2 departments) --
    index_rows = service_index_rows(rng, communes[:6] + departments[:2], "2026-10")
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
