"""The COPY path: a file's bytes read once, a clean CSV body COPYed straight into raw (in two halves when large)."""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from reform_etl.ingest.canonical_lines import LineScan, line_run_pattern
from reform_etl.ingest.normalise import _normalise_unproven
from reform_etl.ingest.readers import Table
from reform_etl.kinds import KindSpec
from reform_etl.raw_tables import (
    HALF_PATTERN,
    attach_halves,
    file_table_ddl,
    half_table,
    half_table_ddl,
    halved_file_table_ddl,
)
from reform_etl.warehouse import connect

SPLIT_COPY_BYTES = 64 << 20  # a clean record file of more bytes is COPYed as two halves at once


@dataclass(frozen=True)
class FileBytes:
    """What one read of a file's bytes tells before it is loaded."""

    sha256: str
    last_special: int  # offset of its last '"' or '\\' byte (-1: none): a CSV body after it is plain text to COPY
    # where its blank last lines begin (its size if none): an export ending in an empty line, which COPY refuses,
    # is COPYed up to there (the loader drops blank rows)
    content_end: int
    # (offset, line number) of the first line that starts past the middle of a large file: where its halves meet
    halfway: tuple[int, int] | None = None
    # the file's size and modification time when it was opened: a file that differs later changed while read
    size: int = -1
    mtime_ns: int = -1


def read_bytes(path: Path) -> FileBytes:
    digest = hashlib.sha256()
    last_special, last_content, offset, newlines = -1, -1, 0, 0
    with path.open("rb") as handle:
        opened = os.fstat(handle.fileno())
        size = opened.st_size
        middle = size // 2 if size >= SPLIT_COPY_BYTES else None
        halfway = None
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            found = max(block.rfind(b'"'), block.rfind(b"\\"))
            if found >= 0:
                last_special = offset + found
            if filled := len(block.rstrip(b"\r\n")):
                last_content = offset + filled - 1
            if middle is not None and halfway is None:
                end = block.find(b"\n", max(middle - offset, 0)) if offset + len(block) > middle else -1
                if end >= 0:
                    halfway = (offset + end + 1, newlines + block.count(b"\n", 0, end + 1) + 1)
                else:
                    newlines += block.count(b"\n")
            offset += len(block)
        content_end = offset
        if last_content >= 0:  # after the line break of the last line that is not empty
            handle.seek(last_content + 1)
            found = handle.read(64).find(b"\n")
            content_end = last_content + 2 + found if found >= 0 else offset
    if halfway is not None and halfway[0] >= content_end:
        halfway = None  # no line after it
    return FileBytes(digest.hexdigest(), last_special, content_end, halfway, opened.st_size, opened.st_mtime_ns)


COPY_CHUNK = 1 << 20


class _NotStreamable(Exception):
    """The CSV body cannot go to COPY byte for byte; the row-by-row path handles it exactly."""


def is_direct(table: Table) -> bool:
    """A CSV whose columns are all known ones, each once, can be COPYed into raw.<kind> as it is."""
    return (table.csv_delimiter is not None and sorted(table.mapping) == list(range(table.width))
            and len(set(table.mapping.values())) == table.width)


def copy_into_raw(conn: psycopg.Connection, path: Path, spec: KindSpec, table: Table, file_id: int,
                   target: sql.Identifier, facts: FileBytes, dsn: str) -> tuple[int, bool] | None:
    """COPY the CSV body into `target` (raw.<kind>, or the file's table), then normalise in place the
    rows that need it.

    _file_id and _row_number come from the columns' defaults: a setting of this transaction (or the
    file table's constant) and the kind's row sequence, restarted at the first body line (loads of a
    kind are serialised on it). The file's table is created in the COPY's own savepoint, so that the
    COPY may FREEZE its rows: later scans find them all-visible, with no hint bits to set.
    While the server parses the COPY, the client finds the lines already in canonical form
    (canonical_lines); only the others are checked and normalised in SQL.

    A large clean file of a kind held by file is COPYed as two halves at the same time: one COPY is
    parsed by one server process, and the client keeps up with two (_copy_second_half).
    Returns the rows loaded and whether the scan proved every line canonical, or None when the general path
    must load the file (nothing was written).
    """
    kind = spec.name
    conn.execute("select pg_advisory_xact_lock(hashtext('reform_etl.raw.' || %s))", (kind,))
    conn.execute("select set_config('reform.file_id', %s, true)", (str(file_id),))
    first_row = table.header_row + 1
    conn.execute("select setval(%s::regclass, %s, false)", (f"raw.{kind}__row_seq", first_row))
    columns = [table.mapping[i] for i in range(table.width)]
    scan = LineScan(line_run_pattern(spec, columns, table.csv_delimiter or ","))
    if spec.by_file:
        _drop_orphan_halves(conn, kind)
    halfway = _halfway(spec, table, path, facts)
    if halfway is None:
        create = file_table_ddl(kind, file_id) if spec.by_file else None
        copied = stream_csv_body(conn, table, _into(target, columns), path, facts, scan, create)
        if copied is None:
            return None
        unproven = [first_row + line for line in scan.finish()]
        return copied - _normalise_unproven(conn, spec, table, columns, file_id, target, copied, unproven), not unproven
    offset, second_row = halfway
    first, second = half_table(kind, file_id, 1), half_table(kind, file_id, 2)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="second-half") as side:
        other = side.submit(_copy_second_half, dsn, path, spec, table, columns, file_id, halfway, facts.content_end)
        copied = stream_csv_body(conn, table, _into(first, columns), path, facts, scan,
                                  halved_file_table_ddl(kind, file_id, second_row), stop=offset, alongside=other)
        if copied is None:
            if other.result() is not None:  # committed on its own: this load will not attach it
                conn.execute(sql.SQL("drop table {}").format(second))
            return None
        copied_second, unproven_second = other.result()
    conn.execute(attach_halves(kind, file_id, second_row))
    unproven_first = [first_row + line for line in scan.finish()]
    return (copied + copied_second
            - _normalise_unproven(conn, spec, table, columns, file_id, first, copied, unproven_first)
            - _normalise_unproven(conn, spec, table, columns, file_id, second, copied_second, unproven_second),
            not unproven_first and not unproven_second)


def _into(target: sql.Identifier, columns: list[str]) -> sql.Composed:
    return sql.SQL("{} ({})").format(target, sql.SQL(", ").join(map(sql.Identifier, columns)))


def _halfway(spec: KindSpec, table: Table, path: Path, facts: FileBytes) -> tuple[int, int] | None:
    """Where a large record file is cut in two halves to COPY at once (see FileBytes.halfway), or None: a
    kind not held by file, a small file, or a body COPY takes as CSV (a quoted line break could span the cut)."""
    if not spec.by_file or facts.halfway is None:
        return None
    body = _body_start(path, table)
    if body is None or facts.last_special >= body or facts.halfway[0] <= body:
        return None
    return facts.halfway


def _body_start(path: Path, table: Table) -> int | None:
    """The offset of the CSV body (after the header row and any title rows above it), or None when the lines
    above it do not match the header the reader found (a quoted line break: row numbers would not match)."""
    with path.open("rb") as handle:
        head = [handle.readline() for _ in range(table.header_row)]
        try:
            header = next(csv.reader([head[-1].decode("utf-8-sig")], delimiter=table.csv_delimiter or ","), [])
        except (UnicodeDecodeError, csv.Error, IndexError):
            return None
        return handle.tell() if len(header) == table.width else None


def _copy_second_half(dsn: str, path: Path, spec: KindSpec, table: Table, columns: list[str], file_id: int,
                      halfway: tuple[int, int], stop: int) -> tuple[int, list[int]] | None:
    """COPY the second half of a large record file (from `halfway`: offset, line number; up to `stop`) into a
    table of its own, on a connection of its own, and commit it, unattached: it joins the file's table in the
    loading transaction, or, if that fails, is dropped by the next load of the kind (_drop_orphan_halves; loads
    of a kind are serialised). Returns the rows and the row numbers of the lines not proven canonical, or None
    (nothing written) when COPY cannot take it byte for byte."""
    offset, second_row = halfway
    scan = LineScan(line_run_pattern(spec, columns, table.csv_delimiter or ","))
    with connect(dsn) as side, path.open("rb") as handle, side.cursor() as cur:
        handle.seek(offset)
        try:
            cur.execute(half_table_ddl(spec.name, file_id, 2, second_row))
            copied = _copy_lines(cur, _copy_sql(_into(half_table(spec.name, file_id, 2), columns), table, True, True),
                                 handle, stop, scan)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError, _NotStreamable):
            return None
        side.commit()
    return copied, [second_row + line for line in scan.finish()]


def _drop_orphan_halves(conn: psycopg.Connection, kind: str) -> None:
    """Drop second halves that a failed load committed and never attached. Called under the kind's load lock:
    no other load of the kind is running, so an unattached half is nobody's."""
    for (name,) in conn.execute(
            "select c.relname from pg_class c, pg_namespace n where n.oid = c.relnamespace and n.nspname = 'raw' "
            "and c.relkind = 'r' and not c.relispartition and c.relname ~ %s", (HALF_PATTERN.format(kind=kind),)):
        conn.execute(sql.SQL("drop table {}").format(sql.Identifier("raw", name)))


def stream_csv_body(conn: psycopg.Connection, table: Table, target: sql.Composable, path: Path, facts: FileBytes,
                     scan: LineScan | None = None, create: sql.Composable | None = None, stop: int | None = None,
                     alongside: Future | None = None) -> int | None:
    """COPY the bytes after the header (up to `stop`, if given, and never past the blank lines that end the
    file) straight into `target` (a table and its column list), feeding each chunk to `scan` once it is
    sent (the client's work overlaps the server's).
    `create`, if given, makes the table in the COPY's savepoint, and the COPY freezes its rows.
    `alongside`, if given, is the COPY of the rest of the file on another connection: the savepoint is
    rolled back when it could not be COPYed (its result is None).

    A body without a quote or a backslash reads the same as CSV and as COPY's text format with an empty
    string for NULL (no cell is quoted, none escaped; an unquoted empty cell is NULL in both): it is
    sent as text, which the server parses a fifth faster.

    Returns the rows COPYed, or None, with nothing written, when the body cannot go to COPY byte
    for byte and the row path must load it.
    """
    body = _body_start(path, table)
    if body is None:
        return None
    stop = facts.content_end if stop is None else min(stop, facts.content_end)
    with path.open("rb") as handle:
        handle.seek(body)
        copy_sql = _copy_sql(target, table, facts.last_special < body, create is not None)
        try:
            with conn.transaction(), conn.cursor() as cur:
                if create is not None:
                    cur.execute(create)
                copied = _copy_lines(cur, copy_sql, handle, stop, scan)
                if alongside is not None and alongside.result() is None:
                    raise _NotStreamable
                return copied
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError, _NotStreamable):
            # Ragged rows, blank lines, NUL or invalid UTF-8: rolled back to the savepoint.
            return None


def _copy_sql(target: sql.Composable, table: Table, text: bool, freeze: bool) -> sql.Composed:
    return sql.SQL("copy {} from stdin (format {}, delimiter {}{})").format(
        target, sql.SQL("text, null ''") if text else sql.SQL("csv"), sql.Literal(table.csv_delimiter),
        sql.SQL(", freeze") if freeze else sql.SQL(""))


def _copy_lines(cur: psycopg.Cursor, copy_sql: sql.Composed, handle: BinaryIO, stop: int | None,
                scan: LineScan | None) -> int:
    """COPY the file's bytes from where `handle` is to `stop` (or its end); returns the rows, which must be
    its lines (else _NotStreamable: a quoted line break, and source row numbers would not match)."""
    lines, last = 0, b"\n"
    # A queued writer: a thread sends each chunk (releasing the GIL while the socket waits) while this one
    # scans it, so the server never waits for the scan.
    with cur.copy(copy_sql, writer=QueuedLibpqWriter(cur)) as copy:
        while chunk := handle.read(COPY_CHUNK if stop is None else min(COPY_CHUNK, stop - handle.tell())):
            copy.write(chunk)
            if scan is not None:
                scan.feed(chunk)  # which counts the lines
            else:
                lines, last = lines + chunk.count(b"\n"), chunk[-1:]
    lines = scan.lines if scan is not None else lines + (last != b"\n")
    if cur.rowcount != lines:
        raise _NotStreamable
    return cur.rowcount
