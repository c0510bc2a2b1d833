"""WAL checkpoints off the hot path.

SQLite's automatic checkpoint runs inside the commit that crosses 1000 WAL pages: that one
dispatch pays for copying the pages into the database file (30-40x the median commit). The ledger
turns it off (`wal_autocheckpoint=0`, scheduler/ledger/db.py) and runs PASSIVE checkpoints here,
on a thread with its own connection: a passive checkpoint never waits for a writer or a reader and
never makes one wait, it copies what it can and the WAL is reused from its start once all of it is
copied. The thread starts with the process's first commit, checkpoints after every
`EVERY_COMMITS` commits of this process and every `IDLE_S` seconds (other processes' commits too:
a long-lived gateway keeps the WAL short while short CLI runs write), and stops on close.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

EVERY_COMMITS = 500
IDLE_S = 2.0


class WalCheckpointer:
    """Passive checkpoints of one SQLite file, on a daemon thread started on first use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._commits = 0
        self.done = 0  # checkpoints run (for tests and benchmarks)

    def committed(self) -> None:
        """Called after each commit of this process: cheap, the work is the thread's."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="sched-wal-checkpoint", daemon=True
            )
            self._thread.start()
        self._commits += 1
        if self._commits >= EVERY_COMMITS:
            self._commits = 0
            self._wake.set()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        except sqlite3.Error:
            return  # the ledger connection reports what is wrong with the file
        try:
            while not self._stop.is_set():
                self._wake.wait(IDLE_S)
                self._wake.clear()
                if self._stop.is_set():
                    break
                with contextlib.suppress(sqlite3.Error):  # busy, or a file gone: next round
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.done += 1
        finally:
            conn.close()

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None


__all__ = ["EVERY_COMMITS", "IDLE_S", "WalCheckpointer"]
