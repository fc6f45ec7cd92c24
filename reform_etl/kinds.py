"""The landing contract of SPEC §3: one spec per submission kind.

This is the single source of truth for column keys, Vietnamese labels, value types and
grain; the raw tables, the readers and the sample generator are all derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ValueType(StrEnum):
    UNIT_CODE = "unit_code"  # GSO code (text, zero-padded) or electronic identifier (H44.07)
    CODE = "code"  # criterion / field / KPI / procedure / dossier codes: text, NFC, trimmed
    YEAR = "year"
    PERIOD = "period"  # month, normalised to YYYY-MM
    COUNT = "count"  # non-negative integer, thousands separators allowed
    DECIMAL = "decimal"  # score or rate, decimal comma or point
    DATE = "date"  # ISO date or date-time, dd/mm/yyyy accepted
    TEXT = "text"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class Column:
    key: str
    label_vi: str
    type: ValueType
    required: bool = True
    aliases: tuple[str, ...] = ()  # further spellings seen in province exports


@dataclass(frozen=True)
class KindSpec:
    name: str
    label_vi: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # grain of one row inside one file
    period_column: str  # the column that places a row in time (year, period or a date)
    yearly: bool = False
    # The period column may also hold a year (YYYY): the portal's year-to-date (service_index).
    period_may_be_year: bool = False
    # Record-level kinds keep each file's rows in a table of its own, a partition of raw.<kind>
    # (see raw_tables.raw_table_ddl): a file of millions of rows is COPYed with no index to update.
    by_file: bool = False

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.columns]

    @property
    def lookup_columns(self) -> list[str]:
        """The columns looked up through btree indexes (key, unit, period): their cells have a bounded length."""
        return list(dict.fromkeys((*self.key, "unit_code", self.period_column)))

    @property
    def required(self) -> list[str]:
        return [c.key for c in self.columns if c.required]

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


C, T = Column, ValueType

UNIT_COLUMN = C("unit_code", "Mã đơn vị", T.UNIT_CODE)


def _per_unit_period_code(name: str, label_vi: str, period: Column, code: Column, *columns: Column,
                          **flags: bool) -> KindSpec:
    """A kind that reports one row per unit, period and code: those three columns lead and are its key, and
    the period column places a row in time."""
    return KindSpec(name=name, label_vi=label_vi, columns=(UNIT_COLUMN, period, code, *columns),
                    key=(UNIT_COLUMN.key, period.key, code.key), period_column=period.key, **flags)


PAR_SCORES = _per_unit_period_code(
    "par_scores",
    "Điểm chỉ số CCHC",
    C("year", "Năm", T.YEAR),
    C("criterion_code", "Mã tiêu chí", T.CODE),
    # Either score may be blank in a row, and a file may carry only one of the two columns.
    C("self_score", "Điểm tự đánh giá", T.DECIMAL, required=False, aliases=("Điểm tự chấm",)),
    C("appraised_score", "Điểm thẩm định", T.DECIMAL, required=False),
    C("evidence", "Tài liệu kiểm chứng", T.TEXT, required=False),
    # A scoring sheet's own maximum for the leaf: checked against the framework in force (max_points_mismatch)
    C("max_points", "Điểm tối đa", T.DECIMAL, required=False),
    yearly=True,
)

_COUNT_COLUMNS = (
    C("received_carried_over", "Kỳ trước chuyển qua", T.COUNT),
    C("received_online", "Tiếp nhận trực tuyến", T.COUNT),
    C("received_direct", "Tiếp nhận trực tiếp", T.COUNT),
    # Optional: the official 13-column form counts postal receipts with in-person ones (received_direct);
    # blank or absent, it is unknown (null), not 0.
    C("received_postal", "Tiếp nhận qua BCCI", T.COUNT, required=False,
      aliases=("Tiếp nhận qua bưu chính công ích",)),
    C("resolved_early", "Giải quyết trước hạn", T.COUNT),
    C("resolved_on_time", "Giải quyết đúng hạn", T.COUNT),
    C("resolved_late", "Giải quyết quá hạn", T.COUNT),
    C("pending_in_time", "Đang giải quyết trong hạn", T.COUNT),
    C("pending_overdue", "Đang giải quyết quá hạn", T.COUNT),
    C("returned_withdrawn", "Trả lại / rút", T.COUNT, required=False, aliases=("Trả lại/rút", "Trả lại, rút")),
)

DOSSIER_STATS = _per_unit_period_code(
    "dossier_stats",
    "Thống kê hồ sơ một cửa (biểu II.06a)",
    C("period", "Kỳ báo cáo", T.PERIOD),
    # Blank means "all fields"; the column itself may be absent for the same meaning.
    C("field_code", "Mã lĩnh vực", T.CODE, required=False),
    *_COUNT_COLUMNS,
)

IT_KPIS = _per_unit_period_code(
    "it_kpis",
    "Chỉ tiêu ứng dụng CNTT",
    C("period", "Kỳ báo cáo", T.PERIOD),
    C("kpi_code", "Mã chỉ tiêu", T.CODE),
    C("numerator", "Tử số", T.COUNT),
    C("denominator", "Mẫu số", T.COUNT),
)

DOSSIERS = KindSpec(
    name="dossiers",
    label_vi="Hồ sơ TTHC (cấp bản ghi)",
    columns=(
        C("dossier_id", "Mã hồ sơ", T.CODE),
        UNIT_COLUMN,
        C("field_code", "Mã lĩnh vực", T.CODE),
        C("procedure_code", "Mã TTHC", T.CODE, aliases=("Mã thủ tục",)),
        C("channel", "Kênh nộp", T.TEXT),
        C("received_at", "Ngày tiếp nhận", T.DATE),
        C("due_at", "Ngày hẹn trả", T.DATE),
        C("completed_at", "Ngày trả kết quả", T.DATE, required=False),
        C("status", "Trạng thái", T.TEXT, required=False),
        C("satisfied", "Hài lòng", T.BOOLEAN, required=False),
    ),
    key=("dossier_id",),
    period_column="received_at",
    by_file=True,
)

SERVICE_INDEX = _per_unit_period_code(
    "service_index",
    "Chỉ số phục vụ người dân, doanh nghiệp (Quyết định 766/QĐ-TTg)",
    C("period", "Kỳ", T.PERIOD, aliases=("Kỳ báo cáo",)),
    C("metric_code", "Mã chỉ số", T.CODE),
    # Both blank for a metric the portal publishes without counts (electronic certified copies).
    C("numerator", "Tử số", T.COUNT, required=False),
    C("denominator", "Mẫu số", T.COUNT, required=False),
    # The portal's own score: kept for reconciliation, never used to compute ours.
    C("published_score", "Điểm công bố", T.DECIMAL, required=False),
    period_may_be_year=True,
)

KIND_SPECS: dict[str, KindSpec] = {
    k.name: k for k in (PAR_SCORES, DOSSIER_STATS, IT_KPIS, DOSSIERS, SERVICE_INDEX)
}
