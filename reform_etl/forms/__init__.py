"""Official forms offices submit unchanged (SPEC §3): read into the same rows the flat reader yields."""

from __future__ import annotations

from collections.abc import Iterator

from reform_etl.parsing import Cell


def read_form(kind: str, sheet_name: str, head: list[tuple[int, list[Cell]]],
              rest: Iterator[tuple[int, list[Cell]]], merged: list) -> object | None:
    """A Table of the official form of `kind` on this sheet, or None when the sheet is not such a form."""
    return None
