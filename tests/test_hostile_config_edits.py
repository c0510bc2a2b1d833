"""Class 8 of issue 11: config edits keep what was counted.

Rule edits: provider `a` allows 3 requests per window. Two `sched run text` processes run under
the old rule, the rule's reset time, zone or day is edited, and two more run: the third request
still goes to `a`, the fourth must not (its window is full whatever the edit), so `b` serves it.
The fake provider counts what reached `a`: never more than the limit.

Cron service lock: a second service on the same SQLite ledger under another name (a symlink, a
hard link, a relative path) is refused like one under the same name; another ledger is not.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.service import single_service
from scheduler.errors import SchedError
from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer

LIMIT = 3

EDITS = {
    "day reset 00:00 -> 06:00": ("per: day", "per: day, reset: '06:00'"),
    "day reset 23:59 -> 00:01": ("per: day, reset: '23:59'", "per: day, reset: '00:01'"),
    "day zone UTC -> Los Angeles": ("per: day", "per: day, tz: America/Los_Angeles"),
    "day zone Kolkata -> Auckland": (
        "per: day, tz: Asia/Kolkata",
        "per: day, tz: Pacific/Auckland",
    ),
    "day reset and zone": ("per: day, reset: '08:00'", "per: day, reset: '17:30', tz: Asia/Tokyo"),
    "hour zone UTC -> Kolkata (half-hour offset)": ("per: hour", "per: hour, tz: Asia/Kolkata"),
    "month day 1 -> 15": ("per: month", "per: month, day: 15"),
    "month zone and reset": ("per: month", "per: month, reset: '09:00', tz: Europe/Paris"),
}


def _table(path: Path, fake: FakeServer, window: str) -> Path:
    return write_config(
        path,
        {
            "a": openai_provider(
                fake.base_url("a"), "A_KEY", f"{{metric: requests, limit: {LIMIT}, {window}}}"
            ),
            "b": openai_provider(fake.base_url("b"), "B_KEY"),
        },
        {"text": ["a", "b"]},
        "retries: 0",
    )


@pytest.mark.parametrize(("old", "new"), EDITS.values(), ids=EDITS.keys())
def test_an_edited_window_keeps_its_count(old: str, new: str, tmp_path: Path) -> None:
    env = clean_env(A_KEY="sk-a-test", B_KEY="sk-b-test")
    config = tmp_path / "providers.yaml"
    served: list[str] = []
    with FakeServer() as fake:
        fake.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("from a"))
        fake.route("POST", shapes.chat_path("b"), default=shapes.chat_ok("from b"))
        for window in (old, old, new, new):
            _table(config, fake, window)
            result = run_cli("--config", str(config), "run", "text", "hi", env=env)
            assert result.code == 0 and "Traceback" not in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            served.append(result.stdout.strip())
        reached_a = fake.count(shapes.chat_path("a"))
    assert served == ["from a", "from a", "from a", "from b"]
    assert reached_a == LIMIT
    report = run_cli("--config", str(config), "quota", "report", "--json", env=env)
    assert report.code == 0, report.stderr
    assert f'"used": {LIMIT}' in report.stdout.replace(".0", ""), report.stdout
    db = sqlite3.connect(tmp_path / "quota.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    used = db.execute("SELECT SUM(used), SUM(reserved) FROM usage_windows WHERE provider = 'a'")
    assert used.fetchone() == (LIMIT, 0)


# -- one cron service per ledger, whatever its name ------------------------------------------


def _symlink(db: Path, tmp_path: Path) -> str:
    link = tmp_path / "elsewhere" / "link.db"
    link.parent.mkdir()
    link.symlink_to(db)
    return str(link)


def _hard_link(db: Path, tmp_path: Path) -> str:
    link = tmp_path / "elsewhere" / "hard.db"
    link.parent.mkdir()
    os.link(db, link)
    return str(link)


def _relative(db: Path, tmp_path: Path) -> str:
    os.chdir(tmp_path / "ledger")
    return "./quota.db"


def _dotted(db: Path, tmp_path: Path) -> str:
    return str(tmp_path / "ledger" / ".." / "ledger" / "quota.db")


def _sqlite_url(db: Path, tmp_path: Path) -> str:
    return f"sqlite:///{db}"


NAMES: dict[str, Callable[[Path, Path], str]] = {
    "the same name": lambda db, tmp_path: str(db),
    "a symlink": _symlink,
    "a hard link": _hard_link,
    "a relative path": _relative,
    "a path through ..": _dotted,
    "a sqlite:/// URL": _sqlite_url,
}


@pytest.mark.parametrize("other_name", NAMES.values(), ids=NAMES.keys())
def test_a_second_cron_service_on_the_same_ledger_is_refused(
    other_name: Callable[[Path, Path], str], tmp_path: Path
) -> None:
    db = tmp_path / "ledger" / "quota.db"
    db.parent.mkdir()
    sqlite3.connect(db).close()
    other = other_name(db, tmp_path)
    with single_service(str(db)):
        with pytest.raises(SchedError, match="already runs on this ledger"):
            with single_service(other):
                pass
        with single_service(str(tmp_path / "another.db")):  # another ledger: allowed
            pass
    with single_service(other):  # free again once the first stopped
        pass
