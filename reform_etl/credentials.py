"""Generated passwords, kept in one JSON file readable by its owner only (mode 0600), never in the repo.

The embedded warehouse's superuser and the roles that log in out of the box (`bi_reader`, `auditor`)
get a password the first time one is asked for; later calls return the same one.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import fasteners


def read(path: Path) -> dict[str, str]:
    """The passwords in `path` by role name ({} when the file does not exist yet)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def secret(path: Path, role: str) -> str:
    """The password of `role` in `path`, generated and written (0600) the first time; process-safe."""
    known = read(path).get(role)
    if known:
        return known
    path.parent.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(path.with_name(f".{path.name}.lock"))):
        passwords = read(path)  # another process may have written it meanwhile
        if not passwords.get(role):
            # URL-safe, so a DSN carries it as it is; 32 bytes of entropy
            passwords[role] = secrets.token_urlsafe(32)
            _write(path, passwords)
        return passwords[role]


def _write(path: Path, passwords: dict[str, str]) -> None:
    """Replace the file atomically; created 0600 so the passwords are never readable by others, even briefly."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(passwords, out, indent=2, sort_keys=True)
        out.write("\n")
    os.chmod(tmp, 0o600)  # O_CREAT's mode is masked by the umask, never widened: this narrows a reused file
    os.replace(tmp, path)
