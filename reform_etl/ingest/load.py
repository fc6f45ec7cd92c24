"""Loading one file: register it, put its rows in raw.<kind> in one transaction, archive it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from reform_etl.config import settings
from reform_etl.ingest.copy import FileBytes, copy_into_raw, is_direct, read_bytes, stream_csv_body
from reform_etl.ingest.discover import discover_files, escapes, kind_of, unsettled_for
from reform_etl.ingest.normalise import check_key_lengths, normalise_into_raw
from reform_etl.ingest.parsing import cell_text
from reform_etl.ingest.readers import FileRejected, Table, open_table
from reform_etl.ingest.registry import (
    FileResult,
    archiving_thread,
    claim_bytes,
    insert_file,
    register_failed,
    register_rejected,
)
from reform_etl.kinds import KIND_SPECS, KindSpec
from reform_etl.raw_tables import attach_file_table, file_table, file_table_ddl, prefer_parallel
from reform_etl.warehouse import connect
from reform_etl.warehouse import dsn as warehouse_dsn


def load_paths(paths: Iterable[Path], run_id: str | None = None, landing: Path | None = None,
               dsn: str | None = None) -> list[FileResult]:
    """Load every file under the given paths (files or folders); one bad file never stops the others."""
    landing = (landing or settings().landing).resolve()
    dsn = dsn or warehouse_dsn()
    files: list[Path] = []
    waiting: list[FileResult] = []
    for path in map(Path, paths):
        if path.is_dir() and path.resolve() == landing:
            found = discover_files(path, dsn)  # only what is new, in arrival order
            files.extend(found.fresh)
            waiting += [_not_settled(p, kind_of(p, landing), "modified within the quiet period") for p in found.waiting]
        elif path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink()))
        else:
            files.append(path)
    return [load_file(p, run_id=run_id, landing=landing, dsn=dsn) for p in files] + waiting


def load_file(path: Path, run_id: str | None = None, landing: Path | None = None, dsn: str | None = None,
              archive: Path | None = None) -> FileResult:
    """Register and load one file; data problems come back as a result, pipeline problems raise."""
    cfg = settings()
    landing = (landing or cfg.landing).resolve()
    archive = archive or cfg.archive
    dsn = dsn or warehouse_dsn()
    offered = Path(os.path.abspath(path))
    if escapes(offered, landing):
        # Never open a file whose real location is outside the landing folder (a link, `..`): register the
        # attempt by its path alone.
        real = offered.resolve()
        where = "" if real == offered else f" (a link to {real}; liên kết tới {real})"
        return register_rejected(
            dsn, offered, None, run_id, UNSAFE_PATH,
            f"đường dẫn nằm ngoài thư mục nhận {landing}, không đọc tệp / path is outside the landing folder "
            f"{landing}, not read{where}",
            hashlib.sha256(str(offered).encode()).hexdigest(), readable=False)
    resolved = offered.resolve()
    if not resolved.is_file():
        return register_rejected(dsn, resolved, None, run_id, "unreadable", "file not found (không tìm thấy tệp)",
                                  hashlib.sha256(str(resolved).encode()).hexdigest(), readable=False)
    kind = kind_of(resolved, landing)
    if wait := unsettled_for(resolved.stat().st_mtime, cfg.quiet_seconds):
        return _not_settled(resolved, kind, f"modified less than {cfg.quiet_seconds:g} s ago; loaded once it has "
                                            f"been still {wait:.0f} s more")
    facts = read_bytes(resolved)
    digest = facts.sha256
    with connect(dsn) as conn:
        if earlier := claim_bytes(conn, digest, resolved, run_id):
            return earlier
        if kind is None:
            conn.rollback()
            folder = resolved.relative_to(landing).parts[0] if len(resolved.relative_to(landing).parts) > 1 else "."
            return register_rejected(
                dsn, resolved, None, run_id, "wrong_kind",
                f"folder '{folder}' is not a submission kind; use one of {', '.join(KIND_SPECS)} "
                "(sai thư mục loại dữ liệu)",
                digest)
        try:
            result = _load(conn, resolved, kind, facts, run_id, archive, dsn)
            conn.commit()
            return result
        except FileChanged as changed:
            conn.rollback()
            return _not_settled(resolved, kind, str(changed))
        except FileRejected as rejected:
            conn.rollback()
            return register_rejected(dsn, resolved, kind, run_id, rejected.code, rejected.message, digest)
        except psycopg.OperationalError:
            raise  # connection trouble: transient, the caller retries
        except Exception as exc:
            conn.rollback()
            register_failed(dsn, resolved, kind, run_id, digest, exc)
            raise


UNSAFE_PATH = "unsafe_file_path"  # the rule of the catalog (validation.rules.FILE_RULES)


class FileChanged(Exception):
    """The file's size or modification time changed while it was read: it is still being written."""


def _unchanged_since_read(path: Path, facts: FileBytes) -> None:
    """Raises FileChanged when the file is no longer what was read (an upload still appending to it)."""
    now = path.stat()
    if (now.st_size, now.st_mtime_ns) != (facts.size, facts.mtime_ns):
        raise FileChanged(f"changed while it was read ({facts.size:,} → {now.st_size:,} bytes)")


def _not_settled(path: Path, kind: str | None, why: str) -> FileResult:
    """A file still being written: not registered, so a later run picks it up again; nothing of it is kept."""
    return FileResult(None, str(path), kind, "waiting", error_code="file_not_stable",
                      error=f"tệp đang được ghi, chưa nạp, sẽ nạp ở lượt sau / file still being written, not loaded "
                            f"yet, a later run loads it: {why}")


def _load(conn: psycopg.Connection, path: Path, kind: str, facts: FileBytes, run_id: str | None,
          archive: Path, dsn: str) -> FileResult:
    """Put the file's cells in raw.<kind>, normalised, in the caller's transaction.

    A clean CSV whose every column is a known one is COPYed straight into raw.<kind> and only its
    rows that are not already canonical are rewritten (one write of each row: the machine's
    ceiling). Other files are staged as text in a temp table and normalised into raw.<kind> in one
    statement: Excel, CSVs COPY cannot take byte for byte (ragged rows, NUL, quoted line breaks)
    and CSVs with extra columns. A kind held by file gets a new table for the file's rows, attached
    as raw.<kind>'s partition once they are in (a large one is COPYed as two halves at once, the second
    on a connection of its own to `dsn`: copy_into_raw).
    """
    spec = KIND_SPECS[kind]
    file_id = insert_file(conn, path, kind, facts.sha256, run_id, "loaded")
    with archiving_thread(path, facts.sha256, archive) as archiving:
        rows, table, proven = _load_rows(conn, path, spec, file_id, facts, dsn)
        archived, _ = archiving.result()
        _unchanged_since_read(path, facts)  # else nothing stays: not the rows, not the archived copy
    if table.warnings:  # an official form's totals that do not add up: warned by the kind's history suite
        from reform_etl.forms import store_findings

        store_findings(conn, file_id, table.warnings)
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
        copied = copy_into_raw(conn, path, spec, table, file_id, target, facts, dsn) if is_direct(table) else None
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
    streamed = table.csv_delimiter is not None and stream_csv_body(conn, table, sql.SQL("_landing ({})").format(
        sql.SQL(", ").join(sources)), path, facts) is not None
    if not streamed:
        with conn.cursor().copy(sql.SQL("copy _landing (_row_number, {}) from stdin").format(
                sql.SQL(", ").join(sources))) as copy:
            for row_number, cells in table.rows:
                texts = [cell_text(c) for c in cells[: table.width]]
                copy.write_row([row_number, *texts, *[None] * (table.width - len(texts))])
    index_of = {key: index for index, key in table.mapping.items()}
    check_key_lengths(conn, spec, table, sql.SQL("_landing"),
                       sql.SQL("coalesce(_row_number, _seq - (select min(_seq) from _landing) + {})").format(
                           sql.Literal(table.header_row + 1)),
                       lambda key: sql.Identifier(f"s{index_of[key]}"), sql.SQL("_seq"))
    columns = [key for key in spec.keys if key in table.mapping.values()]
    return conn.execute(normalise_into_raw(spec, table, columns, target), (file_id, table.header_row + 1)).rowcount
