"""A ledger's commits stay visible to other processes whatever else this process opens.

POSIX advisory locks belong to the process: a descriptor of the ledger file closed by hand drops
the WAL-mode shared lock of every connection this process holds, and another process closing its
last connection then deletes the WAL under them; their later commits are lost to everyone else.
Each row does one thing a sched process does beside a live ledger, then checks that a commit
made after it still reaches another process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from jobs.service import single_service
from scheduler.ledger import Ledger
from scheduler.ledger.maintenance import record_job_run
from tests.conftest import clean_env

_COUNT = (
    "import sqlite3, sys\n"
    "db = sqlite3.connect(sys.argv[1])\n"
    "print(db.execute(\"SELECT count(*) FROM job_runs WHERE job = 'file'\").fetchone()[0])\n"
    "db.close()\n"
)


def _seen_elsewhere(db: Path) -> int:
    """The rows another process sees; it closes its connection, the last one of its process."""
    out = subprocess.run(
        [sys.executable, "-c", _COUNT, str(db)], env=clean_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def _open_a_second_ledger(db: Path) -> None:
    Ledger.open(str(db)).close()  # what a cron job, a report or a token check does


def _run_a_cron_service_lock(db: Path) -> None:
    with single_service(str(db)):
        pass


def _open_the_ledger_through_a_symlink(db: Path) -> None:
    link = db.with_name("same-ledger.db")
    link.symlink_to(db)  # SQLite follows it to the same file, WAL and all
    Ledger.open(str(link)).close()


@pytest.mark.parametrize(
    "beside",
    [_open_a_second_ledger, _run_a_cron_service_lock, _open_the_ledger_through_a_symlink],
    ids=lambda step: step.__name__.strip("_"),
)
def test_commits_after_it_still_reach_other_processes(
    tmp_path: Path, beside: Callable[[Path], None]
) -> None:
    db = tmp_path / "quota.db"
    with closing(Ledger.open(str(db))) as ledger:
        record_job_run(ledger, "file", ok=True, detail={})
        assert _seen_elsewhere(db) == 1
        beside(db)
        assert _seen_elsewhere(db) == 1  # and that process, closing, checkpoints if it may
        record_job_run(ledger, "file", ok=True, detail={})
        record_job_run(ledger, "file", ok=True, detail={})
        assert _seen_elsewhere(db) == 3
    assert _seen_elsewhere(db) == 3


def test_a_corrupt_ledger_is_still_refused_on_each_first_open(tmp_path: Path) -> None:
    from scheduler.errors import LedgerError

    db = tmp_path / "quota.db"
    Ledger.open(str(db)).close()
    size = db.stat().st_size
    replaced = tmp_path / "cut.db"
    replaced.write_bytes(db.read_bytes()[: size // 2])  # a new file: a new inode, checked again
    replaced.replace(db)
    with pytest.raises(LedgerError, match="corrupt"):
        Ledger.open(str(db))
