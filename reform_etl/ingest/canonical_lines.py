"""Which lines of a CSV body are already in the loader's canonical form, found while COPY runs.

A clean export COPYed straight into raw.<kind> needs no normalising write, but proving that in SQL
is a scan evaluating ten normalisers per row: more than the COPY itself. The client has a core of
its own while the server parses the COPY, so it proves it there instead: one regular expression per
kind and column order matches runs of lines whose every cell each raw.norm_* function returns
unchanged (and whose code, period and year cells fit a btree key). The loader then normalises, in
SQL as before, only the lines the expression did not match.

A date cell matches only if it names a real day and time of day (VALID_DATE: exactly what
raw.is_date_cell accepts of the canonical shape). So where every line matched, every date cell of
the file is valid, and the validation's verdict makes no pass over the file's dates: the loader
records it (audit.submission_files.has_proven_dates). A line with an impossible date, such as
2026-02-30, is merely left unproven: normalised in SQL, which leaves it as it is, and its file's
dates are tested by the verdict.

The expression is conservative: it accepts only plain ASCII cells in the exact form of each
normaliser's fast path (003_normalise.sql), and leaves everything else to the database, so a line
it accepts is one the SQL normaliser would not change, and a line it rejects merely gets checked.

It is run by RE2 (google-re2), a DFA in linear time: about 350 MB/s here, against 130 MB/s for
Python's backtracking `re` with possessive quantifiers, which left the server waiting for the scan.
RE2 has no lookaround, so each form is written as a plain regular language (a blank line, one of
only delimiters, is excluded by naming the first cell that is not empty).
"""

from __future__ import annotations

import re2

from reform_etl.kinds import KindSpec, ValueType

KEY_CELL_MAX = 200  # characters of a code, period or year cell (x 4 bytes x 3 columns < a btree entry's 2704)


# A real day, or a real day and time of day, in the loader's canonical form: what raw.is_date_cell
# (003_normalise.sql) accepts of this shape (years 0001 to 9999 of the Gregorian calendar, 29 February in leap
# years, 00:00:00 to 23:59:59).
_YEAR = rb"(?:[1-9]\d{3}|0[1-9]\d\d|00[1-9]\d|000[1-9])"
_LEAP_YEAR = rb"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DAY = (rb"(?:" + _YEAR + rb"-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
        rb"|02-(?:0[1-9]|1\d|2[0-8]))|" + _LEAP_YEAR + rb"-02-29)")
VALID_DATE = _DAY + rb"(?:T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)?"


def _escape(delimiter: bytes) -> bytes:
    """The delimiter (one byte) as a hexadecimal escape: literal in and out of a character class."""
    return rb"\x%02x" % delimiter[0]


def _cells(delimiter: bytes) -> dict[str, bytes]:
    """The canonical forms of a cell, by value type, given the CSV delimiter (never inside a plain cell)."""
    d = _escape(delimiter)
    printable = rb'[^\x00-\x1f\x7f-\xff"' + d + rb"]"  # ASCII, no quote or delimiter: COPY takes it verbatim
    visible = rb'[^\x00-\x20\x7f-\xff"' + d + rb"]"
    text = visible + rb"(?:" + printable + rb"*" + visible + rb")?"  # nothing for btrim to remove at either end
    return {
        "text": text,
        ValueType.TEXT: text,
        ValueType.CODE: text,
        "key_text": visible + rb"(?:" + printable + rb"{0,%d}" % (KEY_CELL_MAX - 2) + visible + rb")?",
        # five-digit codes and upper-case electronic ids; a 3-digit district code depends on the period
        ValueType.UNIT_CODE: rb"(?:\d{5}|[A-Z]\d{1,40}(?:\.\d{1,40}){0,3})",
        ValueType.COUNT: rb"(?:0|[1-9]\d{0,17})",
        # what trim_scale(v::numeric)::text returns: no leading zeros, no trailing fractional zeros; at most
        # 18 characters (the fast path's bound), kept by the digits each part may have
        ValueType.DECIMAL: rb"(?:0|[1-9]\d{0,8})(?:\.\d{0,7}[1-9])?",
        ValueType.YEAR: rb"\d{4}",
        ValueType.PERIOD: rb"\d{4}-(?:0[1-9]|1[0-2])",
        ValueType.DATE: VALID_DATE,
        ValueType.BOOLEAN: rb"(?:true|false)",
    }


def line_run_pattern(spec: KindSpec, columns: list[str], delimiter: str) -> re2._Regexp:
    """A run of whole canonical lines of a body whose columns are `columns`, in order.

    An empty cell is NULL to COPY, which every normaliser keeps; a line of empty cells is not (the
    loader drops blank rows), nor is a quoted cell (left to the database to read)."""
    delim = delimiter.encode()
    d = _escape(delim)
    forms = _cells(delim)
    keys = set(spec.lookup_columns)

    def form(key: str) -> bytes:
        found = forms[spec.column(key).type]
        if key in keys and found == forms["text"]:
            found = forms["key_text"]  # a code looked up through a btree has a bounded length
        return rb"(?:" + found + rb")"

    cells = [form(key) for key in columns]
    # the first cell that is not empty is cell k: k empty cells before it, any after it
    first_filled = [d * k + cells[k] + b"".join(d + cell + b"?" for cell in cells[k + 1:]) for k in range(len(cells))]
    line = rb"(?:" + b"|".join(first_filled) + rb")\r?\n"
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1  # bytes, not UTF-8: \x7f-\xff are single bytes
    options.max_mem = 64 << 20  # room for the DFA's states (the default 8 MB is enough for the kinds here)
    return re2.compile(rb"(?:" + line + rb")*", options)


class LineScan:
    """Fed the body in chunks as they go to COPY; `finish()` gives the 0-based body lines not proven canonical.

    Memory is bounded: a line longer than LONG_LINE bytes is not kept whole, only noted as unproven."""

    LONG_LINE = 1 << 20

    def __init__(self, pattern: re2._Regexp) -> None:
        self._run = pattern
        self._tail = b""
        self._line = 0  # body lines before the tail
        self._skipping = False  # inside a long line, already noted
        self.unproven: list[int] = []

    def feed(self, chunk: bytes) -> None:
        if self._skipping:
            start = chunk.find(b"\n") + 1
            if not start:
                return
            chunk, self._skipping, self._line = chunk[start:], False, self._line + 1
        buffer = self._tail + chunk if self._tail else chunk
        end = buffer.rfind(b"\n") + 1
        self._scan(buffer, end)
        self._tail = buffer[end:]
        if len(self._tail) > self.LONG_LINE:
            self.unproven.append(self._line)
            self._tail, self._skipping = b"", True

    @property
    def lines(self) -> int:
        """The body lines fed so far, a last one without its line break included."""
        return self._line + bool(self._tail or self._skipping)

    def finish(self) -> list[int]:
        if self._tail:  # a last line without its line break
            self._scan(self._tail + b"\n", len(self._tail) + 1)
            self._tail = b""
        return self.unproven

    def _scan(self, buffer: bytes, end: int) -> None:
        pos = 0
        while pos < end:
            stop = self._run.match(buffer, pos, end).end()
            self._line += buffer.count(b"\n", pos, stop)
            if stop >= end:
                break
            self.unproven.append(self._line)
            self._line += 1
            pos = buffer.index(b"\n", stop) + 1
