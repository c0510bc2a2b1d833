"""Class 4 of issue 11: a hold is settled once, by its own id.

Rows drive the Ledger on both backends (`db_target`): ids are never reused, not after a delete
of the newest hold (SQLite's rowid reuse) nor by a ledger started anew; and each way a hold can
be settled late (commit, release, failure, a journal replay) after `expire()` counted it counts
the call once, in `calls` and in spend, never twice and never zero.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.config.schema import Pricing, QuotaRule
from scheduler.errors import Transient
from scheduler.ledger import CallRecord, Hold, Ledger
from scheduler.ledger.store import BUDGET_SCOPE, BudgetLimit, SpendPolicy

RULES = (QuotaRule(metric="requests", limit=10, per="day"),)
SPEND = SpendPolicy(
    pricing=Pricing(usd_per_request=0.25), allow_paid=True, budgets=(BudgetLimit("day", 10.0),)
)
NOW = 1_800_000_000.0


def _reserve(ledger: Ledger, now: float = NOW) -> Hold:
    hold = ledger.reserve("p", RULES, {"requests": 1}, task="text", model="m", spend=SPEND, now=now)
    assert isinstance(hold, Hold), hold
    return hold


def _record(outcome: str = "ok", requests: float = 1) -> CallRecord:
    usage = {"requests": requests, "usd": 0.25 * requests}
    return CallRecord("text", "p", "m", outcome, 70_000.0, usage=usage)


def test_ids_are_never_reused_after_a_delete(db_target: str) -> None:
    ledger = Ledger.open(db_target, lease_s=60)
    seen: set[int] = set()
    for _ in range(50):
        hold = _reserve(ledger)
        assert hold.id not in seen
        seen.add(hold.id)
        ledger.release(hold)  # the newest row deleted: SQLite would hand its rowid out again


def test_a_stale_settle_never_touches_another_runs_hold(db_target: str) -> None:
    ledger = Ledger.open(db_target, lease_s=60)
    first = _reserve(ledger)
    ledger.release(first)
    second = _reserve(ledger)
    ledger.release(first)  # a late, repeated settle of the first hold
    assert ledger.read("SELECT COUNT(*) FROM reservations") == [(1,)]
    ledger.commit(second, _record())
    assert ledger.read("SELECT used, reserved FROM usage_windows WHERE provider = 'p'") == [
        (1.0, 0.0)
    ]


def test_ids_differ_between_ledgers_started_anew(tmp_path: Path) -> None:
    ids = set()
    for name in ("one.db", "two.db", "three.db"):
        ledger = Ledger.open(str(tmp_path / name))
        ids.add(_reserve(ledger).id)
        ledger.close()
    assert len(ids) == 3


@dataclass(frozen=True)
class Late:
    settle: Callable[[Ledger, Hold], None]
    calls: list[tuple[str, float]]  # (outcome, cost_usd) of the calls rows afterwards
    used: float  # the requests window afterwards
    spend: float  # the budget window afterwards


def _commit(requests: float) -> Callable[[Ledger, Hold], None]:
    return lambda ledger, hold: ledger.commit(hold, _record(requests=requests), now=NOW + 90)


def _commit_twice(ledger: Ledger, hold: Hold) -> None:
    ledger.commit(hold, _record(), now=NOW + 90)
    ledger.commit(hold, _record(), now=NOW + 91)


def _fail(ledger: Ledger, hold: Hold) -> None:
    error = Transient("timed out", provider="p")
    ledger.record_failure(hold, _record("transient", 0), error, now=NOW + 90)


LATE = {
    "commit as estimated": Late(_commit(1), [("ok", 0.25)], 1.0, 0.25),
    "commit above the estimate": Late(_commit(3), [("ok", 0.75)], 3.0, 0.75),
    "commit below the estimate": Late(_commit(0), [("ok", 0.0)], 0.0, 0.0),
    "commit twice": Late(_commit_twice, [("ok", 0.25)], 1.0, 0.25),
    "release": Late(lambda ledger, hold: ledger.release(hold), [("expired", 0.25)], 1.0, 0.25),
    "failure": Late(_fail, [("expired", 0.25), ("transient", 0.0)], 1.0, 0.25),
    "commit of a negative report": Late(_commit(-50), [("ok", 0.25)], 1.0, 0.25),
}


@pytest.mark.parametrize("row", LATE.values(), ids=LATE.keys())
def test_a_hold_settled_after_it_expired_counts_once(row: Late, db_target: str) -> None:
    ledger = Ledger.open(db_target, lease_s=60)
    hold = _reserve(ledger)
    assert ledger.expire(now=NOW + 61) == 1  # the live call is slow; its lease ran out
    row.settle(ledger, hold)
    calls = ledger.read("SELECT outcome, cost_usd FROM calls ORDER BY outcome")
    assert [(str(o), round(float(str(c)), 6)) for o, c in calls] == row.calls
    windows = {
        str(owner): (float(str(used)), float(str(reserved)))
        for owner, used, reserved in ledger.read(
            "SELECT provider, used, reserved FROM usage_windows"
        )
    }
    assert windows["p"] == (row.used, 0.0)
    assert windows[BUDGET_SCOPE][0] == pytest.approx(row.spend)
    assert ledger.read("SELECT COUNT(*) FROM reservations") == [(0,)]
    if row.calls[0][0] == "ok":
        (flag,) = ledger.read("SELECT flag FROM calls WHERE outcome = 'ok'")[0]
        assert "lease expired" in str(flag)
    assert ledger.integrity_check() == "ok"


def test_a_journaled_settle_of_an_expired_hold_counts_once(db_target: str) -> None:
    ledger = Ledger.open(db_target, lease_s=60)
    hold = _reserve(ledger)
    ledger.expire(now=NOW + 61)
    entry = {
        "hold": {
            "id": hold.id,
            "provider": "p",
            "items": [list(item) for item in hold.items],
            "free": [],
            "billable": True,
            "estimated_cost": 0.25,
            "estimate": [list(pair) for pair in hold.estimate],
            "pricing": None,
        },
        "record": {**_record().__dict__, "usage": {"requests": 1, "usd": 0.25}},
        "flags": [],
        "rate_limits": [],
        "now": NOW + 90,
    }
    ledger.journal.append(entry)
    ledger.journal.append(entry)  # the same settlement twice: a replay that was interrupted
    assert ledger.replay_journal() == 2
    assert ledger.read("SELECT outcome FROM calls") == [("ok",)]
    assert ledger.read("SELECT used FROM usage_windows WHERE provider = 'p'") == [(1.0,)]
    usage = json.loads(str(ledger.read("SELECT usage FROM calls")[0][0]))
    assert usage["requests"] == 1


def test_two_processes_expiring_one_hold_count_it_once(db_target: str) -> None:
    """Every Scheduler expires dead holds when it opens. On PostgreSQL two such transactions read
    the same expired row; the one whose DELETE finds it gone (the other settled it meanwhile)
    must neither log nor count it again: the soak's 16 processes once died here of a duplicate
    `calls.hold_id` ("ledger error: duplicate key"), a refused start."""
    if not db_target.startswith("postgresql"):
        pytest.skip("SQLite serializes writers: two expire() transactions never overlap")
    import threading

    import psycopg

    from tests.conftest import PG_URL

    first = Ledger.open(db_target, lease_s=60)
    hold = _reserve(first)
    second = Ledger.open(db_target, lease_s=60)
    later = NOW + 120  # past the lease
    schema = db_target.split("search_path%3D", 1)[1]
    with psycopg.connect("postgresql://" + PG_URL.split("://", 1)[1]) as other:
        other.execute(f"SET search_path TO {schema}")
        # The other process's expire has claimed the row (deleted, not yet committed).
        other.execute("DELETE FROM reservations WHERE id = %s", (hold.id,))
        counted: list[int] = []
        racer = threading.Thread(target=lambda: counted.append(second.expire(now=later)))
        racer.start()
        pid = second._db.raw.info.backend_pid  # type: ignore[attr-defined]
        for _ in range(6000):  # up to 60 s, until the database says it waits on our lock
            waiting = other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                (pid,),
            ).fetchone()
            if waiting == (1,):
                break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("the second expire never reached the row")
        other.commit()  # the other process's transaction ends: the row is gone
        racer.join()
    assert counted == [0]
    assert second.read("SELECT COUNT(*) FROM calls WHERE hold_id = ?", (hold.id,)) == [(0,)]
    assert second.read("SELECT used, reserved FROM usage_windows WHERE provider = 'p'") == [
        (0.0, 1.0)  # left as the other process's own transaction would settle it
    ]
