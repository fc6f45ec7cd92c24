"""The official unit registry, read from the `vietnamadminunits` package (never a typed list).

Legacy registry (63 provinces, districts, wards) is valid until 2025-06-30; the 2025 registry
(34 provinces, 3,321 commune-level units, no districts) from 2025-07-01.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from vietnamadminunits.database import query

REFORM_DATE = date(2025, 7, 1)  # district level abolished, communes merged


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    unit_type: str  # Huyện / Thị xã / Thành phố / Quận / Phường / Xã / Đặc khu ...
    level: str  # province / district / commune / department
    province_code: str
    province_name: str
    parent_code: str | None


@lru_cache
def legacy_districts(province_code: str) -> tuple[Unit, ...]:
    return _units("admin_units_legacy", "district", "district", province_code)


@lru_cache
def communes_2025(province_code: str) -> tuple[Unit, ...]:
    return _units("admin_units", "ward", "commune", province_code)


def _units(table: str, prefix: str, level: str, province_code: str) -> tuple[Unit, ...]:
    """The units of a province one registry table lists by its `prefix` columns (<prefix>Code, <prefix>,
    <prefix>Type), in code order: distinct, since the legacy table repeats a district on each of its wards."""
    rows = query(
        f"select distinct {prefix}Code, {prefix}, {prefix}Type, provinceCode, province "
        f"from {table} where provinceCode = '{_digits(province_code)}' order by {prefix}Code"
    )
    return tuple(
        Unit(r[f"{prefix}Code"], r[prefix], r[f"{prefix}Type"], level, r["provinceCode"], r["province"],
             r["provinceCode"])
        for r in rows
    )


@lru_cache
def province_name(province_code: str, legacy: bool) -> str:
    table = "admin_units_legacy" if legacy else "admin_units"
    rows = query(f"select province from {table} where provinceCode = '{_digits(province_code)}' limit 1")
    if not rows:
        raise KeyError(f"no province {province_code!r} in the {'legacy' if legacy else '2025'} registry")
    return rows[0]["province"]


def _digits(code: str) -> str:
    # The package only offers raw SQL; codes are validated to be digits so nothing else gets in.
    if not code.isdigit():
        raise ValueError(f"province code must be digits, got {code!r}")
    return code.zfill(2)
