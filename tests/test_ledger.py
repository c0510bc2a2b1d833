"""The reservation protocol, provider state and window rollover, on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from scheduler.config.schema import QuotaRule
from scheduler.errors import AuthFailed, QuotaExhausted, RateLimited
from scheduler.ledger import CallRecord, Hold, Ledger, Refusal
from scheduler.tasks import RateLimitReport


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def rule(**fields: object) -> QuotaRule:
    return QuotaRule.model_validate(fields)


@pytest.fixture
def ledger(db_target: str) -> Ledger:
    return Ledger.open(db_target, lease_s=60)


def record(provider: str = "p", outcome: str = "ok", **usage: float) -> CallRecord:
    return CallRecord(
        task="text", provider=provider, model="m", outcome=outcome, latency_ms=5, usage=usage
    )


def window(ledger: Ledger, provider: str = "p") -> list[tuple[object, ...]]:
    return ledger.read(
        "SELECT rule, window_start, used, reserved FROM usage_windows WHERE provider = ?"
        " ORDER BY rule, window_start",
        (provider,),
    )


def test_reserve_commit_moves_estimate_to_real_usage(ledger: Ledger) -> None:
    rules = [
        rule(metric="requests", limit=10, per="day"),
        rule(metric="tokens", limit=1000, per="day"),
    ]
    now = ts("2026-03-01T12:00:00")
    hold = ledger.reserve(
        "p", rules, {"requests": 1, "tokens": 300}, task="text", model="m", now=now
    )
    assert isinstance(hold, Hold)
    start = int(ts("2026-03-01T00:00:00"))
    assert window(ledger) == [
        ("requests/day@00:00 UTC", start, 0.0, 1.0),
        ("tokens/day@00:00 UTC", start, 0.0, 300.0),
    ]
    ledger.commit(hold, record(requests=1, tokens=42), now=now)
    assert window(ledger) == [
        ("requests/day@00:00 UTC", start, 1.0, 0.0),
        ("tokens/day@00:00 UTC", start, 42.0, 0.0),
    ]
    assert ledger.read("SELECT COUNT(*) FROM reservations") == [(0,)]
    calls = ledger.read("SELECT provider, outcome, usage FROM calls")
    assert calls == [("p", "ok", json.dumps({"requests": 1, "tokens": 42}))]


def test_a_full_window_refuses_with_its_reset_time(ledger: Ledger) -> None:
    rules = [rule(metric="requests", limit=2, per="day", reset="00:00", tz="America/Los_Angeles")]
    now = ts("2026-01-15T12:00:00")
    for _ in range(2):
        assert isinstance(
            ledger.reserve("p", rules, {"requests": 1}, task="text", model="m", now=now), Hold
        )
    refused = ledger.reserve("p", rules, {"requests": 1}, task="text", model="m", now=now)
    assert refused == Refusal(
        "quota full: 2 requests per day, resets 2026-01-16 00:00 PST", ts("2026-01-16T08:00:00")
    )


def test_a_refusal_on_one_rule_takes_no_hold_on_the_others(ledger: Ledger) -> None:
    rules = [
        rule(metric="requests", limit=100, per="day"),
        rule(metric="tokens", limit=50, per="minute"),
    ]
    now = ts("2026-01-15T12:00:30")
    assert isinstance(
        ledger.reserve("p", rules, {"requests": 1, "tokens": 40}, task="t", model="m", now=now),
        Hold,
    )
    refused = ledger.reserve(
        "p", rules, {"requests": 1, "tokens": 40}, task="t", model="m", now=now
    )
    assert isinstance(refused, Refusal)
    assert [(r[0], r[2], r[3]) for r in window(ledger)] == [
        ("requests/day@00:00 UTC", 0.0, 1.0),  # the refused call's request was rolled back
        ("tokens/minute", 0.0, 40.0),
    ]


def test_a_call_larger_than_the_limit_is_refused_without_a_transaction(ledger: Ledger) -> None:
    refused = ledger.reserve(
        "p", [rule(metric="tokens", limit=100, per="day")], {"tokens": 101}, task="t", model="m"
    )
    assert refused == Refusal("this call needs 101 tokens, more than the 100 tokens per day limit")
    assert window(ledger) == []


def test_release_gives_the_hold_back(ledger: Ledger) -> None:
    rules = [rule(metric="requests", limit=1, per="day")]
    hold = ledger.reserve("p", rules, {"requests": 1}, task="t", model="m")
    assert isinstance(hold, Hold)
    ledger.release(hold)
    assert [(r[2], r[3]) for r in window(ledger)] == [(0.0, 0.0)]
    assert isinstance(ledger.reserve("p", rules, {"requests": 1}, task="t", model="m"), Hold)


def test_expired_reservation_is_counted_as_used(ledger: Ledger) -> None:
    rules = [rule(metric="requests", limit=5, per="day")]
    now = ts("2026-05-05T10:00:00")
    hold = ledger.reserve("p", rules, {"requests": 1}, task="text", model="m", now=now)
    assert isinstance(hold, Hold)
    assert ledger.expire(now=now + 59) == 0  # lease not over yet
    assert ledger.expire(now=now + 61) == 1
    assert [(r[2], r[3]) for r in window(ledger)] == [(1.0, 0.0)]
    assert ledger.read("SELECT outcome FROM calls") == [("expired",)]
    assert ledger.read("SELECT COUNT(*) FROM reservations") == [(0,)]


def test_failures_set_provider_state(ledger: Ledger) -> None:
    now = ts("2026-05-05T10:00:00")
    ledger.record_failure(
        None, record("q", "quota_exhausted"), QuotaExhausted("out"), block_until=now + 3600, now=now
    )
    ledger.record_failure(
        None, record("r", "rate_limited"), RateLimited("slow"), block_until=now + 20, now=now
    )
    ledger.record_failure(
        None,
        record("k", "auth_failed"),
        AuthFailed("HTTP 401: bad"),
        key_fingerprint="fp1",
        now=now,
    )

    def reserve(name: str, at: float, fp: str | None = None) -> Hold | Refusal:
        return ledger.reserve(
            name, [], {"requests": 1}, task="t", model="m", key_fingerprint=fp, now=at
        )

    assert reserve("q", now + 10) == Refusal(
        "quota exhausted, resets 2026-05-05 11:00 UTC", now + 3600
    )
    assert isinstance(reserve("q", now + 3600), Hold)  # a finished window never leaves it blocked
    assert reserve("r", now + 10) == Refusal(
        "cooling down until 2026-05-05 10:00:20 UTC (slow)", now + 20
    )
    assert isinstance(reserve("r", now + 21), Hold)
    assert reserve("k", now, "fp1") == Refusal("disabled: HTTP 401: bad (fix the key to re-enable)")
    assert isinstance(reserve("k", now, "fp2"), Hold)  # a new key is tried again


def test_provider_reported_remaining_is_trusted_when_smaller(ledger: Ledger) -> None:
    now = ts("2026-05-05T10:00:00")
    rules = [rule(metric="requests", limit=1000, per="day")]
    hold = ledger.reserve("p", rules, {"requests": 1}, task="t", model="m", now=now)
    assert isinstance(hold, Hold)
    ledger.commit(
        hold, record(requests=1), rate_limits=[RateLimitReport("requests", 1, now + 30)], now=now
    )
    assert isinstance(
        ledger.reserve("p", rules, {"requests": 1}, task="t", model="m", now=now), Hold
    )
    refused = ledger.reserve("p", rules, {"requests": 1}, task="t", model="m", now=now + 1)
    assert refused == Refusal(
        "provider reports 0 requests left, resets 2026-05-05 10:00:30 UTC", now + 30
    )
    assert isinstance(
        ledger.reserve("p", rules, {"requests": 1}, task="t", model="m", now=now + 31), Hold
    )


@pytest.mark.parametrize(
    ("rule_fields", "last_instant", "first_instant"),
    [
        # A day at 00:00 America/Los_Angeles resets at 08:00 UTC in winter and 07:00 UTC in summer.
        ({"per": "day", "tz": "America/Los_Angeles"}, "2026-01-15T07:59:59", "2026-01-15T08:00:00"),
        ({"per": "day", "tz": "America/Los_Angeles"}, "2026-07-15T06:59:59", "2026-07-15T07:00:00"),
        (
            {"per": "day", "reset": "00:00", "tz": "UTC"},
            "2026-03-31T23:59:59",
            "2026-04-01T00:00:01",
        ),
        ({"per": "month", "day": 1}, "2026-02-28T23:59:59", "2026-03-01T00:00:00"),
        ({"per": "minute"}, "2026-03-01T10:00:59.900", "2026-03-01T10:01:00"),
    ],
)
def test_window_rollover_with_a_controlled_clock(
    db_target: str, rule_fields: dict[str, object], last_instant: str, first_instant: str
) -> None:
    limit = [rule(metric="requests", limit=1, **rule_fields)]
    ledger = Ledger.open(db_target)

    def reserve() -> Hold | Refusal:
        return ledger.reserve("p", limit, {"requests": 1}, task="t", model="m")

    with time_machine.travel(datetime.fromisoformat(last_instant).replace(tzinfo=UTC), tick=False):
        hold = reserve()
        assert isinstance(hold, Hold)
        ledger.commit(hold, record(requests=1))
        refused = reserve()
        assert isinstance(refused, Refusal)
        assert refused.until == pytest.approx(ts(first_instant), abs=1)
    with time_machine.travel(datetime.fromisoformat(first_instant).replace(tzinfo=UTC), tick=False):
        assert isinstance(reserve(), Hold)  # a new window starts at zero by itself, no cron needed


def test_new_database_is_owner_only_and_sound(tmp_path: Path) -> None:
    path = tmp_path / "quota.db"
    ledger = Ledger.open(str(path))
    assert path.stat().st_mode & 0o777 == 0o600
    assert ledger.integrity_check() == "ok"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
