"""The title block of a form: the reporting unit's name and the period, as printed above the table."""

from __future__ import annotations

import calendar
import re
from datetime import date

from reform_etl.config import settings
from reform_etl.forms.unit_names import UnitNameError, resolve_unit
from reform_etl.ingest.parsing import Cell, cell_text, fold
from reform_etl.ingest.readers import FileRejected
from reform_etl.ingest.refusal import Refusal

MONTH = re.compile(r"\bthang (\d{1,2}) (?:nam )?(\d{4})\b")
QUARTER = re.compile(r"\bquy (i{1,3}|iv|[1-4]) (?:nam )?(\d{4})\b")
RANGE = re.compile(r"\btu ngay (\d{1,2}) (\d{1,2}) (\d{4}) den ngay (\d{1,2}) (\d{1,2}) (\d{4})\b")
YEAR = re.compile(r"\bnam (\d{4})\b")
# Lines that carry dates that are not the period: the circular the form was issued by, the signing date.
NOT_PERIOD = re.compile(r"thong tu|ban hanh|quyet dinh|\bngay \d{1,2} thang")


class TitleError(Refusal):
    """The title block lacks a line, or states something that cannot be placed: `code`, bilingual `message`."""


def lines(rows: list[tuple[int, list[Cell]]]) -> list[tuple[int, str]]:
    """Each title row as one line of text (its cells joined), with its row number; blank rows left out."""
    out = []
    for number, cells in rows:
        text = " ".join(t for t in (cell_text(c) for c in cells) if t)
        if text:
            out.append((number, text))
    return out


def reporting_unit(title: list[tuple[int, str]]) -> str:
    """The name after "Đơn vị báo cáo:" (not "Đơn vị nhận báo cáo"); raises TitleError unit_unresolved."""
    for _, text in title:
        folded = fold(text)
        if "don vi bao cao" in folded and "nhan bao cao" not in folded:
            name = text.split(":", 1)[1] if ":" in text else re.sub(r"(?i)^.*?báo cáo", "", text)
            name = name.strip(" -–.\t")
            if name:
                return name
    raise TitleError("unit_unresolved", "the form's title block has no 'Đơn vị báo cáo: <unit name>' line, and its "
                                        "table no unit column (tiêu đề biểu không có dòng 'Đơn vị báo cáo: …')")


def title_unit(title: list[tuple[int, str]], name: str, on: date) -> tuple[str, str]:
    """The code of the deployment province's unit `name` (as the title block prints it) valid on `on`, and the
    title line naming it; raises FileRejected unit_unresolved naming the candidates."""
    try:
        code = resolve_unit(name, on, settings().province_code, settings().seeds)
    except UnitNameError as error:
        raise FileRejected("unit_unresolved", error.message) from error
    return code, next(t for _, t in title if name in t)


def month_period(title: list[tuple[int, str]]) -> tuple[str, str]:
    """The month the form reports, as YYYY-MM, and the line that said so; raises TitleError period_unresolved
    when no line states a period, or when the period stated is not one calendar month."""
    stated = [(n, t) for n, t in title if "ky bao cao" in fold(t)]
    others = [(n, t) for n, t in title if (n, t) not in stated and not NOT_PERIOD.search(fold(t))]
    for _, text in stated + others:
        folded = fold(text)
        found = RANGE.search(folded)
        if found:
            d1, m1, y1, d2, m2, y2 = map(int, found.groups())
            try:
                start, end = date(y1, m1, d1), date(y2, m2, d2)
            except ValueError as exc:
                raise _not_monthly(text, f"not a date ({exc})") from exc
            last = calendar.monthrange(start.year, start.month)[1]
            if start.day == 1 and (end.year, end.month, end.day) == (start.year, start.month, last):
                return f"{start:%Y-%m}", text
            raise _not_monthly(text, f"{start} to {end} is not one calendar month")
        found = MONTH.search(folded)
        if found and 1 <= int(found.group(1)) <= 12:
            return f"{int(found.group(2)):04d}-{int(found.group(1)):02d}", text
        found = QUARTER.search(folded)
        if found:
            raise _not_monthly(text, "a quarter")
        found = YEAR.search(folded) if "ky bao cao" in folded else None
        if found:
            raise _not_monthly(text, "a year")
    raise TitleError("period_unresolved",
                     "the form's title block states no period: expected 'Kỳ báo cáo: Tháng 3/2024' or "
                     "'(Từ ngày 01/03/2024 đến ngày 31/03/2024)' (tiêu đề biểu không ghi kỳ báo cáo)")


def _not_monthly(text: str, what: str) -> TitleError:
    return TitleError("period_unresolved",
                      f"the form reports '{text}' ({what}); dossier statistics are monthly: submit one form per month "
                      f"(kỳ báo cáo '{text}' không phải một tháng: hãy nộp biểu theo từng tháng)")


def year_in(text: str) -> int | None:
    found = re.search(r"\bnam (\d{4})\b", fold(text))
    return int(found.group(1)) if found else None
