"""Generate the seeds of `seeds/` that come from elsewhere (run: `python -m reform_etl.reference_data`).

The seed CSVs are the source of the reference data, committed, so CI and the nightly DAG never
regenerate them. Two of them are generated, because they are read from other sources: re-run this
script when the `vietnamadminunits` package or the portal reference file changes, and commit the diff.
The curated catalogues (PAR framework and criteria, bands, fields, KPIs, Decision 766 metrics) are
edited in their CSV directly.

* `units.csv` — every legacy province and district (valid until 2025-06-30) and every 2025
  province and commune-level unit (valid from 2025-07-01), with the successor of each
  legacy unit, all read from the `vietnamadminunits` package (never a typed list).
  Legacy wards (10,000+ rows) are left out: no submission is ever made by a legacy ward.
  A legacy district's successor is the 2025 province that absorbed its province (districts
  were abolished, not merged into one commune, so no single commune succeeds them).
* `departments.csv` — provincial departments (sở, ban), identified by their electronic id
  (mã định danh điện tử), from the PROVINCE-level rows of the portal reference file.

Edited by hand: `par_frameworks.csv` / `par_criteria.csv` / `par_bands.csv` (a sample district
PAR framework and the default bands; a province replaces them with its own), `fields.csv`,
`kpis.csv`, `service_index_metrics.csv` (one-stop fields, IT KPIs, the Decision 766 metric rules).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from vietnamadminunits.database import query

from reform_etl.config import settings
from reform_etl.units import REFORM_DATE

BEGINNING = "1900-01-01"  # "before the warehouse's history starts"
LEGACY_END = "2025-06-30"
END_OF_TIME = "9999-12-31"
PORTAL_FILE = "portal766_progress_phutho_2026.csv"

# The portal's province electronic id prefix -> GSO province code (2025 registry).
PORTAL_PROVINCES = {"H44": "25"}


def shared_reference_dir() -> Path:
    """`../shared/reference` beside the repo, or REFORM_SHARED_REFERENCE."""
    env = os.environ.get("REFORM_SHARED_REFERENCE")
    if env:
        return Path(env).resolve()
    return settings().home.parent / "shared" / "reference"


# --------------------------------------------------------------------------- units


def _province_successors() -> dict[str, str]:
    """Legacy province key -> 2025 province key, from the package's converter data."""
    data = json.loads(resources.files("vietnamadminunits").joinpath("data/converter_2025.json").read_text("utf-8"))
    return {old: new for new, olds in data["DICT_PROVINCE"].items() for old in olds}


def unit_rows() -> list[dict[str, str]]:
    new_provinces = {
        r["provinceKey"]: r
        for r in query("select distinct provinceCode, province, provinceKey from admin_units order by provinceCode")
    }
    successor_key = _province_successors()
    rows: list[dict[str, str]] = []

    legacy_provinces = query(
        "select distinct provinceCode, province, provinceKey from admin_units_legacy order by provinceCode"
    )
    legacy_province_of = {}
    for p in legacy_provinces:
        new = new_provinces[successor_key[p["provinceKey"]]]
        legacy_province_of[p["provinceCode"]] = p
        rows.append(
            _unit(
                p["provinceCode"],
                p["province"],
                _province_type(p["province"]),
                "province",
                p["provinceCode"],
                p["province"],
                "",
                BEGINNING,
                LEGACY_END,
                new["provinceCode"],
            )
        )
    for p in new_provinces.values():
        rows.append(
            _unit(
                p["provinceCode"],
                p["province"],
                _province_type(p["province"]),
                "province",
                p["provinceCode"],
                p["province"],
                "",
                REFORM_DATE.isoformat(),
                END_OF_TIME,
                "",
            )
        )
    for d in query(
        "select distinct districtCode, district, districtType, provinceCode, province, provinceKey "
        "from admin_units_legacy order by districtCode"
    ):
        new = new_provinces[successor_key[d["provinceKey"]]]
        rows.append(
            _unit(
                d["districtCode"],
                d["district"],
                d["districtType"],
                "district",
                d["provinceCode"],
                d["province"],
                d["provinceCode"],
                BEGINNING,
                LEGACY_END,
                new["provinceCode"],
            )
        )
    for w in query("select wardCode, ward, wardType, provinceCode, province from admin_units order by wardCode"):
        rows.append(
            _unit(
                w["wardCode"],
                w["ward"],
                w["wardType"],
                "commune",
                w["provinceCode"],
                w["province"],
                w["provinceCode"],
                REFORM_DATE.isoformat(),
                END_OF_TIME,
                "",
            )
        )
    rows.sort(key=lambda r: (r["level"] != "province", r["unit_code"], r["valid_from"]))
    return rows


def _province_type(name: str) -> str:
    return "Thành phố" if name.startswith("Thành phố") else "Tỉnh"


def _unit(code, name, unit_type, level, province_code, province_name, parent, valid_from, valid_to, successor):
    return {
        "unit_code": code,
        "unit_name": name,
        "unit_type": unit_type,
        "level": level,
        "province_code": province_code,
        "province_name": province_name,
        "parent_unit_code": parent,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "successor_unit_code": successor,
        "source": "vietnamadminunits " + ("legacy" if valid_to == LEGACY_END else "2025"),
    }


def department_rows(reference_dir: Path | None = None) -> list[dict[str, str]]:
    path = (reference_dir or shared_reference_dir()) / PORTAL_FILE
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["portal_level"] != "PROVINCE":
                continue
            prefix = r["portal_code"].split(".")[0]
            province_code = PORTAL_PROVINCES[prefix]
            name = r["unit_name"].split(" - ")[0].strip()
            rows.append(
                {
                    "province_code": province_code,
                    "unit_code": r["portal_code"],
                    "unit_name": name,
                    "unit_type": _department_type(name),
                    "valid_from": REFORM_DATE.isoformat(),
                    "valid_to": END_OF_TIME,
                    "source": f"national portal (Decision 766), {PORTAL_FILE}",
                }
            )
    rows.sort(key=lambda r: (r["province_code"], [int(p) if p.isdigit() else p for p in r["unit_code"].split(".")]))
    return rows


def _department_type(name: str) -> str:
    for prefix in ("Sở", "Ban", "Văn phòng", "Thanh tra"):
        if name.startswith(prefix):
            return prefix
    return "Cơ quan"


# --------------------------------------------------------------------------- write


def write_csv(path: Path, rows: Iterable[dict[str, str]]) -> int:
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def generate(seeds_dir: Path | None = None, *, with_departments: bool = True) -> dict[str, int]:
    seeds_dir = seeds_dir or settings().seeds
    out = {"units": write_csv(seeds_dir / "units.csv", unit_rows())}
    if with_departments:
        out["departments"] = write_csv(seeds_dir / "departments.csv", department_rows())
    return out


def main() -> None:
    for name, count in generate().items():
        print(f"seeds/{name}.csv: {count} rows")


if __name__ == "__main__":
    main()
