"""Property tests of the reservation protocol: random interleavings never exceed a limit.

A hypothesis state machine drives one Ledger on a fresh SQLite file with reserve, commit (the
provider reports at most what was held), release, expire and a clock that moves forward across
minute, hour, day and UTC budget boundaries in three time zones. A plain-Python model keeps what
every window row must hold; after every step the database must equal the model exactly, and every
row must satisfy 0 <= reserved and used + reserved <= limit. Window arithmetic itself (every
instant in exactly one window, consecutive windows touching) is tests/test_windows.py's.

The protocol's contract is that a hold is settled once: by its process (commit, release) while
its lease runs, or by `expire()` after it. The two tests at the end show what happens to a hold
settled twice (see their reasons).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from scheduler.config.schema import Pricing, QuotaRule
from scheduler.ledger import CallRecord, Hold, Ledger, Refusal
from scheduler.ledger.store import BUDGET_SCOPE, BudgetLimit, SpendPolicy

LEASE_S = 600.0
PRICE = 0.25  # per request: a binary fraction, so sums of costs are exact
RULES = (
    QuotaRule(metric="requests", limit=3, per="minute"),
    QuotaRule(metric="requests", limit=7, per="day", reset="06:30", tz="America/New_York"),
    QuotaRule(metric="tokens", limit=120, per="hour", tz="Asia/Kolkata"),
    QuotaRule(metric="tokens", limit=400, per="total"),
)
GLOBAL_DAILY = BudgetLimit("day", 1.0)  # four paid calls per UTC day, over both providers
SPEND = SpendPolicy(
    pricing=Pricing(usd_per_request=PRICE), allow_paid=True, budgets=(GLOBAL_DAILY,)
)
PROVIDERS = ("p", "q")
START = datetime(2026, 3, 7, 23, 0, tzinfo=UTC).timestamp()  # a DST week-end in New York

Key = tuple[str, str, int]  # (window owner, rule id, window start)


def _limits() -> dict[str, float]:
    limits = {rule.rule_id: rule.limit for rule in RULES}
    limits[GLOBAL_DAILY.rule_id] = GLOBAL_DAILY.limit_usd
    return limits


class LedgerMachine(RuleBasedStateMachine):
    """One ledger, two providers with the same rules, one global budget; a model beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-props-"))
        self.ledger = Ledger.open(str(self.dir / "quota.db"), lease_s=LEASE_S)
        self.clock = START
        self.rows: dict[Key, list[float]] = {}  # key -> [used, reserved]
        self.live: dict[int, tuple[Hold, float]] = {}  # hold id -> (hold, reserved at)

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the model ---------------------------------------------------------------------------

    def _predict(self, provider: str, amounts: dict[str, float]) -> list[Key] | None:
        """The keys a hold takes, or None when the ledger must refuse it."""
        for quota in RULES:
            if amounts.get(quota.metric, 0) > quota.limit:
                return None  # more than the rule allows at all: refused before any transaction
        wanted: list[tuple[Key, float, float]] = []
        for quota in RULES:
            amount = amounts.get(quota.metric, 0)
            if amount > 0:
                start, _ = quota.window.bounds(self.clock)
                wanted.append(((provider, quota.rule_id, start), amount, quota.limit))
        cost = amounts["requests"] * PRICE
        start, _ = GLOBAL_DAILY.window.bounds(self.clock)
        money = GLOBAL_DAILY.limit_usd * (1 + 1e-9)
        wanted.append(((BUDGET_SCOPE, GLOBAL_DAILY.rule_id, start), cost, money))
        for key, amount, limit in wanted:
            used, reserved = self.rows.get(key, [0.0, 0.0])
            if used + reserved + amount > limit:
                return None
        for key, amount, _ in wanted:
            self.rows.setdefault(key, [0.0, 0.0])[1] += amount
        return [key for key, _, _ in wanted]

    def _settle(self, hold: Hold, usage: dict[str, float] | None) -> None:
        for owner, rule_id, start, metric, amount in hold.items:
            row = self.rows[(owner, rule_id, start)]
            row[1] -= amount
            row[0] += amount if usage is None else usage.get(metric, amount)

    # -- rules -------------------------------------------------------------------------------

    @rule(seconds=st.one_of(st.integers(0, 90), st.integers(0, 4 * 3600)))
    def advance(self, seconds: int) -> None:
        self.clock += seconds

    @rule(provider=st.sampled_from(PROVIDERS), tokens=st.integers(0, 130))
    def reserve(self, provider: str, tokens: int) -> None:
        amounts: dict[str, float] = {"requests": 1, "tokens": tokens}
        expected = self._predict(provider, amounts)
        result = self.ledger.reserve(
            provider, RULES, amounts, task="text", model="m", spend=SPEND, now=self.clock
        )
        if expected is None:
            assert isinstance(result, Refusal), result
            return
        assert isinstance(result, Hold), result
        assert [item[:3] for item in result.items] == expected
        assert result.estimated_cost == PRICE
        self.live[result.id] = (result, self.clock)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        hold, _ = self.live.pop(data.draw(st.sampled_from(list(self.live))))
        held = {
            metric: amount for owner, _, _, metric, amount in hold.items if owner != BUDGET_SCOPE
        }
        requests = data.draw(st.integers(0, int(held["requests"])))
        tokens = data.draw(st.integers(0, int(held.get("tokens", 0))))
        usage = {"requests": requests, "tokens": tokens, "usd": requests * PRICE}
        record = CallRecord("text", hold.provider, "m", "ok", 5.0, usage=usage)
        cost = self.ledger.commit(hold, record, now=self.clock)
        assert cost == requests * PRICE  # no free allowance: the whole list price is paid
        self._settle(hold, {**usage, "cost_usd": cost})

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hold, _ = self.live.pop(data.draw(st.sampled_from(list(self.live))))
        self.ledger.release(hold)
        self._settle(hold, {metric: 0.0 for *_, metric, _ in hold.items})

    @rule()
    def expire(self) -> None:
        dead = [hid for hid, (_, at) in self.live.items() if at + LEASE_S < self.clock]
        assert self.ledger.expire(now=self.clock) == len(dead)
        for hid in dead:
            hold, _ = self.live.pop(hid)
            self._settle(hold, None)  # the whole hold counts as used

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def database_matches_the_model_and_no_limit_is_exceeded(self) -> None:
        rows = self.ledger.read(
            "SELECT provider, rule, window_start, used, reserved FROM usage_windows"
        )
        actual = {
            (str(o), str(r), int(str(s))): [float(str(u)), float(str(v))] for o, r, s, u, v in rows
        }
        assert actual == self.rows
        limits = _limits()
        for (_, rule_id, _), (used, reserved) in actual.items():
            assert reserved >= 0
            assert used + reserved <= limits[rule_id] * (1 + 1e-9)
        assert self.ledger.read("SELECT COUNT(*) FROM reservations") == [(len(self.live),)]


LedgerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerInterleavings = LedgerMachine.TestCase


# -- a hold settled twice -------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(str(tmp_path / "quota.db"), lease_s=60)
    yield opened
    opened.close()


def _window(ledger: Ledger, owner: str, rule_id: str) -> list[tuple[object, ...]]:
    return ledger.read(
        "SELECT used, reserved FROM usage_windows WHERE provider = ? AND rule = ?",
        (owner, rule_id),
    )


def test_expire_counts_a_dead_call_once_in_each_budget(ledger: Ledger) -> None:
    own = BudgetLimit("day", 1.0, scope="p")
    spend = SpendPolicy(
        pricing=Pricing(usd_per_request=PRICE), allow_paid=True, budgets=(GLOBAL_DAILY, own)
    )
    now = START
    hold = ledger.reserve("p", RULES, {"requests": 1}, task="text", model="m", spend=spend, now=now)
    assert isinstance(hold, Hold)
    assert ledger.expire(now=now + 61) == 1
    # The dead call may have cost $0.25; each budget must count $0.25 of it, not $0.50.
    assert _window(ledger, BUDGET_SCOPE, "budget/day") == [(PRICE, 0.0)]
    assert _window(ledger, "p", "budget/day") == [(PRICE, 0.0)]
    assert ledger.read("SELECT outcome, cost_usd FROM calls") == [("expired", PRICE)]


def test_a_call_that_outlives_its_lease_is_not_counted_twice(ledger: Ledger) -> None:
    limit = [QuotaRule(metric="requests", limit=2, per="day")]
    now = START
    slow = ledger.reserve("p", limit, {"requests": 1}, task="text", model="m", now=now)
    other = ledger.reserve("p", limit, {"requests": 1}, task="text", model="m", now=now + 30)
    assert isinstance(slow, Hold) and isinstance(other, Hold)
    assert ledger.expire(now=now + 61) == 1  # the slow call's lease ran out; it is still running
    ledger.commit(slow, CallRecord("text", "p", "m", "ok", 70_000, usage={"requests": 1}))
    ledger.commit(other, CallRecord("text", "p", "m", "ok", 50, usage={"requests": 1}))
    # Two calls were served against a limit of two.
    assert ledger.read("SELECT used, reserved FROM usage_windows") == [(2.0, 0.0)]
