"""The file registry (audit.submission_files) and the content-named archive of every file that loaded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from reform_etl.ingest.discover import _received_at
from reform_etl.warehouse import (
    connect,
)


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
    seen_before: bool = False  # registered by an earlier run (or try) with the same path and bytes: reported again

    def as_dict(self) -> dict:
        return asdict(self)


def claim_bytes(conn: psycopg.Connection, digest: str, path: Path, run_id: str | None) -> FileResult | None:
    """Serialise on the content, so that two loaders given the same bytes load them once; then what became
    of these bytes before (committed, the lock with it), or None: go on, holding the lock until this
    transaction ends."""
    conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (digest,))
    earlier = _earlier_load(conn, digest, path, run_id)
    if earlier:
        conn.commit()
    return earlier


def _earlier_load(conn: psycopg.Connection, digest: str, path: Path, run_id: str | None) -> FileResult | None:
    """What became of the same bytes before: the same path again is reported as it was; another path is
    registered as a duplicate belonging to this run (so its summary and report count it)."""
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
        return FileResult(file_id, str(path), kind, status, rows_total, rows_loaded, error_code, error,
                          seen_before=True)
    stat = path.stat()
    duplicate_id = conn.execute(
        "insert into audit.submission_files (run_id, kind, path, file_name, sha256, size_bytes, received_at, status, "
        "duplicate_of, error_code, error) values (%s, %s, %s, %s, %s, %s, %s, 'duplicate', %s, 'duplicate', %s) "
        "returning file_id",
        (run_id, kind, str(path), path.name, digest, stat.st_size, _received_at(path), file_id,
         f"same content as file #{file_id} ({earlier_path}); loaded once (trùng nội dung, chỉ nạp một lần)"),
    ).fetchone()[0]
    return FileResult(duplicate_id, str(path), kind, "duplicate", 0, 0, "duplicate", None, file_id)


def insert_file(conn: psycopg.Connection, path: Path, kind: str | None, digest: str, run_id: str | None,
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
def archiving_thread(path: Path, digest: str, archive: Path) -> Iterator[Future[tuple[Path, bool]]]:
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


def register_rejected(dsn: str, path: Path, kind: str | None, run_id: str | None, code: str, message: str,
                       digest: str, readable: bool = True) -> FileResult:
    """Record a rejected file; `readable=False` for paths we must not open (outside landing, gone): their
    digest is that of the path, their size and time the link's own (lstat), so the same path offered
    again is reported as it was, not registered twice."""
    with connect(dsn) as conn:
        if earlier := claim_bytes(conn, digest, path, run_id):
            return earlier
        size, received = _stat_facts(path, follow=readable)
        file_id = conn.execute(
            "insert into audit.submission_files (run_id, kind, path, file_name, sha256, size_bytes, received_at, "
            "status, rows_total, rows_loaded, error_code, error) "
            "values (%s, %s, %s, %s, %s, %s, %s, 'rejected', 0, 0, %s, %s) returning file_id",
            (run_id, kind, str(path), path.name, digest, size, received, code, message),
        ).fetchone()[0]
        conn.commit()
    return FileResult(file_id, str(path), kind, "rejected", 0, 0, code, message)


def _stat_facts(path: Path, follow: bool) -> tuple[int, datetime]:
    """Size and modification time; of the link itself when `follow` is False (its target is never touched)."""
    try:
        stat = path.stat() if follow else path.lstat()
    except OSError:
        return 0, datetime.now(UTC)
    return stat.st_size, datetime.fromtimestamp(stat.st_mtime, tz=UTC)


def register_failed(dsn: str, path: Path, kind: str | None, run_id: str | None, digest: str, exc: Exception) -> None:
    with connect(dsn) as conn:
        file_id = insert_file(conn, path, kind, digest, run_id, "failed")
        conn.execute(
            "update audit.submission_files set error_code = 'pipeline_error', error = %s where file_id = %s",
            (f"{type(exc).__name__}: {exc}", file_id),
        )
        conn.commit()
