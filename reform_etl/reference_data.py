"""Generate the reference-data seeds of `seeds/` (run: `python -m reform_etl.reference_data`).

The generated CSVs are committed, so CI and the nightly DAG never need to regenerate them;
re-run this script when the `vietnamadminunits` package, the portal reference file or the
curated catalogues below change, and commit the diff.

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
* `par_frameworks.csv` / `par_criteria.csv` / `par_bands.csv` — a sample district PAR
  framework (7 content areas, 40 criteria, 80 sub-criteria, 100 points, 30 by survey) and
  the default bands; a province replaces them with its own by editing the seeds.
* `fields.csv`, `kpis.csv` — one-stop fields and IT KPIs.
* `service_index_metrics.csv`, `service_index_groups.csv` — the Decision 766 catalogue as the
  national portal scores it (SPEC §2): metrics with group, max, full-score ratio, score when
  the denominator is 0, scored / province-wide flags; groups with their max.
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


# --------------------------------------------------------------------------- PAR framework

FRAMEWORK_CODE = "DISTRICT_SAMPLE_2020"

# (code, name vi, name en, survey points, appraisal points, criteria names vi)
CONTENT_AREAS = (
    (
        "1",
        "Công tác chỉ đạo, điều hành cải cách hành chính",
        "Direction and management of PAR",
        3,
        9,
        (
            "Kế hoạch cải cách hành chính năm",
            "Báo cáo cải cách hành chính",
            "Kiểm tra công tác cải cách hành chính",
            "Công tác tuyên truyền cải cách hành chính",
            "Sự năng động trong chỉ đạo, điều hành",
            "Thực hiện nhiệm vụ được giao",
        ),
    ),
    (
        "2",
        "Xây dựng và tổ chức thực hiện văn bản quy phạm pháp luật",
        "Legal normative documents",
        3,
        7,
        (
            "Xây dựng và ban hành văn bản quy phạm pháp luật",
            "Rà soát, hệ thống hóa văn bản",
            "Tổ chức thực hiện văn bản",
            "Kiểm tra, xử lý văn bản",
            "Theo dõi thi hành pháp luật",
        ),
    ),
    (
        "3",
        "Cải cách thủ tục hành chính",
        "Administrative procedure reform",
        6,
        10,
        (
            "Rà soát, đánh giá thủ tục hành chính",
            "Công khai thủ tục hành chính",
            "Thực hiện cơ chế một cửa, một cửa liên thông",
            "Kết quả giải quyết hồ sơ thủ tục hành chính",
            "Tiếp nhận, xử lý phản ánh, kiến nghị",
            "Số hóa hồ sơ, kết quả giải quyết",
            "Thái độ phục vụ của công chức bộ phận một cửa",
        ),
    ),
    (
        "4",
        "Cải cách tổ chức bộ máy hành chính nhà nước",
        "Organisational reform",
        3,
        7,
        (
            "Sắp xếp tổ chức bộ máy",
            "Thực hiện quy định về biên chế",
            "Phân cấp quản lý",
            "Kiểm tra tình hình tổ chức và hoạt động",
            "Quản lý đơn vị sự nghiệp",
        ),
    ),
    (
        "5",
        "Xây dựng và nâng cao chất lượng đội ngũ cán bộ, công chức, viên chức",
        "Civil service (cadres, civil servants, public employees)",
        5,
        9,
        (
            "Vị trí việc làm",
            "Tuyển dụng, sử dụng công chức",
            "Đánh giá, xếp loại",
            "Đào tạo, bồi dưỡng",
            "Chấp hành kỷ luật, kỷ cương hành chính",
            "Cán bộ, công chức cấp xã",
        ),
    ),
    (
        "6",
        "Cải cách tài chính công",
        "Public finance reform",
        3,
        7,
        (
            "Quản lý, sử dụng ngân sách",
            "Cơ chế tự chủ tài chính",
            "Thực hành tiết kiệm, chống lãng phí",
            "Công khai tài chính, ngân sách",
        ),
    ),
    (
        "7",
        "Xây dựng và phát triển chính quyền điện tử, chính quyền số",
        "E-government / digital government",
        7,
        21,
        (
            "Hạ tầng công nghệ thông tin",
            "Ứng dụng phần mềm quản lý văn bản, chữ ký số",
            "Cổng thông tin điện tử",
            "Dịch vụ công trực tuyến",
            "Hệ thống thông tin một cửa điện tử",
            "Thanh toán trực tuyến",
            "Áp dụng hệ thống quản lý chất lượng",
        ),
    ),
)


def framework_rows() -> list[dict[str, str]]:
    criteria = criteria_rows()
    return [
        {
            "framework_code": FRAMEWORK_CODE,
            "framework_name_vi": "Bộ tiêu chí chỉ số CCHC cấp huyện (mẫu)",
            "framework_name_en": "District PAR index framework (sample)",
            "province_code": "*",
            "unit_level": "district",
            "year_from": "2020",
            "year_to": "2026",
            "content_areas": str(len(CONTENT_AREAS)),
            "criteria": str(len({r["criterion_group_code"] for r in criteria})),
            "sub_criteria": str(len(criteria)),
            "max_points": _fmt(sum(float(r["max_points"]) for r in criteria)),
            "survey_points": _fmt(sum(float(r["max_points"]) for r in criteria if r["method"] == "survey")),
        }
    ]


def criteria_rows() -> list[dict[str, str]]:
    """Each criterion has two leaves: .1 the appraised result, .2 quality — by survey for the
    last `survey` criteria of the area (1 point each), otherwise appraised. Appraisal points of
    the area are spread over its appraised leaves in half points."""
    rows = []
    for area, area_vi, area_en, survey, appraisal, names in CONTENT_AREAS:
        n = len(names)
        survey_criteria = set(range(n - survey + 1, n + 1))
        appraised_leaves = 2 * n - survey
        halves, extra = divmod(appraisal * 2, appraised_leaves)
        k = 0
        for i, name in enumerate(names, start=1):
            for leaf in (1, 2):
                is_survey = leaf == 2 and i in survey_criteria
                if is_survey:
                    points, method = 1.0, "survey"
                    leaf_name = f"{name}: mức độ hài lòng của người dân, tổ chức (điều tra xã hội học)"
                else:
                    points = (halves + (1 if k < extra else 0)) / 2
                    k += 1
                    method = "appraisal"
                    leaf_name = f"{name}: " + ("kết quả thực hiện" if leaf == 1 else "chất lượng, hiệu quả thực hiện")
                rows.append(
                    {
                        "framework_code": FRAMEWORK_CODE,
                        "content_area_code": area,
                        "content_area_name_vi": area_vi,
                        "content_area_name_en": area_en,
                        "criterion_group_code": f"{area}.{i}",
                        "criterion_group_name_vi": name,
                        "criterion_code": f"{area}.{i}.{leaf}",
                        "criterion_name_vi": leaf_name,
                        "max_points": _fmt(points),
                        "method": method,
                        "sort_order": str(len(rows) + 1),
                    }
                )
    return rows


def band_rows() -> list[dict[str, str]]:
    bands = (
        ("TOT", "Tốt", "Good", 80),
        ("KHA", "Khá", "Fair", 70),
        ("TRUNG_BINH", "Trung bình", "Average", 50),
        ("YEU", "Yếu", "Weak", 0),
    )
    return [
        {
            "province_code": "*",
            "band_code": code,
            "band_name_vi": vi,
            "band_name_en": en,
            "min_index_pct": str(lo),
            "sort_order": str(i),
        }
        for i, (code, vi, en, lo) in enumerate(bands, 1)
    ]


def _fmt(x: float) -> str:
    return f"{x:g}"


# --------------------------------------------------------------------------- catalogues

# code, vi, en, and the other names one-stop software prints for the field on form II.06a ('|'-separated):
# forms name fields, and a name is matched only when it is one of these (folded), never guessed.
FIELDS = (
    ("HT", "Hộ tịch", "Civil status registration", "Lĩnh vực hộ tịch|Đăng ký hộ tịch"),
    ("CT", "Chứng thực", "Certification", "Lĩnh vực chứng thực"),
    ("DD", "Đất đai", "Land", "Lĩnh vực đất đai"),
    ("XD", "Xây dựng", "Construction", "Lĩnh vực xây dựng|Quy hoạch - xây dựng|Hoạt động xây dựng"),
    ("HKD", "Đăng ký kinh doanh (hộ kinh doanh)", "Household business registration",
     "Đăng ký kinh doanh|Thành lập và hoạt động của hộ kinh doanh|Hộ kinh doanh"),
    ("LDXH", "Lao động, người có công và xã hội", "Labour, veterans and social affairs",
     "Lao động - Thương binh và Xã hội|Lao động, thương binh và xã hội|Người có công|Bảo trợ xã hội"),
    ("GD", "Giáo dục và đào tạo", "Education and training", "Giáo dục|Giáo dục - Đào tạo"),
    ("VH", "Văn hóa, thể thao và du lịch", "Culture, sports and tourism", "Văn hóa|Văn hóa cơ sở|Văn hóa - Thông tin"),
    ("MT", "Môi trường", "Environment", "Lĩnh vực môi trường"),
    ("NN", "Nông nghiệp", "Agriculture", "Nông nghiệp và phát triển nông thôn|Nông nghiệp và môi trường"),
    ("YT", "Y tế", "Health", "Lĩnh vực y tế"),
    ("TDKT", "Thi đua, khen thưởng", "Emulation and awards", "Thi đua - Khen thưởng|Thi đua khen thưởng"),
    ("TG", "Tôn giáo, tín ngưỡng", "Religion and belief", "Tín ngưỡng, tôn giáo|Tôn giáo"),
    ("GT", "Giao thông vận tải", "Transport", "Đường bộ|Giao thông"),
    ("TP", "Tư pháp (khác)", "Justice (other)", "Tư pháp|Lĩnh vực tư pháp"),
)

# code, vi, en, numerator, denominator, target %, direction
KPIS = (
    (
        "DVC_TOAN_TRINH",
        "Tỷ lệ thủ tục hành chính cung cấp dịch vụ công trực tuyến toàn trình",
        "Procedures offered as fully online public services",
        "số TTHC có DVC trực tuyến toàn trình",
        "tổng số TTHC",
        80,
        "higher",
    ),
    (
        "HS_TRUC_TUYEN",
        "Tỷ lệ hồ sơ nộp trực tuyến",
        "Dossiers submitted online",
        "số hồ sơ nộp trực tuyến",
        "tổng số hồ sơ tiếp nhận",
        50,
        "higher",
    ),
    (
        "HS_BCCI",
        "Tỷ lệ hồ sơ tiếp nhận qua dịch vụ bưu chính công ích",
        "Dossiers received via public postal service",
        "số hồ sơ qua BCCI",
        "tổng số hồ sơ tiếp nhận",
        10,
        "higher",
    ),
    (
        "HS_MOT_CUA_DT",
        "Tỷ lệ hồ sơ được cập nhật trên phần mềm một cửa điện tử",
        "Dossiers entered in the e-one-stop software",
        "số hồ sơ cập nhật trên phần mềm",
        "tổng số hồ sơ",
        100,
        "higher",
    ),
    (
        "HS_SO_HOA",
        "Tỷ lệ số hóa hồ sơ, kết quả giải quyết TTHC",
        "Dossiers digitised",
        "số hồ sơ được số hóa",
        "tổng số hồ sơ",
        100,
        "higher",
    ),
    (
        "KQ_DIEN_TU",
        "Tỷ lệ cấp kết quả giải quyết TTHC điện tử",
        "Results issued electronically",
        "số kết quả điện tử",
        "tổng số kết quả",
        100,
        "higher",
    ),
    (
        "VB_DIEN_TU_KY_SO",
        "Tỷ lệ văn bản đi được trao đổi dưới dạng điện tử có chữ ký số",
        "Outgoing documents exchanged electronically with a digital signature",
        "số văn bản điện tử có ký số",
        "tổng số văn bản đi",
        100,
        "higher",
    ),
    (
        "THANH_TOAN_TT",
        "Tỷ lệ hồ sơ thanh toán trực tuyến",
        "Dossiers paid online",
        "số hồ sơ thanh toán trực tuyến",
        "số hồ sơ có nghĩa vụ tài chính",
        50,
        "higher",
    ),
    (
        "HAI_LONG",
        "Tỷ lệ hài lòng của người dân, doanh nghiệp về giải quyết hồ sơ",
        "Satisfaction with dossier handling",
        "số đánh giá hài lòng",
        "tổng số đánh giá",
        90,
        "higher",
    ),
    (
        "CONG_KHAI_TTHC",
        "Tỷ lệ TTHC được công khai đầy đủ, đúng quy định",
        "Procedures fully published",
        "số TTHC công khai đầy đủ",
        "tổng số TTHC",
        100,
        "higher",
    ),
    (
        "DONG_BO_HS",
        "Tỷ lệ hồ sơ được đồng bộ lên Cổng Dịch vụ công quốc gia",
        "Dossiers synchronised to the national public-service portal",
        "số hồ sơ đồng bộ",
        "tổng số hồ sơ",
        100,
        "higher",
    ),
    (
        "HAI_LONG_DVC",
        "Tỷ lệ hài lòng về cung cấp dịch vụ công trực tuyến",
        "Satisfaction with online public services",
        "số đánh giá hài lòng",
        "tổng số đánh giá",
        90,
        "higher",
    ),
)

# Decision 766/QĐ-TTg, as the national portal computes it (SPEC §2): six groups out of 100.
# (group_code, max, name_vi, name_en, published_only)
GROUPS = (
    ("TRANSPARENCY", 18, "Công khai, minh bạch", "Transparency", False),
    ("PROGRESS", 20, "Tiến độ giải quyết", "Progress", False),
    ("ONLINE_SERVICE", 12, "Dịch vụ công trực tuyến", "Online public services", True),
    ("ONLINE_PAYMENT", 10, "Thanh toán trực tuyến", "Online payment", False),
    ("DIGITISATION", 22, "Số hóa hồ sơ", "Digitisation", False),
    ("SATISFACTION", 18, "Mức độ hài lòng", "Satisfaction", False),
)

# Every metric: score = max x min(1, (n / d) / full ratio), rounded half-up to 2 decimals; when the
# denominator is 0 or blank: score_when_no_denominator. Province-wide metrics are published once for
# the province and count for every unit of it. `score_method` published: the portal's score is taken
# (online services cannot be recomputed from what the portal publishes). `dossier_stats_measure`: the
# II.06a measure used when no portal counts are submitted for the unit and period.
# (metric, group, max, full ratio %, score with no denominator, province-wide, method, II.06a measure, vi, en)
METRICS = (
    ("PUBLISH_ON_TIME", "TRANSPARENCY", 6, 100, 0, True, "ratio", "",
     "Công bố, công khai TTHC đúng hạn", "Procedures announced and published on time"),
    ("PUBLIC_UPDATE_ON_TIME", "TRANSPARENCY", 4, 100, 0, True, "ratio", "",
     "Cập nhật, công khai TTHC đúng hạn trên Cổng DVCQG", "Procedures updated on the national portal on time"),
    ("PUBLIC_CONTENT_FULL", "TRANSPARENCY", 2, 100, 0, True, "ratio", "",
     "Công khai đầy đủ nội dung TTHC", "Procedures published with their full content"),
    ("DOSSIER_SYNC", "TRANSPARENCY", 6, 100, 0, False, "ratio", "",
     "Hồ sơ được đồng bộ lên Cổng DVCQG", "Dossiers synchronised to the national portal"),
    ("PROGRESS_ON_TIME", "PROGRESS", 20, 100, 0, False, "ratio", "progress",
     "Hồ sơ giải quyết trước hạn, đúng hạn và đang giải quyết trong hạn trên tổng hồ sơ tiếp nhận",
     "Dossiers finished early or on time, or pending within deadline, over dossiers received"),
    ("ONLINE_SERVICE", "ONLINE_SERVICE", 12, 100, 0, False, "published", "",
     "Cung cấp dịch vụ công trực tuyến (điểm Cổng DVCQG công bố)",
     "Online public services (the score the national portal publishes)"),
    ("ONLINE_PAYMENT_DOSSIER", "ONLINE_PAYMENT", 6, 100, 0, False, "ratio", "",
     "Hồ sơ thanh toán trực tuyến trên hồ sơ có nghĩa vụ tài chính",
     "Dossiers paid online over dossiers with a financial obligation"),
    ("ONLINE_PAYMENT_PROCEDURE", "ONLINE_PAYMENT", 2, 80, 0, False, "ratio", "",
     "TTHC có phí, lệ phí được thanh toán trực tuyến", "Fee-bearing procedures with an online payment"),
    ("FEE_PROCEDURE_WITH_DOSSIERS", "ONLINE_PAYMENT", 2, 80, 0, False, "ratio", "",
     "TTHC có phí, lệ phí phát sinh hồ sơ", "Fee-bearing procedures that had dossiers"),
    ("ORIGINAL_RESULT_AVAILABLE", "DIGITISATION", 6, 100, 0, False, "ratio", "",
     "Hồ sơ có kết quả giải quyết bản điện tử", "Dossiers with an electronic original of their result"),
    ("SO_HOA_GIAY_TO_GIAI_QUYET", "DIGITISATION", 4, 100, 0, False, "ratio", "",
     "Hồ sơ được số hóa giấy tờ khi tiếp nhận, giải quyết", "Dossiers whose papers were digitised"),
    ("SYNCED_WITH_DVCQG_PERSONAL_STORAGE", "DIGITISATION", 4, 100, 0, False, "ratio", "",
     "Kết quả đồng bộ vào kho dữ liệu cá nhân trên Cổng DVCQG",
     "Results synchronised to the citizen's data store on the national portal"),
    ("CITIZEN_DATA_CONNECTED_DOSSIER", "DIGITISATION", 2, 100, 0, False, "ratio", "",
     "Hồ sơ khai thác dữ liệu dân cư", "Dossiers that used the population database"),
    ("CITIZEN_DATA_CONNECTED_FORMALITY", "DIGITISATION", 2, 100, 0, False, "ratio", "",
     "TTHC kết nối, khai thác dữ liệu dân cư", "Procedures connected to the population database"),
    ("REUSED_DIGITIZED_DATA", "DIGITISATION", 2, 80, 0, False, "ratio", "",
     "Hồ sơ tái sử dụng dữ liệu số hóa", "Dossiers that reused digitised data"),
    ("ELECTRONIC_CERTIFIED_COPY", "DIGITISATION", 2, 100, 2, False, "ratio", "",
     "Chứng thực bản sao điện tử (công bố không kèm số liệu: đủ điểm)",
     "Electronic certified copies (published without counts: full score)"),
    ("DOSSIER_RECEIVING_SATISFACTION", "SATISFACTION", 6, 90, 0, False, "ratio", "",
     "Mức độ hài lòng trong tiếp nhận, giải quyết hồ sơ", "Satisfaction with receiving and handling dossiers"),
    ("PETITION_PROCESSING_ON_TIME", "SATISFACTION", 6, 100, 6, False, "ratio", "",
     "Phản ánh, kiến nghị được xử lý đúng hạn", "Petitions handled on time"),
    ("PETITION_HANDLING_SATISFACTION", "SATISFACTION", 6, 100, 6, False, "ratio", "",
     "Hài lòng về xử lý phản ánh, kiến nghị", "Satisfaction with the handling of petitions"),
    ("PETITION_CLASSIFICATION_TTHC", "SATISFACTION", 0, 100, 0, False, "ratio", "",
     "Phản ánh, kiến nghị về TTHC (hiển thị, không tính điểm)", "Petitions about procedures (shown, not scored)"),
    ("PETITION_CLASSIFICATION_STAFF", "SATISFACTION", 0, 100, 0, False, "ratio", "",
     "Phản ánh, kiến nghị về cán bộ (hiển thị, không tính điểm)", "Petitions about staff (shown, not scored)"),
)


def field_rows() -> list[dict[str, str]]:
    return [
        {"field_code": c, "field_name_vi": vi, "field_name_en": en, "sort_order": str(i), "field_aliases_vi": aliases}
        for i, (c, vi, en, aliases) in enumerate(FIELDS, 1)
    ]


def kpi_rows() -> list[dict[str, str]]:
    return [
        {
            "kpi_code": c,
            "kpi_name_vi": vi,
            "kpi_name_en": en,
            "numerator_vi": num,
            "denominator_vi": den,
            "target_pct": str(target),
            "direction": direction,
            "sort_order": str(i),
        }
        for i, (c, vi, en, num, den, target, direction) in enumerate(KPIS, 1)
    ]


def metric_rows() -> list[dict[str, str]]:
    return [
        {
            "metric_code": m,
            "group_code": g,
            "max_score": str(mx),
            "full_ratio_pct": str(full),
            "score_when_no_denominator": str(none),
            "is_scored": "true" if mx > 0 else "false",
            "is_province_wide": "true" if wide else "false",
            "score_method": method,
            "dossier_stats_measure": measure,
            "name_vi": vi,
            "name_en": en,
            "sort_order": str(i),
        }
        for i, (m, g, mx, full, none, wide, method, measure, vi, en) in enumerate(METRICS, 1)
    ]


def group_rows() -> list[dict[str, str]]:
    return [
        {"group_code": g, "max_score": str(mx), "name_vi": vi, "name_en": en,
         "is_published_only": "true" if published else "false", "sort_order": str(i)}
        for i, (g, mx, vi, en, published) in enumerate(GROUPS, 1)
    ]


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
    out = {
        "par_frameworks": write_csv(seeds_dir / "par_frameworks.csv", framework_rows()),
        "par_criteria": write_csv(seeds_dir / "par_criteria.csv", criteria_rows()),
        "par_bands": write_csv(seeds_dir / "par_bands.csv", band_rows()),
        "fields": write_csv(seeds_dir / "fields.csv", field_rows()),
        "kpis": write_csv(seeds_dir / "kpis.csv", kpi_rows()),
        "service_index_metrics": write_csv(seeds_dir / "service_index_metrics.csv", metric_rows()),
        "service_index_groups": write_csv(seeds_dir / "service_index_groups.csv", group_rows()),
        "units": write_csv(seeds_dir / "units.csv", unit_rows()),
    }
    if with_departments:
        out["departments"] = write_csv(seeds_dir / "departments.csv", department_rows())
        out["portal_units"] = write_csv(seeds_dir / "portal_units.csv", portal_unit_rows())
    return out


def main() -> None:
    for name, count in generate().items():
        print(f"seeds/{name}.csv: {count} rows")


if __name__ == "__main__":
    main()
