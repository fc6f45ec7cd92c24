"""Form II.06a printed as one-stop software prints it (title block, merged header, numbering row, sections,
totals), for the sample province and the tests: the reader is tested against files made the way offices get them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TITLE_13 = "TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT TTHC TẠI CƠ QUAN, ĐƠN VỊ TRỰC TIẾP GIẢI QUYẾT TTHC"
TITLE_22 = "TÌNH HÌNH TIẾP NHẬN VÀ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH"
RECEIVED, RESOLVED, PENDING = "Số hồ sơ nhận giải quyết", "Số hồ sơ đã giải quyết", "Số hồ sơ đang giải quyết"
ON_TIME_NOTE = "Đúng hạn (Bao gồm cả hồ sơ chờ bổ sung và trả lại / xin rút)"


@dataclass(frozen=True)
class Layout:
    """A vendor's column order: each column's label path (top to bottom) and what it holds (see `value`)."""
    title: str
    columns: tuple[tuple[tuple[str, ...], str], ...]
    numbering: str = "({})"  # "{}" prints 1 2 3, "({})" prints (1) (2) (3)


# The form of Thông tư 01/2020: in-person and postal receipts in one column.
VENDOR_A = Layout(TITLE_13, (
    ((RECEIVED, "Tổng số"), "received_total"),
    ((RECEIVED, "Trong đó", "Số kỳ trước chuyển qua"), "received_carried_over"),
    ((RECEIVED, "Trong đó", "Số mới tiếp nhận trực tuyến"), "received_online"),
    ((RECEIVED, "Trong đó", "Số mới tiếp nhận trực tiếp, dịch vụ bưu chính"), "received_direct+postal"),
    ((RESOLVED, "Tổng số"), "resolved_total"),
    ((RESOLVED, "Trước hạn"), "resolved_early"),
    ((RESOLVED, ON_TIME_NOTE), "resolved_on_time"),
    ((RESOLVED, "Quá hạn"), "resolved_late"),
    ((PENDING, "Tổng số"), "pending_total"),
    ((PENDING, "Trong hạn"), "pending_in_time"),
    ((PENDING, "Quá hạn"), "pending_overdue"),
))
# Another vendor: "Từ kỳ trước", new receipts under one merged label, sub-columns in another order.
VENDOR_B = Layout(TITLE_13, (
    ((RECEIVED, "Tổng số"), "received_total"),
    ((RECEIVED, "Từ kỳ trước"), "received_carried_over"),
    ((RECEIVED, "Số mới tiếp nhận", "Trực tiếp, dịch vụ bưu chính"), "received_direct+postal"),
    ((RECEIVED, "Số mới tiếp nhận", "Trực tuyến"), "received_online"),
    ((RESOLVED, "Tổng số"), "resolved_total"),
    ((RESOLVED, "Đúng hạn"), "resolved_on_time"),
    ((RESOLVED, "Trước hạn"), "resolved_early"),
    ((RESOLVED, "Quá hạn"), "resolved_late"),
    ((PENDING, "Tổng số"), "pending_total"),
    ((PENDING, "Quá hạn"), "pending_overdue"),
    ((PENDING, "Trong hạn"), "pending_in_time"),
), numbering="{}")
# The 22-column export: online by level, in person, BCCI, out-of-area receipts, late with / without apology.
VENDOR_22 = Layout(TITLE_22, (
    (("Tiếp nhận", "Tổng số"), "received_total"),
    (("Tiếp nhận", "Kỳ trước chuyển qua"), "received_carried_over"),
    (("Tiếp nhận", "Mới tiếp nhận", "Tổng số"), "received_new_total"),
    (("Tiếp nhận", "Mới tiếp nhận", "Trực tuyến", "Mức 3"), "received_online/1"),
    (("Tiếp nhận", "Mới tiếp nhận", "Trực tuyến", "Mức 4"), "received_online/2"),
    (("Tiếp nhận", "Mới tiếp nhận", "Trực tiếp"), "received_direct"),
    (("Tiếp nhận", "Mới tiếp nhận", "Qua BCCI"), "received_postal"),
    (("Tiếp nhận", "Tiếp nhận phi địa giới"), "zero"),
    (("Đã giải quyết", "Tổng số"), "resolved_total"),
    (("Đã giải quyết", "Trước hạn"), "resolved_early"),
    (("Đã giải quyết", "Đúng hạn"), "resolved_on_time"),
    (("Đã giải quyết", "Quá hạn", "Đã có thư xin lỗi"), "resolved_late/1"),
    (("Đã giải quyết", "Quá hạn", "Chưa có thư xin lỗi"), "resolved_late/2"),
    (("Đang giải quyết", "Tổng số"), "pending_total"),
    (("Đang giải quyết", "Trong hạn"), "pending_in_time"),
    (("Đang giải quyết", "Quá hạn"), "pending_overdue"),
    (("Trả lại / rút hồ sơ",), "returned_withdrawn"),
    (("Tỷ lệ giải quyết đúng hạn (%)",), "zero"),
    (("Ghi chú",), "blank"),
    (("Số hồ sơ giải quyết theo cơ chế một cửa liên thông",), "zero"),
))

SUMS = {
    "received_total": ("received_carried_over", "received_online", "received_direct", "received_postal"),
    "received_new_total": ("received_online", "received_direct", "received_postal"),
    "received_direct+postal": ("received_direct", "received_postal"),
    "resolved_total": ("resolved_early", "resolved_on_time", "resolved_late"),
    "pending_total": ("pending_in_time", "pending_overdue"),
}


def value(what: str, counts: dict[str, int]) -> int | None:
    """A column's figure from a field's counts: a count, a sum, or one of two parts of a count ("/1", "/2")."""
    if what == "zero":
        return 0
    if what == "blank":
        return None
    if what in SUMS:
        return sum(counts.get(k, 0) for k in SUMS[what])
    if what.endswith(("/1", "/2")):
        whole = counts.get(what[:-2], 0)
        return whole // 2 if what.endswith("/1") else whole - whole // 2
    return counts.get(what, 0)


def sheet(layout: Layout, unit_name: str, period_line: str, body: list[tuple], *, total_first: bool = True,
          totals_override: dict[str, int] | None = None) -> tuple[list[list], list[tuple[int, int, int, int]]]:
    """The sheet's rows and merged ranges (first row, first col, last row, last col; 1-based).
    `body`: ("section", stt, name) | ("field", stt, name, counts) | ("trong_do", name, counts)."""
    depth = max(len(path) for path, _ in layout.columns)
    width = 2 + len(layout.columns)
    rows: list[list] = [
        ["UBND TỈNH PHÚ THỌ", None, None, None, None, None, None, None, "Biểu số II.06a/VPCP/KSTT"],
        [None, None, None, None, None, None, None, None,
         "Ban hành theo Thông tư số 01/2020/TT-VPCP ngày 21 tháng 10 năm 2020"],
        [layout.title],
        [period_line],
        [f"- Đơn vị báo cáo: {unit_name}"],
        ["- Đơn vị nhận báo cáo: Văn phòng UBND tỉnh"],
        [None, None, None, None, None, None, None, None, "Đơn vị tính: Số hồ sơ TTHC"],
    ]
    merges = [(3, 1, 3, width)]
    top = len(rows) + 1
    header = [[None] * width for _ in range(depth)]
    header[0][0], header[0][1] = "STT", "Lĩnh vực, công việc giải quyết theo cấp"
    merges += [(top, 1, top + depth - 1, 1), (top, 2, top + depth - 1, 2)]
    paths = [path for path, _ in layout.columns]
    for level in range(depth):
        column = 0
        while column < len(paths):
            path = paths[column]
            if level >= len(path):
                column += 1
                continue
            span = column
            while (span + 1 < len(paths) and len(paths[span + 1]) > level
                   and paths[span + 1][: level + 1] == path[: level + 1]):
                span += 1
            header[level][2 + column] = path[level]
            last_row = top + level if level < len(path) - 1 else top + depth - 1
            if span > column or last_row > top + level:
                merges.append((top + level, 3 + column, last_row, 3 + span))
            column = span + 1
    rows += header
    rows.append([layout.numbering.format(i) for i in range(1, width + 1)])
    fields = [item[3] for item in body if item[0] == "field"]
    keys = {k for f in fields for k, v in f.items() if isinstance(v, int)}
    grand = {k: sum(f.get(k, 0) for f in fields) for k in keys}
    grand.update(totals_override or {})
    total_row = [None, "Tổng cộng", *(value(w, grand) for _, w in layout.columns)]
    if total_first:
        rows.append(total_row)
    for item in body:
        if item[0] == "section":
            rows.append([item[1], item[2]])
        elif item[0] == "field":
            rows.append([item[1], item[2], *(value(w, item[3]) for _, w in layout.columns)])
        else:
            rows.append([None, item[1], *(value(w, item[2]) for _, w in layout.columns)])
    if not total_first:
        rows.append(total_row)
    return rows, merges


def workbook(name: str, rows: list[list], merges: list[tuple[int, int, int, int]]):
    """An openpyxl workbook of one sheet holding `rows`, with the merged ranges."""
    from openpyxl import Workbook

    book = Workbook()
    target = book.active
    target.title = name
    for row in rows:
        target.append(row)
    for first_row, first_col, last_row, last_col in merges:
        target.merge_cells(start_row=first_row, start_column=first_col, end_row=last_row, end_column=last_col)
    return book


def write_xlsx(path: Path, name: str, rows: list[list], merges: list[tuple[int, int, int, int]]) -> Path:
    workbook(name, rows, merges).save(path)
    return path


def write_xls(path: Path, name: str, rows: list[list], merges: list[tuple[int, int, int, int]]) -> Path:
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    target = book.add_sheet(name)
    covered = {(r, c) for fr, fc, lr, lc in merges for r in range(fr, lr + 1) for c in range(fc, lc + 1)
               if (r, c) != (fr, fc)}
    starts = {(fr, fc): (lr, lc) for fr, fc, lr, lc in merges}
    for r, row in enumerate(rows, 1):
        for c, cell in enumerate(row, 1):
            if (r, c) in covered:
                continue
            if (r, c) in starts:
                lr, lc = starts[(r, c)]
                target.write_merge(r - 1, lr - 1, c - 1, lc - 1, cell)
            elif cell is not None:
                target.write(r - 1, c - 1, cell)
    for (r, c), (lr, lc) in starts.items():
        if r - 1 >= len(rows) or c - 1 >= len(rows[r - 1]):
            target.write_merge(r - 1, lr - 1, c - 1, lc - 1, None)
    book.save(str(path))
    return path


ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")


def par_sheet(unit_name: str, year: int, criteria: list[dict[str, str]], scores: dict[str, tuple[float, float]],
              *, appraised: bool = True, roman: bool = True, max_override: dict[str, float] | None = None,
              total_override: float | None = None) -> tuple[list[list], list[tuple[int, int, int, int]]]:
    """A scoring sheet: title, header, numbering row, areas and criteria with their subtotals, leaves, TỔNG ĐIỂM.
    `criteria`: rows of par_criteria.csv (one framework); `scores`: leaf code -> (self score, appraised score)."""
    maxima = {c["criterion_code"]: float(c["max_points"]) for c in criteria}
    maxima.update(max_override or {})
    header = ["STT", "Lĩnh vực / Tiêu chí / Tiêu chí thành phần", "Điểm tối đa", "Điểm tự đánh giá",
              *(["Điểm thẩm định"] if appraised else []), "Tài liệu kiểm chứng", "Ghi chú"]
    rows: list[list] = [
        ["UBND TỈNH PHÚ THỌ"],
        ["HỘI ĐỒNG THẨM ĐỊNH XÁC ĐỊNH CHỈ SỐ CẢI CÁCH HÀNH CHÍNH"],
        [f"BẢNG TỰ ĐÁNH GIÁ, CHẤM ĐIỂM CHỈ SỐ CẢI CÁCH HÀNH CHÍNH NĂM {year} CỦA {unit_name.upper()}"],
        [],
        header,
        [f"({i})" for i in range(1, len(header) + 1)],
    ]
    merges = [(3, 1, 3, len(header))]

    def figures(codes: list[str]) -> list:
        out = [round(sum(maxima[c] for c in codes), 2), round(sum(scores[c][0] for c in codes), 2)]
        return out + ([round(sum(scores[c][1] for c in codes), 2)] if appraised else [])

    areas = list(dict.fromkeys(c["content_area_code"] for c in criteria))
    for area in areas:
        in_area = [c for c in criteria if c["content_area_code"] == area]
        area_number = ROMAN[int(area) - 1] if roman else area
        rows.append([area_number, in_area[0]["content_area_name_vi"], *figures([c["criterion_code"] for c in in_area])])
        for group in dict.fromkeys(c["criterion_group_code"] for c in in_area):
            in_group = [c for c in in_area if c["criterion_group_code"] == group]
            codes = [c["criterion_code"] for c in in_group]
            rows.append([group, in_group[0]["criterion_group_name_vi"], *figures(codes)])
            for leaf in in_group:
                code = leaf["criterion_code"]
                own = [maxima[code], scores[code][0], *([scores[code][1]] if appraised else [])]
                rows.append([code, leaf["criterion_name_vi"], *own, f"Báo cáo số {len(rows)}/BC-UBND", None])
    total = figures([c["criterion_code"] for c in criteria])
    if total_override is not None:
        total[1] = total_override
    rows.append([None, "TỔNG ĐIỂM", *total])
    return rows, merges
