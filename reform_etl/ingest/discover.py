"""Finding new files in the landing folder, and the kind a file's folder names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reform_etl.kinds import KIND_SPECS
from reform_etl.warehouse import (
    connect,
)

SKIPPED_PREFIXES = (".", "~$")  # hidden files, Excel lock files


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
