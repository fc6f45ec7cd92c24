"""Generate the seeds of `seeds/` that come from elsewhere (run: `python -m reform_etl.reference_data`).

The seed CSVs are the source of the reference data, committed, so CI and the nightly DAG never
regenerate them. Three of them are generated, because they are read from other sources: re-run this
script when the `vietnamadminunits` package or the portal reference files change, and commit the diff.

* `units.csv` — every legacy province and district (valid until 2025-06-30) and every 2025
  province and commune-level unit (valid from 2025-07-01), with the successor of each
  legacy unit, all read from the `vietnamadminunits` package (never a typed list).
  Legacy wards (10,000+ rows) are left out: no submission is ever made by a legacy ward.
  A legacy district's successor is the 2025 province that absorbed its province (districts
  were abolished, not merged into one commune, so no single commune succeeds them).
* `portal_units.csv` — communes' People's Committees by the electronic id the national portal
  uses (H44.125), matched by name to the 2025 communes (from the portal reference files).
* `departments.csv` — provincial departments (sở, ban), identified by their electronic id
  (mã định danh điện tử), from the PROVINCE-level rows of the portal reference file.

Edited by hand in their CSV: `par_frameworks.csv` / `par_criteria.csv` / `par_bands.csv` (a sample
district PAR framework and the default bands; a province replaces them with its own), `fields.csv`
(one-stop fields and the names forms print for them), `kpis.csv`, `service_index_metrics.csv` /
`service_index_groups.csv` (the Decision 766 catalogue as the national portal scores it, SPEC §2).
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from vietnamadminunits.database import query

from reform_etl import units
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
        rows.append(_province(p, BEGINNING, LEGACY_END, new["provinceCode"]))
    for p in new_provinces.values():
        rows.append(_province(p, REFORM_DATE.isoformat(), END_OF_TIME, ""))
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


def _province(p: dict[str, str], valid_from: str, valid_to: str, successor: str) -> dict[str, str]:
    """A province of either registry (a row of `admin_units` / `admin_units_legacy`): its own province."""
    name = p["province"]
    return _unit(p["provinceCode"], name, _province_type(name), "province", p["provinceCode"], name, "",
                 valid_from, valid_to, successor)


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


PORTAL_METRICS_FILE = "portal766_metrics_phutho_2026.csv"
PORTAL_EXPORTS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "portal766"


def portal_name_key(name: str) -> str:
    """A portal unit name as the registry spells it, for matching: "UBND xã Lâm Thao - Tỉnh Phú Thọ" and
    "UBND Phường Việt Trì" -> "xã lâm thao", "phường việt trì" (NFC, lower case, accents kept)."""
    text = unicodedata.normalize("NFC", name).split(" - ")[0].strip()
    for prefix in ("UBND ", "Ủy ban nhân dân ", "Uỷ ban nhân dân "):
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix):]
    return " ".join(text.lower().split())


def portal_unit_rows(reference_dir: Path | None = None) -> list[dict[str, str]]:
    """The province and its communes' People's Committees as the national portal names them (electronic id, e.g.
    H44.125), matched by name to the 2025 communes of `vietnamadminunits`; raises ValueError naming any name that
    matches no commune, or more than one."""
    folder = reference_dir or shared_reference_dir()
    named: dict[str, str] = {}
    for file in (PORTAL_FILE, PORTAL_METRICS_FILE):
        path = folder / file
        if not path.is_file():
            continue
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for r in csv.DictReader(fh):
                if r["portal_level"] == "COMMUNE":
                    named.setdefault(r["portal_code"], r["unit_name"])
    # The portal's own responses (captures kept as test fixtures) name further communes by code and name.
    for path in sorted([*folder.glob("*.json"), *PORTAL_EXPORTS.glob("*.json")]):
        data = json.loads(path.read_text(encoding="utf-8")).get("data") or {}
        for node in [*(data.get("children") or []), *(data.get("evaluation") or [])]:
            if node.get("departmentCode") and (node.get("level") or node.get("departmentLevel")) == "COMMUNE":
                named.setdefault(node["departmentCode"], node["departmentName"])
    # The province itself: the portal names it by its prefix (H44), the warehouse by its GSO code.
    rows = [{"province_code": code, "portal_code": prefix, "portal_name": units.province_name(code, legacy=False),
             "unit_code": code, "unit_name": units.province_name(code, legacy=False),
             "valid_from": REFORM_DATE.isoformat(), "valid_to": END_OF_TIME}
            for prefix, code in PORTAL_PROVINCES.items()]
    for portal_code, portal_name in named.items():
        province_code = PORTAL_PROVINCES[portal_code.split(".")[0]]
        matches = [u for u in units.communes_2025(province_code) if portal_name_key(portal_name) ==
                   " ".join(f"{u.unit_type} {u.name.removeprefix(u.unit_type).strip()}".lower().split())]
        if len(matches) != 1:
            raise ValueError(f"portal unit {portal_code} {portal_name!r} matches {len(matches)} communes")
        rows.append({"province_code": province_code, "portal_code": portal_code, "portal_name": portal_name,
                     "unit_code": matches[0].code, "unit_name": matches[0].name,
                     "valid_from": REFORM_DATE.isoformat(), "valid_to": END_OF_TIME})
    rows.sort(key=lambda r: (r["province_code"], [int(p) if p.isdigit() else p for p in r["portal_code"].split(".")]))
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
        out["portal_units"] = write_csv(seeds_dir / "portal_units.csv", portal_unit_rows())
    return out


def main() -> None:
    for name, count in generate().items():
        print(f"seeds/{name}.csv: {count} rows")


if __name__ == "__main__":
    main()
