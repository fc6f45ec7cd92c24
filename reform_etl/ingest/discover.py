"""Finding new files in the landing folder, and the kind a file's folder names.

Nothing outside the landing folder is ever opened: a path is judged by its real location (every
link followed), and a link that leads out is offered to the loader as it is, to be rejected unread.
A file still being written (modified within the quiet period) is left for a later run.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reform_etl.config import settings
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


def escapes(path: Path, landing: Path) -> bool:
    """Whether the path's real location (every link and `..` followed) is outside the (resolved) landing folder."""
    return not Path(os.path.abspath(path)).is_relative_to(landing) or not path.resolve().is_relative_to(landing)


def unsettled_for(mtime: float, quiet_seconds: float, now: float | None = None) -> float:
    """Seconds the file must still stay unchanged before it is loaded (0: it has been still long enough)."""
    return max(0.0, mtime + quiet_seconds - (time.time() if now is None else now))


@dataclass
class Discovery:
    fresh: list[Path] = field(default_factory=list)  # to load, in arrival order
    waiting: list[Path] = field(default_factory=list)  # modified within the quiet period: a later run loads them


def discover_files(landing: Path, dsn: str | None = None, quiet_seconds: float | None = None) -> Discovery:
    """Files in the landing folder not yet registered with the same path, size and time.

    A file inside the folder is named by its real path (a link to it and the file itself are one
    file); a link leading outside keeps its own path and its own size and time (lstat), so the loader
    rejects it without reading it and a later night does not offer it again.
    Ordered by modification time so that a resubmission is loaded after what it supersedes.
    Hashing is left to the load step: a night with nothing new reads no file contents.
    """
    landing = landing.resolve()
    quiet = settings().quiet_seconds if quiet_seconds is None else quiet_seconds
    if not landing.is_dir():
        return Discovery()
    candidates: dict[str, tuple[Path, os.stat_result]] = {}
    for p in landing.rglob("*"):
        if any(part.startswith(SKIPPED_PREFIXES) for part in p.relative_to(landing).parts):
            continue
        try:
            if escapes(p, landing):
                facts = p.lstat()
                if stat.S_ISLNK(facts.st_mode) or stat.S_ISREG(facts.st_mode):
                    candidates.setdefault(str(p), (p, facts))
                continue
            real = p.resolve()
            facts = real.stat()
        except OSError:  # vanished meanwhile, a link loop: nothing to load
            continue
        if stat.S_ISREG(facts.st_mode):
            candidates.setdefault(str(real), (real, facts))
    with connect(dsn) as conn:
        known = {
            (path, size, received.timestamp())
            for path, size, received in conn.execute(
                "select path, size_bytes, received_at from audit.submission_files where status <> 'failed'"
            )
        }
    found = Discovery()
    now = time.time()
    for name, (path, facts) in sorted(candidates.items(), key=lambda item: (item[1][1].st_mtime, item[0])):
        if (name, facts.st_size, datetime.fromtimestamp(facts.st_mtime, tz=UTC).timestamp()) in known:
            continue
        if not escapes(path, landing) and unsettled_for(facts.st_mtime, quiet, now) > 0:
            found.waiting.append(path)
        else:
            found.fresh.append(path)
    return found


def discover(landing: Path, dsn: str | None = None) -> list[Path]:
    """The files to load now (discover_files(...).fresh)."""
    return discover_files(landing, dsn).fresh
