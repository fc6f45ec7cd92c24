"""Unit names as forms print them ("UBND huyện Thanh Ba", "Ủy ban nhân dân xã Chân Mộng", "Sở Công Thương")
resolved to unit codes within the deployment's province, among the units valid on a day.

The registry is the seeds' (`units.csv`, built from `vietnamadminunits`, and `departments.csv`): the same
rows validation checks codes against, so a resolved code is always a known one.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from reform_etl.ingest.parsing import fold

# A People's Committee is named for its area: "UBND huyện Thanh Ba" is the district "Huyện Thanh Ba".
COMMITTEE = re.compile(r"^(ubnd|uy ban nhan dan)\s+")
# Short spellings of unit types, folded: "TP Việt Trì", "TX Phú Thọ", "H. Thanh Ba".
TYPE_SHORT = {"tp": "thanh pho", "tx": "thi xa", "h": "huyen", "q": "quan", "p": "phuong", "tt": "thi tran"}


class UnitNameError(Exception):
    """A name that matches no unit, or several: `message` is bilingual and lists the candidates."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class NamedUnit:
    code: str
    name: str  # as the registry spells it, type included ("Huyện Thanh Ba", "Sở Công Thương")
    unit_type: str
    valid_from: date
    valid_to: date


@lru_cache(maxsize=8)
def _registry(seeds: Path, province: str) -> tuple[NamedUnit, ...]:
    out: list[NamedUnit] = []
    with (seeds / "units.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["province_code"] == province:
                out.append(NamedUnit(row["unit_code"], row["unit_name"], row["unit_type"],
                                     date.fromisoformat(row["valid_from"]), date.fromisoformat(row["valid_to"])))
    departments = seeds / "departments.csv"
    if departments.exists():
        with departments.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["province_code"] == province:
                    out.append(NamedUnit(row["unit_code"], row["unit_name"], row["unit_type"],
                                         date.fromisoformat(row["valid_from"]), date.fromisoformat(row["valid_to"])))
    return tuple(out)


def _spellings(unit: NamedUnit) -> set[str]:
    """The folded names a unit answers to: with its type ("huyen thanh ba") and without ("thanh ba")."""
    full = fold(unit.name)
    bare = full.removeprefix(fold(unit.unit_type)).strip()
    return {full, bare} if bare else {full}


def _asked(name: str) -> str:
    text = COMMITTEE.sub("", fold(name))
    first, _, rest = text.partition(" ")
    return f"{TYPE_SHORT[first]} {rest}" if first in TYPE_SHORT and rest else text


def resolve_unit(name: str, on: date, province: str, seeds: Path) -> str:
    """The code of the one unit of `province` named `name` and valid on `on`; raises UnitNameError naming the
    candidates when there is none or more than one."""
    asked = _asked(name)
    registry = _registry(seeds, province)
    named = [u for u in registry if asked in _spellings(u)]
    valid = [u for u in named if u.valid_from <= on <= u.valid_to]
    if len(valid) == 1:
        return valid[0].code
    if len(valid) > 1:
        listed = "; ".join(f"{u.code} {u.name}" for u in valid)
        raise UnitNameError(f"unit name '{name}' is ambiguous in province {province} on {on}: {listed} "
                            f"(tên đơn vị '{name}' không rõ ràng: {listed})")
    if named:
        listed = "; ".join(f"{u.code} {u.name} ({u.valid_from} – {u.valid_to})" for u in named)
        raise UnitNameError(f"unit '{name}' does not exist on {on} in province {province}: {listed} "
                            f"(đơn vị '{name}' không tồn tại vào {on}: {listed})")
    bare = re.sub(r"^(huyen|xa|phuong|thi xa|thi tran|thanh pho|quan|so|tinh|ban|van phong)\s+", "", asked)
    words = set(bare.split())
    similar = [u for u in registry if u.valid_from <= on <= u.valid_to and words & set(fold(u.name).split())][:8]
    listed = "; ".join(f"{u.code} {u.name}" for u in similar) or "none"
    raise UnitNameError(f"unit name '{name}' matched no unit of province {province} valid on {on}; similar: {listed} "
                        f"(tên đơn vị '{name}' không khớp đơn vị nào của tỉnh; tương tự: {listed})")
