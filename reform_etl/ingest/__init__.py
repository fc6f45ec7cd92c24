"""Landing folder -> raw.<kind>, one transaction per file, with lineage and a file registry.

A file is registered in audit.submission_files whatever becomes of it: loaded, rejected (a
file-level rule failed; the reason is stored), duplicate (the same bytes were loaded before)
or failed (the pipeline itself broke; retried next run). Rows are COPYed with their file id
and source row number; a later file for the same unit and period supersedes the earlier one
through audit.v_submission_partitions.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.types.json import Jsonb

from reform_etl.config import settings
from reform_etl.ingest.canonical_lines import KEY_CELL_MAX, LineScan, line_run_pattern
from reform_etl.ingest.parsing import cell_text
from reform_etl.ingest.readers import FileRejected, Table, open_table
from reform_etl.kinds import KIND_SPECS, KindSpec, ValueType
from reform_etl.warehouse import (
    HALF_PATTERN,
    attach_file_table,
    attach_halves,
    connect,
    file_table,
    file_table_ddl,
    half_table,
    half_table_ddl,
    halved_file_table_ddl,
    prefer_parallel,
)
from reform_etl.warehouse import dsn as warehouse_dsn

SKIPPED_PREFIXES = (".", "~$")  # hidden files, Excel lock files


@dataclass
class FileResult:
    file_id: int | None
    path: str
    kind: str | None
    status: str  # loaded / rejected / duplicate / failed
    rows_total: int | None = None
    rows_loaded: int | None = None
    error_code: str | None = None
    error: str | None = None
    duplicate_of: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


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


def read_bytes(path: Path) -> FileBytes:
    digest = hashlib.sha256()
    last_special, last_content, offset, newlines = -1, -1, 0, 0
    size = path.stat().st_size
    middle = size // 2 if size >= SPLIT_COPY_BYTES else None
    halfway = None
    with path.open("rb") as handle:
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
    return FileBytes(digest.hexdigest(), last_special, content_end, halfway)


def kind_of(path: Path, landing: Path) -> str | None:
    """The kind is the first folder under the landing folder."""
    relative = path.relative_to(landing)
    return relative.parts[0] if len(relative.parts) > 1 and relative.parts[0] in KIND_SPECS else None


def _received_at(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def discover(landing: Path, dsn: str | None = None) -> list[Path]:
    """Files in the landing folder not yet registered with the same path, size and time.

    Ordered by modification time so that a resubmission is loaded after what it supersedes.
    Hashing is left to the load step: a night with nothing new reads no file contents.
    """
    landing = landing.resolve()
    if not landing.is_dir():
        return []
    candidates = [
        p for p in landing.rglob("*")
        if p.is_file() and not any(part.startswith(SKIPPED_PREFIXES) for part in p.relative_to(landing).parts)
    ]
    with connect(dsn) as conn:
        known = {
            (path, size, received.timestamp())
            for path, size, received in conn.execute(
                "select path, size_bytes, received_at from audit.submission_files where status <> 'failed'"
            )
        }
    fresh = [p for p in candidates if (str(p), p.stat().st_size, _received_at(p).timestamp()) not in known]
    return sorted(fresh, key=lambda p: (p.stat().st_mtime, str(p)))


def load_paths(paths: Iterable[Path], run_id: str | None = None, landing: Path | None = None,
               dsn: str | None = None) -> list[FileResult]:
    """Load every file under the given paths (files or folders); one bad file never stops the others."""
    landing = (landing or settings().landing).resolve()
    dsn = dsn or warehouse_dsn()
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and path.resolve() == landing:
            files.extend(discover(path, dsn))  # only what is new, in arrival order
        elif path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        else:
            files.append(path)
    return [load_file(p, run_id=run_id, landing=landing, dsn=dsn) for p in files]


def load_file(path: Path, run_id: str | None = None, landing: Path | None = None, dsn: str | None = None,
              archive: Path | None = None) -> FileResult:
    """Register and load one file; data problems come back as a result, pipeline problems raise."""
    cfg = settings()
    landing = (landing or cfg.landing).resolve()
    archive = archive or cfg.archive
    dsn = dsn or warehouse_dsn()
    resolved = Path(os.path.abspath(path))
    try:
        resolved.relative_to(landing)
    except ValueError:
        # Never read a file outside the landing folder: register the attempt by its path alone.
        return _register_rejected(dsn, resolved, None, run_id, "bad_path",
                                  f"path is outside the landing folder {landing} (đường dẫn nằm ngoài thư mục nhận)",
                                  hashlib.sha256(str(resolved).encode()).hexdigest(), readable=False)
    if not resolved.is_file():
        return _register_rejected(dsn, resolved, None, run_id, "unreadable", "file not found (không tìm thấy tệp)",
                                  hashlib.sha256(str(resolved).encode()).hexdigest(), readable=False)
    kind = kind_of(resolved, landing)
    facts = read_bytes(resolved)
    digest = facts.sha256
    with connect(dsn) as conn:
        # Serialise on the content: two loaders given the same bytes load them once.
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (digest,))
        earlier = _earlier(conn, digest, resolved)
        if earlier:
            conn.commit()
            return earlier
        if kind is None:
            conn.rollback()
            folder = resolved.relative_to(landing).parts[0] if len(resolved.relative_to(landing).parts) > 1 else "."
            return _register_rejected(
                dsn, resolved, None, run_id, "wrong_kind",
                f"folder '{folder}' is not a submission kind; use one of {', '.join(KIND_SPECS)} "
                "(sai thư mục loại dữ liệu)",
                digest)
        try:
            result = _load(conn, resolved, kind, facts, run_id, archive, dsn)
            conn.commit()
            return result
        except FileRejected as rejected:
            conn.rollback()
            return _register_rejected(dsn, resolved, kind, run_id, rejected.code, rejected.message, digest)
        except psycopg.OperationalError:
            raise  # connection trouble: transient, the caller retries
        except Exception as exc:
            conn.rollback()
            _register_failed(dsn, resolved, kind, run_id, digest, exc)
            raise


def _earlier(conn: psycopg.Connection, digest: str, path: Path) -> FileResult | None:
    row = conn.execute(
        "select file_id, path, kind, status, rows_total, rows_loaded, error_code, error from audit.submission_files "
        "where sha256 = %s and status in ('loaded', 'accepted', 'rejected')",
        (digest,),
    ).fetchone()
    if row is None:
        return None
    file_id, earlier_path, kind, status, rows_total, rows_loaded, error_code, error = row
    if earlier_path == str(path):
        # The same file seen again (a re-run of the same night): nothing to do, report what it was.
        return FileResult(file_id, str(path), kind, status, rows_total, rows_loaded, error_code, error)
    stat = path.stat()
    duplicate_id = conn.execute(
        "insert into audit.submission_files (run_id, kind, path, file_name, sha256, size_bytes, received_at, status, "
        "duplicate_of, error_code, error) values (%s, %s, %s, %s, %s, %s, %s, 'duplicate', %s, 'duplicate', %s) "
        "returning file_id",
        (None, kind, str(path), path.name, digest, stat.st_size, _received_at(path), file_id,
         f"same content as file #{file_id} ({earlier_path}); loaded once (trùng nội dung, chỉ nạp một lần)"),
    ).fetchone()[0]
    return FileResult(duplicate_id, str(path), kind, "duplicate", 0, 0, "duplicate", None, file_id)


def _insert_file(conn: psycopg.Connection, path: Path, kind: str | None, digest: str, run_id: str | None,
                 status: str) -> int:
    stat = path.stat()
    return conn.execute(
        "insert into audit.submission_files (run_id, kind, path, file_name, sha256, size_bytes, received_at, status) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s) returning file_id",
        (run_id, kind, str(path), path.name, digest, stat.st_size, _received_at(path), status),
    ).fetchone()[0]


def _archive(path: Path, digest: str, archive: Path) -> tuple[Path, bool]:
    """Keep the exact bytes that arrived, named by content, so a submission can never be lost.
    Returns the archived copy and whether this call made it."""
    target = archive / digest[:2] / f"{digest}{path.suffix.lower()}"
    if target.exists():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    shutil.copyfile(path, partial)
    partial.replace(target)
    return target, True


@contextmanager
def _archiving(path: Path, digest: str, archive: Path) -> Iterator[Future[tuple[Path, bool]]]:
    """Archive the file on a thread while its rows load (a copy of a 1 GB export takes seconds, and the
    COPY leaves the client's core mostly idle). A load that fails keeps no copy it made: the archive
    holds the files that loaded, as the registry does."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive") as copier:
        copying = copier.submit(_archive, path, digest, archive)
        try:
            yield copying
        except BaseException:
            with suppress(Exception):
                target, made = copying.result()
                if made:
                    target.unlink(missing_ok=True)
            raise


NORMALISE_SQL = {
    ValueType.UNIT_CODE: "raw.norm_unit_code",
    ValueType.CODE: "raw.norm_text",
    ValueType.TEXT: "raw.norm_text",
    ValueType.COUNT: "raw.norm_count",
    ValueType.DECIMAL: "raw.norm_decimal",
    ValueType.YEAR: "raw.norm_year",
    ValueType.PERIOD: "raw.norm_period",
    ValueType.DATE: "raw.norm_date",
    ValueType.BOOLEAN: "raw.norm_boolean",
}
COPY_CHUNK = 1 << 20
ALL_ROWS = sql.SQL("true")
LOOKUP_ROWS = 1000  # up to this many rows (or an eighth of the file) to normalise are looked up by number


class _NotStreamable(Exception):
    """The CSV body cannot go to COPY byte for byte; the row-by-row path handles it exactly."""


def _load(conn: psycopg.Connection, path: Path, kind: str, facts: FileBytes, run_id: str | None,
          archive: Path, dsn: str) -> FileResult:
    """Put the file's cells in raw.<kind>, normalised, in the caller's transaction.

    A clean CSV whose every column is a known one is COPYed straight into raw.<kind> and only its
    rows that are not already canonical are rewritten (one write of each row: the machine's
    ceiling). Other files are staged as text in a temp table and normalised into raw.<kind> in one
    statement: Excel, CSVs COPY cannot take byte for byte (ragged rows, NUL, quoted line breaks)
    and CSVs with extra columns. A kind held by file gets a new table for the file's rows, attached
    as raw.<kind>'s partition once they are in (a large one is COPYed as two halves at once, the second
    on a connection of its own to `dsn`: _copy_into_raw).
    """
    spec = KIND_SPECS[kind]
    file_id = _insert_file(conn, path, kind, facts.sha256, run_id, "loaded")
    with _archiving(path, facts.sha256, archive) as archiving:
        rows, table, proven = _load_rows(conn, path, spec, file_id, facts, dsn)
        archived, _ = archiving.result()
    conn.execute(
        "update audit.submission_files set rows_total = %s, rows_loaded = %s, sheet_name = %s, header_row = %s, "
        "header_mapping = %s, archived_path = %s, has_proven_dates = %s, loaded_at = now() where file_id = %s",
        (rows, rows, table.sheet_name, table.header_row, Jsonb(table.source_headers), str(archived), proven, file_id),
    )
    return FileResult(file_id, str(path), kind, "loaded", rows, rows)


def _load_rows(conn: psycopg.Connection, path: Path, spec: KindSpec, file_id: int, facts: FileBytes, dsn: str
               ) -> tuple[int, Table, bool]:
    """The file's rows in raw.<kind> (or its own table, attached), with their registry partitions; and whether
    the line scan proved every line canonical (so every date cell a real day: canonical_lines)."""
    kind = spec.name
    target = file_table(kind, file_id) if spec.by_file else sql.Identifier("raw", kind)
    opened = open_table(path, kind)
    try:
        table = opened.table
        copied = _copy_into_raw(conn, path, spec, table, file_id, target, facts, dsn) if _direct(table) else None
        if copied is not None:
            rows, proven = copied
        else:
            if spec.by_file:
                conn.execute(file_table_ddl(kind, file_id))
            rows, proven = _stage_and_normalise(conn, path, spec, table, file_id, target, facts), False
    finally:
        opened.close()
    if rows == 0:
        raise FileRejected("empty", "the file has a header but no data rows (tệp chỉ có dòng tiêu đề)")
    width = 4 if spec.yearly else 7
    # Counted by a SELECT, which Postgres may spread over its parallel workers (an INSERT runs alone). A
    # file's own table is read whole: a filter on its one file id would only mislead the row estimate.
    prefer_parallel(conn)
    of_file = sql.SQL("true") if spec.by_file else sql.SQL("_file_id = {}").format(sql.Literal(file_id))
    partitions = conn.execute(
        sql.SQL("select coalesce(unit_code, ''), coalesce(left({period}, %s), ''), count(*) "
                "from {target} where {of_file} group by 1, 2").format(
            period=sql.Identifier(spec.period_column), target=target, of_file=of_file),
        (width,)).fetchall()
    conn.execute(
        "insert into audit.submission_partitions (file_id, kind, unit_code, period, row_count) "
        "select %s, %s, * from unnest(%s::text[], %s::text[], %s::bigint[])",
        (file_id, kind, *(list(column) for column in zip(*partitions, strict=True))))
    if spec.by_file:
        conn.execute(attach_file_table(kind, file_id))
    return rows, table, proven


def _stage_and_normalise(conn: psycopg.Connection, path: Path, spec: KindSpec, table: Table, file_id: int,
                         target: sql.Identifier, facts: FileBytes) -> int:
    """The general path: cells as text into a temp table, then one normalising insert into `target`
    (raw.<kind>, or the file's table)."""
    sources = [sql.Identifier(f"s{i}") for i in range(table.width)]
    conn.execute(sql.SQL(
        "create temp table _landing (_seq bigint generated always as identity, _row_number integer, {}) "
        "on commit drop").format(sql.SQL(", ").join(sql.SQL("{} text").format(c) for c in sources)))
    streamed = table.csv_delimiter is not None and _stream_csv_body(conn, table, sql.SQL("_landing ({})").format(
        sql.SQL(", ").join(sources)), path, facts) is not None
    if not streamed:
        with conn.cursor().copy(sql.SQL("copy _landing (_row_number, {}) from stdin").format(
                sql.SQL(", ").join(sources))) as copy:
            for row_number, cells in table.rows:
                texts = [cell_text(c) for c in cells[: table.width]]
                copy.write_row([row_number, *texts, *[None] * (table.width - len(texts))])
    index_of = {key: index for index, key in table.mapping.items()}
    _check_key_lengths(conn, spec, table, sql.SQL("_landing"),
                       sql.SQL("coalesce(_row_number, _seq - (select min(_seq) from _landing) + {})").format(
                           sql.Literal(table.header_row + 1)),
                       lambda key: sql.Identifier(f"s{index_of[key]}"), sql.SQL("_seq"))
    columns = [key for key in spec.keys if key in table.mapping.values()]
    return conn.execute(_normalise_into_raw(spec, table, columns, target), (file_id, table.header_row + 1)).rowcount


def _direct(table: Table) -> bool:
    """A CSV whose columns are all known ones, each once, can be COPYed into raw.<kind> as it is."""
    return (table.csv_delimiter is not None and sorted(table.mapping) == list(range(table.width))
            and len(set(table.mapping.values())) == table.width)


def _copy_into_raw(conn: psycopg.Connection, path: Path, spec: KindSpec, table: Table, file_id: int,
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
        copied = _stream_csv_body(conn, table, _into(target, columns), path, facts, scan, create)
        if copied is None:
            return None
        unproven = [first_row + line for line in scan.finish()]
        return copied - _normalise_unproven(conn, spec, table, columns, file_id, target, copied, unproven), not unproven
    offset, second_row = halfway
    first, second = half_table(kind, file_id, 1), half_table(kind, file_id, 2)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="second-half") as side:
        other = side.submit(_copy_second_half, dsn, path, spec, table, columns, file_id, halfway, facts.content_end)
        copied = _stream_csv_body(conn, table, _into(first, columns), path, facts, scan,
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


def _normalise_unproven(conn: psycopg.Connection, spec: KindSpec, table: Table, columns: list[str], file_id: int,
                        target: sql.Identifier, copied: int, unproven: list[int]) -> int:
    """Check the key lengths of the rows of `target` (raw.<kind>, a file's table or half of it) that the line
    scan did not prove canonical (numbered `unproven`), and normalise them; returns the blank rows dropped."""
    if not unproven:
        return 0
    # A few rows are looked up by number; when many need it, one scan of the file is cheaper.
    rows = unproven if len(unproven) <= max(LOOKUP_ROWS, copied // 8) else None
    if rows is not None and spec.by_file:
        # The file's own table has no index: one scan, which Postgres may spread over its workers (a
        # SELECT), finds the rows by number with their place and key lengths; they are rewritten by place.
        keys = _key_columns(spec, set(columns))
        # The numbers as a literal: a constant array is hashed once (a parameter's is searched for every row).
        found = conn.execute(sql.SQL(
            "select ctid::text, _row_number, {lengths} from {target} where _row_number = any({rows}::integer[])"
        ).format(lengths=sql.SQL(", ").join(_length(sql.Identifier(k)) for k in keys), target=target,
                 rows=sql.Literal(rows))).fetchall()
        _reject_long_keys(keys, sorted((row[1], row[2:]) for row in found))
        return _normalise_in_place(conn, spec, columns, file_id, target, places=[row[0] for row in found])
    source: sql.Composable = target
    where = sql.SQL("_file_id = {}").format(sql.Literal(file_id))
    if rows is not None:  # limit 1: a lookup per row, whatever the planner guesses of the unanalysed file
        source = sql.SQL("unnest({rows}::integer[]) as u (n) cross join lateral "
                         "(select * from {raw} r where r._file_id = {file} and r._row_number = u.n limit 1) r").format(
            rows=sql.Literal(rows), raw=target, file=sql.Literal(file_id))
    _check_key_lengths(conn, spec, table, source, sql.SQL("_row_number"), sql.Identifier, sql.SQL("_row_number"),
                       where=where)
    return _normalise_in_place(conn, spec, columns, file_id, target, rows)


def _normalise_in_place(conn: psycopg.Connection, spec: KindSpec, columns: list[str], file_id: int,
                        target: sql.Identifier, rows: list[int] | None = None, places: list[str] | None = None
                        ) -> int:
    """Rewrite the rows of the file (all, those numbered `rows` or those at `places`, ctids) with a value
    not in canonical form, and drop its blank rows (returns how many).

    One scan evaluates each column's normaliser; a canonical value passes its fast path unchanged.
    """
    period = spec.period_column if spec.period_column in columns else None
    period_cell = sql.Identifier(period) if period else sql.NULL

    def normalised(key: str) -> sql.Composable:
        return _normaliser(spec, key, sql.Identifier(key),
                           _normaliser(spec, period, period_cell) if period else sql.NULL)

    def canonical(key: str) -> sql.Composable:
        # The unit code's test takes the period as it is, so that the planner can inline it: when the
        # period itself is not canonical, its own test selects the row anyway.
        return _normaliser(spec, key, sql.Identifier(key), period_cell)

    idents = [sql.Identifier(k) for k in columns]
    changed = sql.SQL(" or ").join(
        sql.SQL("{} is distinct from {}").format(canonical(k), sql.Identifier(k)) for k in columns)
    numbered = sql.SQL(" where")
    if places is not None:  # a TID scan
        numbered = sql.SQL(" where ctid = any({}::tid[]) and").format(sql.Literal(places))
    elif rows is not None:
        numbered = sql.SQL(" from unnest({}::integer[]) as u (n) where _row_number = u.n and").format(
            sql.Literal(rows))
    blank: list[int] = conn.execute(sql.SQL(
        "with fixed as ("
        "  update {table} set {assign}{numbered} _file_id = %s and (num_nonnulls({cols}) = 0 or {changed})"
        "  returning _row_number, num_nonnulls({cols}) = 0 as is_blank"
        ") select coalesce(array_agg(_row_number) filter (where is_blank), '{{}}') from fixed"
    ).format(table=target, cols=sql.SQL(", ").join(idents), changed=changed,
             numbered=numbered,
             assign=sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(k), normalised(k)) for k in columns)),
        (file_id,)).fetchone()[0]
    if blank:  # rows of blank cells are not data rows
        conn.execute(sql.SQL("delete from {} where _file_id = %s and _row_number = any(%s)").format(target),
                     (file_id, blank))
    return len(blank)


def _check_key_lengths(conn: psycopg.Connection, spec: KindSpec, table: Table, source: sql.Composable,
                       row_number: sql.Composable, cell: Callable[[str], sql.Composable], order: sql.Composable,
                       where: sql.Composable = ALL_ROWS) -> None:
    """Codes, periods and years are looked up through btree indexes, which cannot hold a value of
    thousands of characters: such a cell is no code, and the file is rejected with its place named
    (instead of the insert failing and stopping the run).

    `source` holds the staged cells (the file's rows: those `where` selects); `cell(key)` names a key's
    cell in it and `row_number` a row's source row number."""
    keys = _key_columns(spec, set(table.mapping.values()))
    lengths = [_length(cell(k)) for k in keys]
    found = conn.execute(sql.SQL(
        # offset 0: the few long cells are sorted, the limit must not walk the file in index order
        "select * from (select {order} as _order, {row_number}, {lengths} from {source} "
        "  where {where} and greatest({lengths}) > %s offset 0) long order by 1 limit 1"
    ).format(row_number=row_number, lengths=sql.SQL(", ").join(lengths), source=source, where=where,
             order=order), (KEY_CELL_MAX,)).fetchone()
    if found:
        _reject_long_keys(keys, [(found[1], found[2:])])


def _key_columns(spec: KindSpec, present: set[str]) -> list[str]:
    """The columns looked up through indexes among those of the file."""
    return [k for k in spec.lookup_columns if k in present]


def _length(cell: sql.Composable) -> sql.Composable:
    return sql.SQL("coalesce(char_length({}), 0)").format(cell)


def _reject_long_keys(keys: list[str], rows: Iterable[tuple[int, Iterable[int]]]) -> None:
    """Reject the file at the first of `rows` (row number, lengths of `keys`) with a cell too long for a key."""
    for row_number, lengths in rows:
        key, length = max(zip(keys, lengths, strict=True), key=lambda item: item[1])
        if length > KEY_CELL_MAX:
            raise FileRejected(
                "value_too_long",
                f"row {row_number}: the {key} cell is {length} characters long; a code, period or year has at "
                f"most {KEY_CELL_MAX} (giá trị mã/kỳ quá dài)")


def _stream_csv_body(conn: psycopg.Connection, table: Table, target: sql.Composable, path: Path, facts: FileBytes,
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


def _normaliser(spec: KindSpec, key: str, cell: sql.Composable, period: sql.Composable = sql.NULL) -> sql.Composable:
    """The expression normalising a cell of column `key`. A unit code also takes its row's normalised
    period: its leading zeros depend on it (district before 2025-07, commune after)."""
    if key == "unit_code":
        return sql.SQL("raw.norm_unit_code({}, {})").format(cell, period)
    return sql.SQL("{}({})").format(sql.SQL(NORMALISE_SQL[spec.column(key).type]), cell)


def _normalise_into_raw(spec: KindSpec, table: Table, columns: list[str], target: sql.Identifier) -> sql.Composed:
    """insert ... select with each column normalised once (offset 0 keeps the inner query as it is)."""
    index_of = {key: index for index, key in table.mapping.items()}

    def source(key: str) -> sql.Identifier:
        return sql.Identifier(f"s{index_of[key]}")

    def inner(key: str) -> sql.Composable:
        if key == "unit_code":
            return sql.SQL("{} as {}").format(source(key), sql.Identifier(key))
        return sql.SQL("{} as {}").format(_normaliser(spec, key, source(key)), sql.Identifier(key))

    def outer(key: str) -> sql.Composable:
        if key == "unit_code":  # with the period normalised by the inner query
            return _normaliser(spec, key, sql.Identifier(key), sql.Identifier(spec.period_column))
        return sql.Identifier(key)

    return sql.SQL(
        "insert into {target} (_file_id, _row_number, {columns}) "
        "select %s, _row_number, {outer} from ("
        "  select coalesce(_row_number, _seq - (select min(_seq) from _landing) + %s) as _row_number, {inner}"
        "  from _landing offset 0"
        ") normalised where num_nonnulls({not_blank}) > 0"  # blank lines are not data rows
    ).format(
        target=target,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        outer=sql.SQL(", ").join(outer(k) for k in columns),
        inner=sql.SQL(", ").join(inner(k) for k in columns),
        not_blank=sql.SQL(", ").join(
            sql.SQL("raw.norm_text({})").format(sql.Identifier(k)) if k == "unit_code" else sql.Identifier(k)
            for k in columns),
    )


def _register_rejected(dsn: str, path: Path, kind: str | None, run_id: str | None, code: str, message: str,
                       digest: str, readable: bool = True) -> FileResult:
    """Record a rejected file; `readable=False` for paths we must not open (outside landing, gone)."""
    with connect(dsn) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (digest,))
        earlier = _earlier(conn, digest, path) if readable else None
        if earlier:
            conn.commit()
            return earlier
        size = path.stat().st_size if readable else 0
        received = _received_at(path) if readable else datetime.now(UTC)
        file_id = conn.execute(
            "insert into audit.submission_files (run_id, kind, path, file_name, sha256, size_bytes, received_at, "
            "status, rows_total, rows_loaded, error_code, error) "
            "values (%s, %s, %s, %s, %s, %s, %s, 'rejected', 0, 0, %s, %s) returning file_id",
            (run_id, kind, str(path), path.name, digest, size, received, code, message),
        ).fetchone()[0]
        conn.commit()
    return FileResult(file_id, str(path), kind, "rejected", 0, 0, code, message)


def _register_failed(dsn: str, path: Path, kind: str | None, run_id: str | None, digest: str, exc: Exception) -> None:
    with connect(dsn) as conn:
        file_id = _insert_file(conn, path, kind, digest, run_id, "failed")
        conn.execute(
            "update audit.submission_files set error_code = 'pipeline_error', error = %s where file_id = %s",
            (f"{type(exc).__name__}: {exc}", file_id),
        )
        conn.commit()
