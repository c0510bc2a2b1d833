"""The journal of settlements the ledger could not write: a served call is never lost.

When the database refuses a commit (disk full, locked past the busy timeout, PostgreSQL gone, a
corrupt page), the settlement is appended here as one JSON line, fsynced, and replayed into the
ledger by the next process that opens it or reserves from it. Each entry carries its hold's
id, and the ledger settles a hold once (see `Ledger._apply_commit`), so a replay that is
interrupted, or that two processes start at once, never counts a call twice.

The file lives beside a SQLite ledger (`quota.db.journal`) or, for PostgreSQL, in the working
directory under a name derived from the ledger's URL. An exclusive `flock` orders appenders and
the replayer: an entry appended while a replay runs waits for it, and is never truncated away
unread.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERSION = 1


def journal_path(dialect: str, name: str) -> Path | None:
    """Where the journal of the ledger `name` lives (None: an in-memory ledger has none)."""
    if dialect == "sqlite":
        return None if name in ("", ":memory:") else Path(f"{name}.journal")
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return Path.cwd() / f"sched-ledger-{digest}.journal"


class Journal:
    """Append-only, fsynced JSON lines; drained under an exclusive lock."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def pending(self) -> bool:
        """Whether entries may wait (one stat: cheap enough to ask before every reservation)."""
        if self.path is None:
            return False
        try:
            return self.path.stat().st_size > 0
        except OSError:
            return False

    def append(self, entry: dict[str, Any]) -> None:
        """Write one entry durably: on disk (file and directory entry) before this returns."""
        if self.path is None:
            raise OSError("an in-memory ledger has no journal")
        line = (json.dumps({"v": VERSION, **entry}, separators=(",", ":")) + "\n").encode()
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        if created:  # the new file's name must survive a power cut too
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    @contextlib.contextmanager
    def draining(self) -> Iterator[list[dict[str, Any]]]:
        """The entries waiting, locked against appenders; emptied only when the body returns
        (it has written them to the ledger), kept when it raises."""
        if self.path is None:
            yield []
            return
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            yield []
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "rb") as file:
                raw = file.read()
            yield _parse(raw)
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)


def _parse(raw: bytes) -> list[dict[str, Any]]:
    """Whole entries of this version; a line cut short by a crash mid-write is skipped (its
    call's hold is still open in the ledger and expires as used)."""
    entries = []
    for line in raw.split(b"\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("v") == VERSION:
            entries.append(entry)
    return entries


__all__ = ["Journal", "journal_path"]
