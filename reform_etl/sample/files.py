"""Writing the sample's files: CSV / XLSX landing files in the header style asked for, and the printed
official forms (II.06a, the PAR scoring sheet), with the same bytes and arrival times on every machine.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import zipfile
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook

from reform_etl.kinds import KIND_SPECS
from reform_etl.sample.rows import arrived, dossier_series, read_seed


class Writer:
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
            save_reproducibly(workbook, path)
        else:
            with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
                writer = csv.writer(handle, delimiter=delimiter)
                writer.writerows([*titles, header, *[["" if v is None else v for v in line] for line in body]])
        # Arrival order matters (a resubmission supersedes what came before): set it explicitly.
        os.utime(path, (at.timestamp(), at.timestamp()))
        return path


def save_reproducibly(workbook: Workbook, path: Path) -> None:
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


def official_forms(out: Path, rng: random.Random) -> list[Path]:
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
            [counts] = dossier_series(rng, "232", [month], 120)
            body.append(("field", number, field, counts))
        body.append(("trong_do", "Trong đó: hồ sơ trực tuyến toàn trình", counts))
        rows, merges = printing.sheet(layout, "UBND huyện Thanh Ba", period_line, body)
        path = out / "dossier_stats" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".xlsx":
            save_reproducibly(printing.workbook("Biểu II.06a", rows, merges), path)
        else:
            printing.write_xls(path, "Biểu II.06a", rows, merges)
        at = arrived("2025-07-10").timestamp()
        os.utime(path, (at, at))
        files.append(path)
    return files


def par_sheet(out: Path, rows: list[dict]) -> Path:
    """Thanh Ba's 2023 scoring sheet as the province's template prints it (areas I … VII, subtotals, TỔNG ĐIỂM),
    sent after the province's 2023 CSV: it supersedes Thanh Ba's 2023 rows there with the same scores."""
    from reform_etl.forms import printing

    criteria = read_seed("par_criteria")
    scores = {r["criterion_code"]: (float(r["self_score"]), float(r["appraised_score"])) for r in rows}
    cells, merges = printing.par_sheet("UBND huyện Thanh Ba", 2023, criteria, scores)
    path = out / "par_scores" / "bang_cham_diem_2023_thanh_ba.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_reproducibly(printing.workbook("Chấm điểm", cells, merges), path)
    at = arrived("2024-02-01").timestamp()
    os.utime(path, (at, at))
    return path
