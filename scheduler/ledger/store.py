"""The quota ledger: reserve before a call, settle after it, never let concurrent runs overspend.

Every operation is one short write transaction (SQLite `BEGIN IMMEDIATE`, so writers queue on the
database lock instead of racing). A reservation adds its estimate to `reserved` of every quota
window of the provider with one conditional upsert per rule: the row changes only if
`used + reserved + amount <= limit`, so the check and the hold are a single atomic step and no
read-then-write race exists. Settling moves the hold to `used` (with the provider's real figures)
or drops it. A hold left by a dead process keeps blocking its quota until its lease expires and is
then counted as used: the provider may have served it, and we never risk the real quota.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from scheduler.config.schema import MAX_BLOCK_S, Pricing, QuotaRule
from scheduler.cost import FreeShare, is_billable, list_price, paid_share
from scheduler.errors import LedgerError, ProviderError, redact
from scheduler.ledger import trust
from scheduler.ledger.checkpoint import WalCheckpointer
from scheduler.ledger.db import Busy, Database, connect, describe_error
from scheduler.ledger.journal import Journal, journal_path
from scheduler.ledger.models import Retired
from scheduler.tasks import RateLimitReport
from scheduler.windows import WindowSpec, format_instant

# A provider that reported limits without a reset time is trusted for this long.
REPORT_TTL_S = 60.0

_RESERVE_WINDOW = (
    "INSERT INTO usage_windows (provider, rule, window_start, metric, period, window_end, used,"
    " reserved) VALUES (?, ?, ?, ?, ?, ?, 0, ?)"
    " ON CONFLICT (provider, rule, window_start) DO UPDATE"
    " SET reserved = usage_windows.reserved + excluded.reserved"
    " WHERE usage_windows.used + usage_windows.reserved + excluded.reserved <= ?"
    " RETURNING used, reserved"
)
# A limit no window reaches: free allowances past which `allow_paid` lets usage continue.
_UNLIMITED = 1e300
BUDGET_SCOPE = "*budget*"  # usage_windows.provider of the global budget's windows
_SETTLE_WINDOW = (
    "UPDATE usage_windows SET"
    " reserved = CASE WHEN reserved > ? THEN reserved - ? ELSE 0 END, used = used + ?"
    " WHERE provider = ? AND rule = ? AND window_start = ?"
)
_INSERT_CALL = (
    "INSERT INTO calls (ts, task, provider, model, outcome, error, latency_ms, tries, usage,"
    " cost_usd, list_usd, hold_id, flag, prompt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# What other specs of a rule (its reset time or zone before an edit) hold in windows overlapping
# this one; the rule ids the table uses now for this metric and period are excluded.
# The second column counts every such window that ends after this one starts, overlapping or
# later: while it is 0 no window of another spec can be carried until a new row appears (which
# bumps the ledger generation).
_CARRIED = (
    "SELECT COALESCE(SUM(CASE WHEN window_start < ? THEN used + reserved ELSE 0 END), 0),"
    " COUNT(*) FROM usage_windows WHERE provider = ? AND metric = ? AND period = ?"
    " AND window_end > ? AND rule NOT IN ({})"
)
_GENERATION = "SELECT n, limits_n FROM ledger_generation WHERE id = 1"
_RETIRED = (
    "SELECT model, retired_at, retired_reason FROM model_state WHERE provider = ? AND retired = 1"
)
_SPEC_PERIODS = ("hour", "day", "month")  # periods whose rule id names a reset time or zone
# The provider_state a successful call clears (a rejected key is cleared too, see quiet).
_CLEARED_BY_SUCCESS = frozenset({"rate_limited", "transient"})
LATE = "settled after its lease expired (counted as estimated until then)"
JOURNALED = "recorded late, from the journal"


Item = tuple[str, str, int, str, float]  # (window owner, rule_id, window_start, metric, amount)


@dataclass(frozen=True)
class Hold:
    """A reservation: which window rows carry how much of it, and what it may cost."""

    id: int
    provider: str
    items: tuple[Item, ...]
    free: tuple[FreeShare, ...] = ()  # what each free allowance had left when reserved
    billable: bool = False
    estimated_cost: float = 0.0
    # What the reservation estimated per metric (with its list price as `usd`) and the prices
    # it was made at: what replaces a figure the provider reports that cannot be believed.
    estimate: tuple[tuple[str, float], ...] = ()
    pricing: Pricing | None = None
    # The model is marked retired and a probe is trying it anyway (served: lift the mark).
    retired: bool = False
    # The provider had no block or disabled key to clear when this was reserved (a success then
    # has no provider_state row to update); False when unknown, as for a journaled hold.
    quiet: bool = False

    def estimated(self) -> dict[str, float]:
        """The estimate per metric; a hold rebuilt from its row has only its quota items."""
        if self.estimate:
            return dict(self.estimate)
        return {m: a for owner, _, _, m, a in self.items if owner == self.provider}


@dataclass(frozen=True)
class BudgetLimit:
    """A USD cap per UTC day or month, on all providers (`scope` None) or one."""

    per: Literal["day", "month"]
    limit_usd: float
    scope: str | None = None

    @property
    def rule_id(self) -> str:
        return f"budget/{self.per}"

    @property
    def window(self) -> WindowSpec:
        return _BUDGET_WINDOWS[self.per]


_BUDGET_WINDOWS = {"day": WindowSpec("day"), "month": WindowSpec("month")}


@dataclass(frozen=True)
class CallerLimits:
    """Limits of whoever makes the call (a gateway token), across every provider. They are held
    in the same transaction as the provider's quota, so no number of workers passes them."""

    owner: str  # the usage_windows owner of these limits, e.g. "token:ci-bot"
    requests_per_day: int | None = None
    daily_usd: float | None = None
    monthly_usd: float | None = None


@dataclass(frozen=True)
class SpendPolicy:
    """What a call may cost: the provider's prices and the run's and user's limits."""

    pricing: Pricing
    allow_paid: bool = False
    free_only: bool = False
    max_cost: float | None = None  # what this run may still spend (--max-cost)
    budgets: tuple[BudgetLimit, ...] = ()
    caller: CallerLimits | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a provider cannot take this call now, and when that ends (None: not by itself)."""

    reason: str
    until: float | None = None
    retired: Retired | None = None  # the model is marked retired: the provider's next model


@dataclass(frozen=True)
class _Known:
    """What one reservation of a provider (with one rule set) found besides its windows, valid
    while the ledger generation stays `generation` (every change to these facts bumps it)."""

    generation: int
    quiet: bool  # no provider_state row that refuses, or that a success would clear
    limits_generation: int
    no_limits: bool  # no provider_limits row still in force (while limits_generation holds)
    uncarried: frozenset[str]  # rule ids with no window of another spec that may overlap
    retired: Mapping[str, Retired]  # the provider's retired models


class _Refused(Exception):
    """Raised inside a reservation transaction to roll it back and return the refusal."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


@dataclass(frozen=True)
class CallRecord:
    """What the dispatcher tells the ledger about one finished attempt."""

    task: str
    provider: str
    model: str
    outcome: str
    latency_ms: float
    tries: int = 1
    usage: Mapping[str, float] | None = None
    cost_usd: float = 0.0
    error: str | None = None
    prompt: str | None = None  # the task's text, with settings.log_prompts only

    @property
    def list_usd(self) -> float:
        """The call at list price (what it would have cost with no free allowance)."""
        return float((self.usage or {}).get("usd", 0.0))


class Ledger:
    """The shared quota ledger of every process pointing at the same database."""

    def __init__(
        self,
        conn: Database | sqlite3.Connection,
        *,
        lease_s: float = 90.0,
        name: str = "",
        max_block_s: float = MAX_BLOCK_S,
    ) -> None:
        self._db = conn if isinstance(conn, Database) else Database(conn, "sqlite", name)
        self._lock = threading.Lock()  # one transaction at a time per connection
        self._holder: int | None = None  # the thread inside no_wait(), which holds _lock
        self.lease_s = lease_s
        self.max_block_s = max_block_s  # settings.max_block_s
        self.name = name
        self.journal = Journal(journal_path(self._db.dialect, self._db.name))
        # Per (provider, rule ids): what the last reservation found, while the generation holds.
        self._known: dict[tuple[str, tuple[str, ...]], _Known] = {}
        sqlite_file = self._db.dialect == "sqlite" and name not in ("", ":memory:")
        self._wal = WalCheckpointer(name) if sqlite_file else None

    @classmethod
    def open(
        cls, target: str, *, lease_s: float = 90.0, max_block_s: float = MAX_BLOCK_S
    ) -> Ledger:
        """Open (and migrate) the ledger and count the calls its journal holds."""
        db = connect(target)
        ledger = cls(db, lease_s=lease_s, name=db.name, max_block_s=max_block_s)
        ledger.replay_journal()
        return ledger

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._wal is not None:
            self._wal.close()
        self._db.close()

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @contextmanager
    def no_wait(self) -> Iterator[None]:
        """Within the block a transaction that would wait (for this connection's lock or the
        database's write lock) raises `Busy` before doing anything (see AsyncLedger)."""
        if not self._lock.acquire(blocking=False):
            raise Busy
        try:
            self._db.wait = False
            self._holder = threading.get_ident()
            yield
        finally:
            self._holder = None
            self._db.wait = True
            self._lock.release()

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One write transaction; database errors become LedgerError with advice."""
        with self._reentrant():
            db = self._db
            try:
                db.begin()
            except db.errors as exc:
                raise LedgerError(describe_error(self.name, exc)) from None
            try:
                yield db
            except db.errors as exc:
                db.rollback()
                raise LedgerError(describe_error(self.name, exc)) from exc
            except BaseException:
                db.rollback()
                raise
            try:
                db.commit()
            except db.errors as exc:
                db.rollback()
                raise LedgerError(describe_error(self.name, exc)) from None
            if self._wal is not None:
                self._wal.committed()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction, for the ledger package's own modules (tokens, maintenance):
        the database lock is held until the block ends, and an error rolls it all back."""
        with self._write() as conn:
            yield conn

    @contextmanager
    def _reentrant(self) -> Iterator[None]:
        """The connection's lock, unless `no_wait` already holds it for this very call."""
        if self._holder == threading.get_ident():
            yield
            return
        with self._lock:
            yield

    def read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """A read-only query for reports (WAL readers never wait for the writer)."""
        with self._reentrant():
            try:
                rows: list[tuple[object, ...]] = self._db.execute(sql, params).fetchall()
                return rows
            except self._db.errors as exc:
                raise LedgerError(describe_error(self.name, exc)) from None

    # -- reservation protocol ---------------------------------------------------------------

    def reserve(
        self,
        provider: str,
        rules: Sequence[QuotaRule],
        amounts: Mapping[str, float],
        *,
        task: str,
        model: str,
        key_fingerprint: str | None = None,
        spend: SpendPolicy | None = None,
        probe: bool = False,
        now: float | None = None,
    ) -> Hold | Refusal:
        """Hold `amounts` against every rule of `provider` and, for a paid call, its estimated
        cost against the budgets, all in one transaction; or say why it cannot take the call.

        `probe` is the cron service's health probe: the provider's failure-rate block (and only
        that: a rejected key, quota and budgets still apply) lets this one call through, while
        every other caller keeps seeing the block."""
        now = time.time() if now is None else now
        self.replay_journal()
        amounts = dict(amounts)
        if spend is not None:
            amounts["usd"] = list_price(amounts, spend.pricing)
        for rule in rules:
            amount = amounts.get(rule.metric, 0)
            if amount > rule.limit and not _soft(rule, spend):
                return Refusal(
                    f"this call needs {amount:g} {rule.metric}, more than the {_describe(rule)}"
                    " limit"
                )
        try:
            return self._reserve(
                provider, rules, amounts, task, model, key_fingerprint, spend, probe, now
            )
        except _Refused as refused:
            return refused.refusal

    def _reserve(
        self,
        provider: str,
        rules: Sequence[QuotaRule],
        amounts: Mapping[str, float],
        task: str,
        model: str,
        key_fingerprint: str | None,
        spend: SpendPolicy | None,
        probe: bool,
        now: float,
    ) -> Hold | Refusal:
        with self._write() as conn:
            key = (provider, tuple(rule.rule_id for rule in rules))
            generation, limits_generation = map(int, conn.execute(_GENERATION).fetchone())
            known = self._known.get(key)
            limits_known = known is not None and known.limits_generation == limits_generation
            retired: Mapping[str, Retired]
            if known is None or known.generation != generation:
                known = None  # read everything; what is found is kept below
                retired = self._retired(conn, provider)
            else:
                retired = known.retired
            mark = retired.get(model)
            if mark is not None and not probe:
                return Refusal(f"model {model} retired", retired=mark)
            quiet = known is not None and known.quiet
            if not quiet:
                refusal, quiet = self._state_refusal(
                    conn, provider, key_fingerprint, now, probe=probe
                )
                if refusal is not None:
                    return refusal
            items: list[Item] = []
            free: list[FreeShare] = []
            uncarried: set[str] = set()
            for rule in rules:
                amount = amounts.get(rule.metric, 0)
                if amount <= 0:
                    continue
                start, end = rule.window.bounds(now)
                carried = 0.0
                if known is None or rule.rule_id not in known.uncarried:
                    carried, others = _carried_rows(conn, provider, rules, rule, start, end)
                    if not others:
                        uncarried.add(rule.rule_id)
                else:
                    uncarried.add(rule.rule_id)
                limit = _UNLIMITED if _soft(rule, spend) else rule.limit - carried
                row = None
                if amount <= limit:  # the upsert's condition guards only an existing row
                    row = conn.execute(
                        _RESERVE_WINDOW,
                        (provider, rule.rule_id, start, rule.metric, rule.per, end, amount, limit),
                    ).fetchone()
                if row is None:  # the conditional upsert found the window full
                    raise _Refused(Refusal(_full_reason(rule, end, spend), _until(end)))
                if rule.free:
                    used, reserved = row
                    left = rule.limit - (used + reserved - amount) - carried
                    free.append(FreeShare(rule.metric, left))
                items.append((provider, rule.rule_id, start, rule.metric, float(amount)))
            no_limits = limits_known and known is not None and known.no_limits
            if not no_limits:
                refusal, no_limits = self._reported_refusal(conn, provider, amounts, now)
                if refusal is not None:
                    raise _Refused(refusal)  # rolls back the holds taken above
            if known is not None:
                uncarried |= known.uncarried  # rules this call held nothing on stay known
            if known is None or known.uncarried != uncarried or not limits_known:
                self._known[key] = _Known(
                    generation, quiet, limits_generation, no_limits, frozenset(uncarried), retired
                )
            billable = spend is not None and is_billable(spend.pricing)
            cost = amounts.get("usd", 0.0) * paid_share(amounts, free, billable)
            if spend is not None and cost > 0:
                items += self._hold_budget(conn, provider, spend, cost, bool(free), now)
            if spend is not None and spend.caller is not None:
                items += self._hold_caller(conn, spend.caller, cost, now)
            hold_id = secrets.randbits(62) + 1  # never reused, not even by a new ledger file
            conn.execute(
                "INSERT INTO reservations (id, provider, task, model, created_at, expires_at,"
                " pid, items) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hold_id,
                    provider,
                    task,
                    model,
                    now,
                    now + self.lease_s,
                    os.getpid(),
                    json.dumps(items),
                ),
            )
            return Hold(
                hold_id,
                provider,
                tuple(items),
                tuple(free),
                billable,
                cost,
                tuple(amounts.items()),
                spend.pricing if spend is not None else None,
                retired=mark is not None,
                quiet=quiet,
            )

    @staticmethod
    def _hold_budget(
        conn: Database,
        provider: str,
        spend: SpendPolicy,
        cost: float,
        has_free: bool,
        now: float,
    ) -> list[Item]:
        """Refuse a paid call the run or the user does not allow; hold its cost in each budget."""
        about = f"about ${cost:.4f}"
        if spend.free_only:
            raise _Refused(Refusal(f"would cost {about}; --free-only refuses paid calls"))
        if not spend.allow_paid:
            why = "free allowance used up" if has_free else "paid provider"
            raise _Refused(Refusal(f"{why}: would cost {about} and allow_paid is off"))
        if spend.max_cost is not None and cost > spend.max_cost:
            raise _Refused(
                Refusal(f"would cost {about}, more than --max-cost leaves (${spend.max_cost:.4f})")
            )
        items: list[Item] = []
        for budget in spend.budgets:
            if budget.scope not in (None, provider):
                continue
            owner = BUDGET_SCOPE if budget.scope is None else provider
            start, end = budget.window.bounds(now)
            # The upsert's condition guards only an existing window row: check a new one here.
            row = None
            if cost <= _money(budget):
                row = conn.execute(
                    _RESERVE_WINDOW,
                    (
                        owner,
                        budget.rule_id,
                        start,
                        "cost_usd",
                        budget.per,
                        end,
                        cost,
                        _money(budget),
                    ),
                ).fetchone()
            if row is None:
                which = "daily" if budget.per == "day" else "monthly"
                whose = "" if budget.scope is None else f" {provider}"
                raise _Refused(
                    Refusal(
                        f"{which}{whose} budget ${budget.limit_usd:.2f} would be exceeded"
                        f" (call {about}), resets {format_instant(end or 0, 'UTC')}",
                        _until(end),
                    )
                )
            items.append((owner, budget.rule_id, start, "cost_usd", cost))
        return items

    @staticmethod
    def _hold_caller(conn: Database, caller: CallerLimits, cost: float, now: float) -> list[Item]:
        """Hold one request and the call's cost against the caller's own limits (UTC days and
        months, like the budgets)."""
        wanted = (
            ("requests/day", "requests", "day", 1.0, caller.requests_per_day),
            ("budget/day", "cost_usd", "day", cost, caller.daily_usd),
            ("budget/month", "cost_usd", "month", cost, caller.monthly_usd),
        )
        items: list[Item] = []
        for rule_id, metric, per, amount, limit in wanted:
            if limit is None or amount <= 0:
                continue
            start, end = _BUDGET_WINDOWS[per].bounds(now)
            row = None
            if amount <= limit:  # the upsert's condition guards only an existing row
                row = conn.execute(
                    _RESERVE_WINDOW,
                    (caller.owner, rule_id, start, metric, per, end, amount, limit),
                ).fetchone()
            if row is None:
                which = "daily" if per == "day" else "monthly"
                what = f"{limit:g} requests" if metric == "requests" else f"budget ${limit:.2f}"
                raise _Refused(
                    Refusal(
                        f"{caller.owner}: {which} {what} reached, resets"
                        f" {format_instant(end or 0, 'UTC')}",
                        _until(end),
                    )
                )
            items.append((caller.owner, rule_id, start, metric, amount))
        return items

    @staticmethod
    def _retired(conn: Database, provider: str) -> dict[str, Retired]:
        return {
            str(model): Retired(provider, str(model), float(str(since or 0)), str(reason or ""))
            for model, since, reason in conn.execute(_RETIRED, (provider,)).fetchall()
        }

    def _state_refusal(
        self, conn: Database, provider: str, key_fp: str | None, now: float, *, probe: bool = False
    ) -> tuple[Refusal | None, bool]:
        """Why the provider's state refuses the call, or None; and whether that state is quiet:
        nothing that refuses any call or that a success would clear, now or later."""
        row = conn.execute(
            "SELECT blocked_until, block_outcome, block_reason, disabled, disabled_key,"
            " disabled_reason FROM provider_state WHERE provider = ?",
            (provider,),
        ).fetchone()
        if row is None:
            return None, True
        refusal = self._row_refusal(conn, provider, row, key_fp, now, probe=probe)
        _, outcome, _, disabled, _, _ = row
        quiet = refusal is None and not disabled and outcome not in _CLEARED_BY_SUCCESS
        blocked_until = row[0]
        quiet = quiet and trust.until(blocked_until, now, self.max_block_s) == blocked_until
        return refusal, quiet and (blocked_until or 0) <= now

    def _row_refusal(
        self,
        conn: Database,
        provider: str,
        row: tuple[Any, ...],
        key_fp: str | None,
        now: float,
        *,
        probe: bool,
    ) -> Refusal | None:
        blocked_until, outcome, reason, disabled, disabled_key, disabled_reason = row
        if disabled and (key_fp is None or key_fp == disabled_key):
            return Refusal(f"disabled: {disabled_reason} (fix the key to re-enable)")
        sane = trust.until(blocked_until, now, self.max_block_s)
        if sane != blocked_until:  # written before the ledger clamped what providers say
            sane = 0.0 if sane is None else sane
            conn.execute(
                "UPDATE provider_state SET blocked_until = ? WHERE provider = ?", (sane, provider)
            )
            blocked_until = sane
        if blocked_until > now:
            if outcome == "unhealthy":  # set by the cron service's failure-rate check
                if probe:
                    return None
                return Refusal(f"disabled: {reason} (re-probed by the cron service)", blocked_until)
            when = format_instant(int(blocked_until), "UTC")
            if outcome == "quota_exhausted":
                return Refusal(f"quota exhausted, resets {when}", blocked_until)
            return Refusal(f"cooling down until {when} ({reason})", blocked_until)
        return None

    def _reported_refusal(
        self, conn: Database, provider: str, amounts: Mapping[str, float], now: float
    ) -> tuple[Refusal | None, bool]:
        """Trust the provider's own remaining count when it is smaller than ours; and whether
        no report is in force at all (then none is until a new one is stored)."""
        rows = conn.execute(
            "SELECT metric, remaining, resets_at FROM provider_limits"
            " WHERE provider = ? AND resets_at > ?",
            (provider, now),
        ).fetchall()
        return self._limits_refusal(conn, provider, rows, amounts, now), not rows

    def _limits_refusal(
        self,
        conn: Database,
        provider: str,
        rows: Sequence[tuple[Any, ...]],
        amounts: Mapping[str, float],
        now: float,
    ) -> Refusal | None:
        for metric, remaining, resets_at in rows:
            amount = amounts.get(metric, 0)
            if amount <= 0 or trust.finite(remaining) is None:
                continue  # a figure a provider made up before the ledger checked them
            if resets_at > now + self.max_block_s:  # stored before the ledger clamped it
                resets_at = now + self.max_block_s
                conn.execute(
                    "UPDATE provider_limits SET resets_at = ? WHERE provider = ? AND metric = ?",
                    (resets_at, provider, metric),
                )
            if remaining < amount:
                when = format_instant(int(resets_at), "UTC")
                return Refusal(
                    f"provider reports {remaining:g} {metric} left, resets {when}", resets_at
                )
            conn.execute(
                "UPDATE provider_limits SET remaining = remaining - ? WHERE provider = ?"
                " AND metric = ?",
                (amount, provider, metric),
            )
        return None

    def release(self, hold: Hold) -> None:
        """Drop a hold without using it (the call failed before the provider served it)."""
        with self._write() as conn:
            self._settle(conn, hold, None)

    def commit(
        self,
        hold: Hold,
        record: CallRecord,
        *,
        rate_limits: Sequence[RateLimitReport] = (),
        now: float | None = None,
    ) -> float:
        """Turn a hold into the provider's real usage and its cost, log the call, clear transient
        blocks. `record.usage` carries the real usage with its list price as `usd`; returns what
        the call cost the user (the part no free allowance covered).

        Every settlement passes the trust boundary first (`trust.settle_usage`: what a provider
        reports is never believed below zero or beyond reason). When the database cannot take
        it, the settlement goes to the journal and LedgerError says so: the call was served and
        is counted by the next process that opens the ledger."""
        now = time.time() if now is None else now
        record, flags = self._trusted(hold, record)
        reports = self._trusted_reports(rate_limits, now)
        try:
            with self._write() as conn:
                return self._apply_commit(conn, hold, record, flags, reports, now)
        except LedgerError as exc:
            raise self._journaled(exc, hold, record, flags, reports, now) from None

    def _trusted(self, hold: Hold, record: CallRecord) -> tuple[CallRecord, tuple[str, ...]]:
        settled = trust.settle_usage(record.usage or {}, hold.estimated(), hold.pricing)
        return replace(record, usage=settled.usage), settled.flags

    def _trusted_reports(
        self, reports: Sequence[RateLimitReport], now: float
    ) -> list[RateLimitReport]:
        clean = (trust.rate_report(report, now, self.max_block_s) for report in reports)
        return [report for report in clean if report is not None]

    def _apply_commit(
        self,
        conn: Database,
        hold: Hold,
        record: CallRecord,
        flags: Sequence[str],
        reports: Sequence[RateLimitReport],
        now: float,
    ) -> float:
        """Settle `hold` once with the (already trusted) `record`; returns the call's cost.

        A hold is settled once, by its id: the reservation row goes first. When it is already
        gone, the calls row carrying the hold's id says why: `expired` (its lease ran out under
        a slow live call, and expire() counted the estimate): that row and the windows move to
        the real figures, so the call counts once; any other outcome: this settlement was
        recorded already (a journal replayed twice), and nothing changes."""
        usage = dict(record.usage or {})
        cost = usage.get("usd", 0.0) * paid_share(usage, hold.free, hold.billable)
        record = replace(record, cost_usd=cost)
        if self._settle(conn, hold, {**usage, "cost_usd": cost}):
            self._insert_call(conn, record, now, hold_id=hold.id, flag=_flag(flags))
        else:
            row = conn.execute(
                "SELECT id, outcome, cost_usd FROM calls WHERE hold_id = ?", (hold.id,)
            ).fetchone()
            if row is not None and row[1] != "expired":
                return float(row[2])
            real = {**usage, "cost_usd": cost}
            for owner, rule_id, start, metric, amount in hold.items:
                counted = amount if row is not None else 0.0  # what expire() counted
                delta = float(real.get(metric, amount)) - counted
                conn.execute(
                    "UPDATE usage_windows SET used = CASE WHEN used + ? < 0 THEN 0"
                    " ELSE used + ? END WHERE provider = ? AND rule = ? AND window_start = ?",
                    (delta, delta, owner, rule_id, start),
                )
            if row is None:  # a ledger that never saw the hold (moved aside, started anew)
                self._insert_call(conn, record, now, hold_id=hold.id, flag=_flag(flags))
            else:
                self._update_call(conn, int(row[0]), record, _flag([*flags, LATE]))
        self._store_reports(conn, hold.provider, reports, now)
        if hold.quiet:  # nothing to clear when reserved; a block set since is newer news
            return cost
        conn.execute(
            "UPDATE provider_state SET blocked_until = 0, block_outcome = NULL,"
            " block_reason = NULL, disabled = 0, disabled_key = NULL, disabled_reason = NULL,"
            " updated_at = ? WHERE provider = ? AND (disabled = 1 OR block_outcome IN"
            " ('rate_limited', 'transient'))",
            (now, hold.provider),
        )
        return cost

    def _journaled(
        self,
        exc: LedgerError,
        hold: Hold,
        record: CallRecord,
        flags: Sequence[str],
        reports: Sequence[RateLimitReport],
        now: float,
    ) -> LedgerError:
        """Write the settlement the database refused to the journal; the error to raise."""
        entry = {
            "hold": _hold_json(hold),
            "record": asdict(record),
            "flags": list(flags),
            "rate_limits": [asdict(report) for report in reports],
            "now": now,
        }
        try:
            self.journal.append(entry)
        except (OSError, ValueError) as err:
            why = getattr(err, "strerror", None) or str(err)
            return LedgerError(
                f"{exc}; the served call could not be journaled either ({why}): its hold"
                " expires as used after its lease"
            )
        return LedgerError(
            f"{exc}; the served call was journaled to {self.journal.path} and is counted when"
            " the ledger is next opened"
        )

    def replay_journal(self) -> int:
        """Count the calls the journal holds (settlements a failing database refused); how
        many entries it applied. Quiet when the ledger still cannot take them: they wait."""
        if not self.journal.pending():
            return 0
        try:
            with self.journal.draining() as entries, self._write() as conn:
                for entry in entries:
                    decoded = _decode_entry(entry)
                    if decoded is not None:
                        hold, record, flags, reports, now = decoded
                        flags = [*flags, JOURNALED]
                        self._apply_commit(conn, hold, record, flags, reports, now)
                return len(entries)
        except (LedgerError, OSError):
            return 0

    def record_failure(
        self,
        hold: Hold | None,
        record: CallRecord,
        error: ProviderError,
        *,
        block_until: float | None = None,
        key_fingerprint: str | None = None,
        rate_limits: Sequence[RateLimitReport] = (),
        now: float | None = None,
    ) -> None:
        """Release the hold, log the failed attempt and put the provider in its new state.
        The block is the provider's own word: at most `max_block_s` long."""
        now = time.time() if now is None else now
        block_until = trust.until(block_until, now, self.max_block_s)
        reports = self._trusted_reports(rate_limits, now)
        with self._write() as conn:
            hold_id = None
            if hold is not None and self._settle(conn, hold, None):
                hold_id = hold.id
            self._insert_call(conn, record, now, hold_id=hold_id)
            self._store_reports(conn, record.provider, reports, now)
            reason = redact(str(error))[:300]
            if error.outcome == "auth_failed":
                conn.execute(
                    "INSERT INTO provider_state (provider, disabled, disabled_key,"
                    " disabled_reason, updated_at) VALUES (?, 1, ?, ?, ?) ON CONFLICT (provider)"
                    " DO UPDATE SET disabled = 1, disabled_key = excluded.disabled_key,"
                    " disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
                    (record.provider, key_fingerprint, reason, now),
                )
            elif block_until is not None and block_until > now:
                conn.execute(
                    "INSERT INTO provider_state (provider, blocked_until, block_outcome,"
                    " block_reason, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider)"
                    " DO UPDATE SET blocked_until = CASE WHEN provider_state.blocked_until >"
                    " excluded.blocked_until THEN provider_state.blocked_until ELSE"
                    " excluded.blocked_until END, block_outcome = excluded.block_outcome,"
                    " block_reason = excluded.block_reason, updated_at = excluded.updated_at",
                    (record.provider, block_until, error.outcome, reason, now),
                )

    def record_call(self, record: CallRecord, *, now: float | None = None) -> None:
        """Log a call as given, touching no quota: for imports of history and test seeding."""
        with self._write() as conn:
            self._insert_call(conn, record, time.time() if now is None else now)

    def _settle(self, conn: Database, hold: Hold, usage: Mapping[str, float] | None) -> bool:
        """Replace each held amount by the real one (None: the call used nothing); False when
        the hold was settled already (its row is gone) and the windows were left alone.

        A hold is settled once: the reservation row is deleted first, and when it is already
        gone (its lease expired, so expire() counted it as used) the windows are left alone, or
        a call that outlived its lease would be counted twice.
        """
        if conn.execute("DELETE FROM reservations WHERE id = ?", (hold.id,)).rowcount == 0:
            return False
        for owner, rule_id, start, metric, amount in hold.items:
            used = 0.0 if usage is None else float(usage.get(metric, amount))
            conn.execute(_SETTLE_WINDOW, (amount, amount, used, owner, rule_id, start))
        return True

    @staticmethod
    def _insert_call(
        conn: Database,
        record: CallRecord,
        now: float,
        *,
        hold_id: int | None = None,
        flag: str | None = None,
    ) -> None:
        conn.execute(
            _INSERT_CALL,
            (
                now,
                record.task,
                record.provider,
                record.model,
                record.outcome,
                record.error,
                record.latency_ms,
                record.tries,
                json.dumps(dict(record.usage or {})),
                record.cost_usd,
                record.list_usd,
                hold_id,
                flag,
                record.prompt,
            ),
        )

    @staticmethod
    def _update_call(conn: Database, call_id: int, record: CallRecord, flag: str | None) -> None:
        conn.execute(
            "UPDATE calls SET model = ?, outcome = ?, error = ?, latency_ms = ?, tries = ?,"
            " usage = ?, cost_usd = ?, list_usd = ?, flag = ? WHERE id = ?",
            (
                record.model,
                record.outcome,
                record.error,
                record.latency_ms,
                record.tries,
                json.dumps(dict(record.usage or {})),
                record.cost_usd,
                record.list_usd,
                flag,
                call_id,
            ),
        )

    @staticmethod
    def _store_reports(
        conn: Database, provider: str, reports: Sequence[RateLimitReport], now: float
    ) -> None:
        """Store reports that passed `trust.rate_report` (finite, resets clamped)."""
        for report in reports:
            resets_at = report.resets_at if report.resets_at is not None else now + REPORT_TTL_S
            conn.execute(
                'INSERT INTO provider_limits (provider, metric, remaining, "limit", resets_at,'
                " reported_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (provider, metric) DO UPDATE"
                ' SET remaining = excluded.remaining, "limit" = excluded."limit",'
                " resets_at = excluded.resets_at, reported_at = excluded.reported_at",
                (provider, report.metric, report.remaining, report.limit, resets_at, now),
            )

    def expire(self, *, now: float | None = None) -> int:
        """Count holds whose lease ran out as used (their process died ); return how many."""
        now = time.time() if now is None else now
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id, provider, task, model, created_at, items FROM reservations"
                " WHERE expires_at < ?",
                (now,),
            ).fetchall()
            expired = 0
            for res_id, provider, task, model, created_at, items_json in rows:
                items = tuple(
                    (str(owner), str(rule_id), int(start), str(metric), float(amount))
                    for owner, rule_id, start, metric, amount in json.loads(items_json)
                )
                hold = Hold(res_id, provider, items)
                usage = {
                    metric: amount
                    for owner, _, _, metric, amount in items
                    if owner == provider and metric != "cost_usd"
                }
                # Each budget (global, per provider) holds the same estimated cost once.
                costs = [amount for _, _, _, metric, amount in items if metric == "cost_usd"]
                cost = max(costs, default=0.0)
                # Budget items settle at their own amount. A hold gone meanwhile was settled by
                # another process (its late call, or a second expire: every Scheduler expires
                # when it opens, and PostgreSQL lets two such transactions read the same rows):
                # counted there, so neither counted nor logged again here.
                if not self._settle(conn, hold, usage):
                    continue
                expired += 1
                record = CallRecord(
                    task=task,
                    provider=provider,
                    model=model,
                    outcome="expired",
                    latency_ms=(now - created_at) * 1000,
                    usage=usage,
                    cost_usd=cost,
                    error="reservation lease expired (process died mid-call); counted as used",
                )
                self._insert_call(conn, record, created_at, hold_id=int(res_id))
            return expired

    @property
    def calls_in_period(self) -> str:
        """The calls table as period reports should read it. Without statistics SQLite's planner
        answers "rows since T, grouped by provider" by walking the whole (provider, ts) index, a
        full scan that grows with the log (53 ms at 1M rows); the ts-first covering index reads
        only the period (1 ms). PostgreSQL keeps statistics and needs no hint."""
        return "calls INDEXED BY ix_calls_ts_cover" if self.dialect == "sqlite" else "calls"

    def window_usage(
        self, provider: str, rules: Sequence[QuotaRule], rule: QuotaRule, now: float
    ) -> tuple[float, float]:
        """(used, reserved) of `rule`'s current window, with what an edited spec of the rule
        still holds counted as used (as reserve() counts it)."""
        start, end = rule.window.bounds(now)
        with self._reentrant():
            try:
                row = self._db.execute(
                    "SELECT used, reserved FROM usage_windows WHERE provider = ? AND rule = ?"
                    " AND window_start = ?",
                    (provider, rule.rule_id, start),
                ).fetchone()
                carried = _carried(self._db, provider, rules, rule, start, end)
            except self._db.errors as exc:
                raise LedgerError(describe_error(self.name, exc)) from None
        used, reserved = (float(row[0]), float(row[1])) if row is not None else (0.0, 0.0)
        return used + carried, reserved

    def free_remaining(
        self, provider: str, rules: Sequence[QuotaRule], now: float
    ) -> list[FreeShare]:
        """What each free allowance of `provider` has left now (for the `cheapest` strategy)."""
        shares = []
        for rule in rules:
            if rule.free:
                used, reserved = self.window_usage(provider, rules, rule, now)
                shares.append(FreeShare(rule.metric, rule.limit - used - reserved))
        return shares

    def median_latency_ms(self, task: str, since: float) -> dict[str, float]:
        """Median latency of successful calls per provider for one task kind since `since`."""
        by_provider: dict[str, list[float]] = {}
        for provider, latency in self.read(
            f"SELECT provider, latency_ms FROM {self.calls_in_period}"
            " WHERE task = ? AND outcome = 'ok' AND ts >= ?",
            (task, since),
        ):
            by_provider.setdefault(str(provider), []).append(float(str(latency)))
        return {name: statistics.median(values) for name, values in by_provider.items()}

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file ('ok' when sound)."""
        with self._reentrant():
            return self._db.integrity_check()


def _carried(
    conn: Database,
    provider: str,
    rules: Sequence[QuotaRule],
    rule: QuotaRule,
    start: int,
    end: int | None,
) -> float:
    """What windows of `rule`'s metric and period under another spec hold while overlapping
    this window: a rule whose reset time or zone was edited keeps what it counted (the old
    window's whole count, as we cannot know how much fell before the new boundary)."""
    return _carried_rows(conn, provider, rules, rule, start, end)[0]


def _carried_rows(
    conn: Database,
    provider: str,
    rules: Sequence[QuotaRule],
    rule: QuotaRule,
    start: int,
    end: int | None,
) -> tuple[float, int]:
    """`_carried`, and how many windows of another spec end after this one starts."""
    if rule.per not in _SPEC_PERIODS or end is None:
        return 0.0, 0
    current = [r.rule_id for r in rules if r.metric == rule.metric and r.per == rule.per]
    row = conn.execute(
        _CARRIED.format(",".join("?" * len(current))),
        (end, provider, rule.metric, rule.per, start, *current),
    ).fetchone()
    return float(row[0] or 0.0), int(row[1] or 0)


def _flag(flags: Sequence[str]) -> str | None:
    return "; ".join(flags)[:500] or None


def _hold_json(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "provider": hold.provider,
        "items": [list(item) for item in hold.items],
        "free": [[share.metric, share.remaining] for share in hold.free],
        "billable": hold.billable,
        "estimated_cost": hold.estimated_cost,
        "estimate": [list(pair) for pair in hold.estimate],
        "pricing": hold.pricing.model_dump() if hold.pricing is not None else None,
    }


Decoded = tuple[Hold, CallRecord, list[str], list[RateLimitReport], float]


def _decode_entry(entry: Mapping[str, Any]) -> Decoded | None:
    """A journal entry back as the commit it was; None for one this code cannot read."""
    try:
        raw = entry["hold"]
        pricing = raw.get("pricing")
        hold = Hold(
            id=int(raw["id"]),
            provider=str(raw["provider"]),
            items=tuple(
                (str(o), str(r), int(st), str(m), float(a)) for o, r, st, m, a in raw["items"]
            ),
            free=tuple(FreeShare(str(m), float(left)) for m, left in raw["free"]),
            billable=bool(raw["billable"]),
            estimated_cost=float(raw["estimated_cost"]),
            estimate=tuple((str(m), float(a)) for m, a in raw["estimate"]),
            pricing=Pricing.model_validate(pricing) if pricing is not None else None,
        )
        record = CallRecord(**entry["record"])
        reports = [RateLimitReport(**report) for report in entry["rate_limits"]]
        flags = [str(flag) for flag in entry["flags"]]
        return hold, record, flags, reports, float(entry["now"])
    except (KeyError, TypeError, ValueError):
        return None


def _describe(rule: QuotaRule) -> str:
    return f"{rule.limit:g} {rule.metric} per {rule.per}"


def _money(budget: BudgetLimit) -> float:
    """The budget as compared: 100 calls of $0.01 sum to 1.0000000000000007 in floating point,
    and must still fit a $1.00 budget (one part in 10^9 is far below a cent)."""
    return budget.limit_usd * (1 + 1e-9)


def _soft(rule: QuotaRule, spend: SpendPolicy | None) -> bool:
    """A free allowance that paid usage may go past (allow_paid on, a price to pay it at)."""
    return (
        rule.free
        and spend is not None
        and spend.allow_paid
        and not spend.free_only
        and is_billable(spend.pricing)
    )


def _until(end: int | None) -> float | None:
    return float(end) if end is not None else None


def _full_reason(rule: QuotaRule, end: int | None, spend: SpendPolicy | None = None) -> str:
    if end is None:
        reason = f"quota used up: {_describe(rule).replace(' per total', ' in total')}"
    else:
        reason = f"quota full: {_describe(rule)}, resets {format_instant(end, rule.tz)}"
    if rule.free and spend is not None and is_billable(spend.pricing):
        reason += (
            " (free allowance; --free-only)"
            if spend.free_only and spend.allow_paid
            else (" (free allowance; allow_paid is off)")
        )
    return reason


__all__ = [
    "BUDGET_SCOPE",
    "REPORT_TTL_S",
    "BudgetLimit",
    "CallRecord",
    "CallerLimits",
    "Hold",
    "Ledger",
    "Refusal",
    "SpendPolicy",
]
