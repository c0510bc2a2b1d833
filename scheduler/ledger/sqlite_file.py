"""The SQLite ledger file as a file: created 0600, checked before any call, and never closed by
hand under a live connection.

POSIX advisory locks belong to a process and an inode, not to a descriptor: closing *any*
descriptor of the ledger file drops every lock this process's SQLite connections hold on it
(sqlite.org/howtocorrupt.html, section 2.2.1). In WAL mode that lock is the shared lock that
tells other processes the WAL is in use; without it, another process that closes its last
connection checkpoints and deletes the WAL under this one, and every later commit of this
process goes to a deleted file: silently lost to everyone else (tests/test_ledger_file.py
reproduces it). So this module opens the file by hand only before this process connects to it:
once per file per process, and descriptors that must live beside connections (the cron
service's lock) are kept open, never closed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from scheduler.errors import LedgerError

_SQLITE_MAGIC = b"SQLite format 3\x00"
# (st_dev, st_ino) of the ledger files this process created or checked, so it opens each by
# hand only before its first connection to it; a new file at the same path is a new inode.
_prepared: set[tuple[int, int]] = set()
_prepared_lock = threading.Lock()
_kept_open: list[int] = []


def prepare(path: Path) -> None:
    """Create a new ledger file 0600 (the WAL and SHM files inherit the mode), or check an
    existing one, the first time this process opens it. Raises LedgerError, or
    sqlite3.DatabaseError for a file that is not a whole SQLite database."""
    with _prepared_lock:
        if not path.exists():
            try:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as exc:
                raise LedgerError(f"{path}: cannot create the ledger: {exc.strerror}") from None
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise LedgerError(f"{path}: cannot read the ledger: {exc.strerror}") from None
        key = (stat.st_dev, stat.st_ino)
        if key in _prepared:
            return  # connected before: a descriptor opened and closed now would drop its locks
        _check(path)
        _prepared.add(key)


def keep_open(fd: int) -> None:
    """Never close `fd`, a descriptor of a ledger file that connections may use beside it:
    the process's exit closes it, after every connection."""
    _kept_open.append(fd)


def _check(path: Path) -> None:
    """Refuse, before any call, a ledger that could not record one: a file cut short (its
    header counts more pages than it holds), not a SQLite file, or in a directory this process
    cannot write (SQLite's WAL and the ledger's journal live beside the file)."""
    where = path.parent if str(path.parent) else Path(".")
    if not os.access(where, os.W_OK):
        raise LedgerError(
            f"{path}: its directory is read-only; the ledger writes its WAL and journal beside"
            " the file (choose another --db / SCHED_DB)"
        )
    try:
        with open(path, "rb") as file:
            header = file.read(100)
            size = os.fstat(file.fileno()).st_size
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the ledger: {exc.strerror}") from None
    if size == 0:
        return  # new: SQLite writes the header with the first transaction
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise sqlite3.DatabaseError("file is not a database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[92:96] == header[24:28]  # the page count is current (SQLite >= 3.7)
    if page_size < 512 or size % page_size or (header_valid and size < pages * page_size):
        raise sqlite3.DatabaseError(
            f"database disk image is malformed: {size} bytes, {pages} pages expected"
        )


__all__ = ["keep_open", "prepare"]
