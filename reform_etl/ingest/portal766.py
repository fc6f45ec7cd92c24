"""The national portal's Decision 766 evaluation responses (JSON, one file per group) as service_index rows.

The portal's reporting API answers each group in one of two shapes (public captures of Phú Thọ 2026 in
ChippedTopaz/qd766, tests/fixtures/<group>/year-all.json):
* `{"data": {"parent": {...province...}, "children": [{departmentCode, departmentName, counts..., score}]}}`
  (progress, online payment, online services), with the counts as named fields;
* `{"data": {"overview": {...province...}, "evaluation": [{departmentName, metrics: [{code, numerator,
  denominator, score}], totalScore}]}}` (transparency, satisfaction, digitisation), the metrics by SPEC §2 code,
  the unit by `departmentCode` when the response carries it, else only by name.
Each unit gives one row per metric (its counts and the portal's score) and one row for the group (the group
code, with the published group score). The response names no period: it is read from the file name
(`..._2026.json` the year to date, `..._2026-09.json` a month); a file name without one leaves the period
blank, and validation quarantines every row for it (period_invalid). A unit the warehouse cannot identify keeps
the portal's name as its code, and validation quarantines it naming it (unit_code_unknown).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from reform_etl.config import settings
from reform_etl.ingest.readers import FileRejected, Table
from reform_etl.kinds import KIND_SPECS
from reform_etl.reference_data import portal_name_key

COLUMNS = tuple(c.key for c in KIND_SPECS["service_index"].columns)

# parent/children responses: (field that identifies the group, group code, metrics as (code, numerator, denominator))
CHILDREN_GROUPS = (
    ("totalReceived", "PROGRESS", (("PROGRESS_ON_TIME", "totalOnTime", "totalReceived"),)),
    ("totalDossierOnlinePaymentSuccess", "ONLINE_PAYMENT", (
        ("ONLINE_PAYMENT_DOSSIER", "totalDossierOnlinePaymentSuccess", "totalDossierFinancialObligation"),
        ("ONLINE_PAYMENT_PROCEDURE", "totalDossierOnlineFormalityPaymentSuccess", "totalFeeFormality"),
        ("FEE_PROCEDURE_WITH_DOSSIERS", "totalFeeDossierFormality", "totalFeeFormality"),
    )),
    # Online services: the counts published (authorities, fully online services...) do not give the score.
    ("onlineServiceTotal", "ONLINE_SERVICE", ()),
)
PERIOD_IN_NAME = re.compile(r"(?<![0-9])(20[0-9]{2})(?:[-_.]?(0[1-9]|1[0-2]))?(?![0-9])")


def period_from_name(name: str) -> str | None:
    """'transparency_2026.json' -> '2026', 'progress-2026-09.json' -> '2026-09'; None when it names none."""
    match = PERIOD_IN_NAME.search(Path(name).stem)
    if not match:
        return None
    return f"{match.group(1)}-{match.group(2)}" if match.group(2) else match.group(1)


def unit_names(seeds: Path | None = None) -> dict[str, str]:
    """Portal unit names (as portal_name_key folds them) -> the code the warehouse knows them by: the province and
    communes by their portal id (seed portal_units), departments by theirs (seed departments)."""
    folder = seeds or settings().seeds
    names: dict[str, str] = {}
    for file, name_column, code_column in (("portal_units.csv", "portal_name", "portal_code"),
                                           ("departments.csv", "unit_name", "unit_code")):
        path = folder / file
        if path.is_file():
            with path.open(encoding="utf-8-sig", newline="") as fh:
                for r in csv.DictReader(fh):
                    names.setdefault(portal_name_key(r[name_column]), r[code_column])
    return names


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return format(Decimal(str(value)), "f")
    return str(value)


def _unit(node: dict, names: dict[str, str]) -> str | None:
    code = node.get("departmentCode")
    if code:
        return str(code)
    name = node.get("departmentName")
    return names.get(portal_name_key(str(name)), str(name)) if name else None


def export_rows(document: dict, period: str | None, names: dict[str, str]) -> list[dict[str, str | None]]:
    """The service_index rows of one portal response; raises ValueError when it is no 766 evaluation response."""
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        raise ValueError("no 'data' object")
    rows: list[dict[str, str | None]] = []

    def add(node: dict, metric: str, numerator: object = None, denominator: object = None,
            score: object = None) -> None:
        rows.append({"unit_code": _unit(node, names), "period": period, "metric_code": metric,
                     "numerator": _text(numerator), "denominator": _text(denominator),
                     "published_score": _text(score)})

    if "children" in data:
        parent = data.get("parent") or {}
        children = data.get("children") or []
        sample = {**parent, **(children[0] if children else {})}
        group = next((g for g in CHILDREN_GROUPS if g[0] in sample), None)
        if group is None:
            raise ValueError("a parent/children response of no known 766 group")
        _, group_code, metrics = group
        for node in ([parent] if parent else []) + list(children):
            for code, numerator, denominator in metrics:
                # the progress response carries the unit's score on its one metric
                score = node.get("score", node.get("totalScore")) if group_code == "PROGRESS" else None
                add(node, code, node.get(numerator), node.get(denominator), score)
            add(node, group_code, score=node.get("totalScore", node.get("score")))
        return rows
    if "evaluation" in data:
        group_of = metric_groups()
        for node in [data.get("overview") or {}] + list(data.get("evaluation") or []):
            metrics = node.get("metrics") or []
            groups = {group_of.get(m.get("code")) for m in metrics} - {None}
            for m in metrics:
                add(node, m.get("code"), m.get("numerator"), m.get("denominator"), m.get("score"))
            if len(groups) == 1:
                add(node, groups.pop(), score=node.get("totalScore"))
        return [r for r in rows if r["unit_code"] is not None or r["metric_code"] is not None]
    raise ValueError("neither 'children' nor 'evaluation' in 'data'")


def metric_groups() -> dict[str, str]:
    """Decision 766 metric code -> its group, from the seed (seeds/service_index_metrics.csv is the catalogue)."""
    with (settings().seeds / "service_index_metrics.csv").open(encoding="utf-8", newline="") as fh:
        return {row["metric_code"]: row["group_code"] for row in csv.DictReader(fh)}


def open_json(path: Path, kind: str) -> Table:
    """A portal response dropped into landing/service_index/ as a Table of service_index rows; raises FileRejected
    (unreadable) when it is not JSON or not a 766 evaluation response, (wrong_kind) outside service_index."""
    if kind != "service_index":
        raise FileRejected("wrong_kind", f"a JSON file is read only as the portal's 766 export, in folder "
                                         f"'service_index', not '{kind}' "
                                         "(tệp JSON chỉ nhận trong thư mục service_index)")
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
        rows = export_rows(document, period_from_name(path.name), unit_names())
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, AttributeError, TypeError) as exc:
        raise FileRejected("unreadable", f"not a Decision 766 response of the national portal: {exc} "
                                         "(không phải tệp JSON đánh giá 766 của Cổng DVCQG)") from exc
    if not rows:
        raise FileRejected("empty", "the portal's response holds no unit (tệp không có đơn vị nào)")

    def data_rows() -> Iterator[tuple[int, list]]:
        for number, row in enumerate(rows, start=2):  # row 1 stands for the header the JSON does not have
            yield number, [row[c] for c in COLUMNS]

    return Table(1, dict(enumerate(COLUMNS)), {c: c for c in COLUMNS}, data_rows(), None, [], len(COLUMNS), None)
