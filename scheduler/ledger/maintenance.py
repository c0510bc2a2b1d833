"""The ledger's housekeeping, for the cron service: roll-ups, pruning, failure statistics, health.

Every function takes a `Ledger`: reads go through `ledger.read`, writes through the ledger's one
transaction helper, so they queue on the same lock as the workers' reservations and never
interleave with them; the SQL is the same on SQLite and PostgreSQL but for the day of a timestamp.

Health policy. A provider is disabled by the cron service (`block_outcome = 'unhealthy'`) only on a
sustained failure rate of failures that are its own fault: `transient` (5xx, timeouts, dropped
connections) and `auth_failed` (a key the provider stopped accepting). Quota exhaustion and rate
limits are not sickness (the provider is working as documented, and the ledger already skips it
until the window resets or the cool-down ends); rejected input is the caller's fault; a retired
model (`model_unavailable`) is the table's, and the ledger skips that model by itself; an expired
reservation says only that our own process died. Those still count as calls in the denominator
(except expired holds, which may never have reached the provider).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.ledger.store import Ledger

UNHEALTHY = "unhealthy"  # provider_state.block_outcome of a provider disabled for bad health
FAULT_OUTCOMES: tuple[str, ...] = ("transient", "auth_failed")
NOT_ATTEMPTS: tuple[str, ...] = ("expired",)  # holds of dead processes: no provider verdict
# "Until re-enabled": a health block has no natural end, only a passing probe lifts it. A finite
# instant (about ten years) keeps every reader's `blocked_until > now` arithmetic ordinary.
HEALTH_BLOCK_S = 10 * 365 * 86400
# Cool-downs and exhaustion flags: the blocks a daily reset may clear once they have passed.
TIMED_BLOCKS: tuple[str, ...] = ("quota_exhausted", "rate_limited", "transient")
DAY_S = 86400


def _f(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float(str(value))


def _i(value: object) -> int:
    return int(value) if isinstance(value, int | float) else int(str(value))


def _placeholders(values: Sequence[object]) -> str:
    return ",".join("?" for _ in values)


# -- failure statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureStats:
    """Calls of one provider and task kind over one period, as the failure report shows them."""

    provider: str
    task: str
    calls: int  # every attempt logged, whatever its outcome
    ok: int
    failures: Mapping[str, int]  # outcome -> count, for every outcome but "ok"
    p50_ms: float | None  # latency percentiles (nearest rank) of attempts, expired holds excluded
    p95_ms: float | None
    spend_usd: float

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.calls if self.calls else None

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "task": self.task,
            "calls": self.calls,
            "ok": self.ok,
            "failed": self.failed,
            "failures": dict(self.failures),
            "failure_rate": self.failure_rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "spend_usd": self.spend_usd,
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below it.

    Always one of the observed latencies (no interpolation), so a report can be checked by hand.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[rank - 1]


def failure_stats(ledger: Ledger, since: float, until: float) -> list[FailureStats]:
    """Per provider and task kind: calls, successes, failures by class, latency, spend."""
    rows = ledger.read(
        "SELECT provider, task, outcome, latency_ms, cost_usd"
        f" FROM {ledger.calls_in_period} WHERE ts >= ? AND ts < ? ORDER BY provider, task",
        (since, until),
    )
    groups: dict[tuple[str, str], list[tuple[str, float, float]]] = defaultdict(list)
    for provider, task, outcome, latency, cost in rows:
        groups[(str(provider), str(task))].append((str(outcome), _f(latency), _f(cost or 0)))
    stats = []
    for (provider, task), calls in sorted(groups.items()):
        failures: dict[str, int] = defaultdict(int)
        for outcome, _, _ in calls:
            if outcome != "ok":
                failures[outcome] += 1
        latencies = [latency for outcome, latency, _ in calls if outcome not in NOT_ATTEMPTS]
        stats.append(
            FailureStats(
                provider=provider,
                task=task,
                calls=len(calls),
                ok=len(calls) - sum(failures.values()),
                failures=dict(sorted(failures.items())),
                p50_ms=percentile(latencies, 0.50),
                p95_ms=percentile(latencies, 0.95),
                spend_usd=round(sum(cost for _, _, cost in calls), 10),
            )
        )
    return stats


@dataclass(frozen=True)
class Health:
    """One provider's own-fault failures over a period, all task kinds together."""

    provider: str
    calls: int  # attempts that reached a verdict (expired holds excluded)
    faults: int  # of which failed by the provider's fault (FAULT_OUTCOMES)

    @property
    def rate(self) -> float:
        return self.faults / self.calls if self.calls else 0.0

    def reason(self, period: str = "the last hour") -> str:
        return f"failure rate {self.rate:.0%} over {period} ({self.faults} of {self.calls} calls)"


def provider_health(ledger: Ledger, since: float, until: float) -> dict[str, Health]:
    rows = ledger.read(
        "SELECT provider, COUNT(*), SUM(CASE WHEN outcome IN"
        f" ({_placeholders(FAULT_OUTCOMES)}) THEN 1 ELSE 0 END) FROM {ledger.calls_in_period}"
        f" WHERE ts >= ? AND ts < ? AND outcome NOT IN ({_placeholders(NOT_ATTEMPTS)})"
        " GROUP BY provider",
        (*FAULT_OUTCOMES, since, until, *NOT_ATTEMPTS),
    )
    return {str(p): Health(str(p), _i(calls), _i(faults or 0)) for p, calls, faults in rows}


def sick_providers(health: Iterable[Health], *, above: float, min_calls: int) -> list[Health]:
    """Providers whose own-fault failure rate is above `above` with at least `min_calls` calls."""
    return [h for h in health if h.calls >= min_calls and h.rate > above]


# -- health disable / re-enable ------------------------------------------------------------------


def disable_unhealthy(
    ledger: Ledger, provider: str, reason: str, *, now: float | None = None
) -> None:
    """Block `provider` for every process until a probe passes (replaces any timed block)."""
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        db.execute(
            "INSERT INTO provider_state (provider, blocked_until, block_outcome, block_reason,"
            " updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider) DO UPDATE SET"
            " blocked_until = excluded.blocked_until, block_outcome = excluded.block_outcome,"
            " block_reason = excluded.block_reason, updated_at = excluded.updated_at",
            (provider, now + HEALTH_BLOCK_S, UNHEALTHY, reason, now),
        )


def reenable(ledger: Ledger, provider: str, *, now: float | None = None) -> bool:
    """Lift the health block of `provider`; False when it had none."""
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        cur = db.execute(
            "UPDATE provider_state SET blocked_until = 0, block_outcome = NULL,"
            " block_reason = NULL, updated_at = ? WHERE provider = ? AND block_outcome = ?",
            (now, provider, UNHEALTHY),
        )
        return bool(cur.rowcount > 0)


def enable_provider(ledger: Ledger, provider: str, *, now: float | None = None) -> bool:
    """Lift a disable by hand (`sched providers enable`): an auth-failure disable (kept until the
    key changes) and a health block. Cool-downs and exhaustion stay: they end on their own and
    say something true about the provider's quota. False when there was nothing to lift."""
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        auth = db.execute(
            "UPDATE provider_state SET disabled = 0, disabled_key = NULL, disabled_reason = NULL,"
            " updated_at = ? WHERE provider = ? AND disabled <> 0",
            (now, provider),
        )
        health = db.execute(
            "UPDATE provider_state SET blocked_until = 0, block_outcome = NULL,"
            " block_reason = NULL, updated_at = ? WHERE provider = ? AND block_outcome = ?",
            (now, provider, UNHEALTHY),
        )
        return bool(auth.rowcount > 0 or health.rowcount > 0)


def reset_provider(ledger: Ledger, provider: str, *, now: float | None = None) -> bool:
    """Forget every verdict on `provider` (`sched providers reset`): disable, health block,
    cool-down, exhaustion and the remaining counts it last reported. Quota windows stay: they
    are what was used. False when there was nothing to forget."""
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        state = db.execute(
            "UPDATE provider_state SET disabled = 0, disabled_key = NULL, disabled_reason = NULL,"
            " blocked_until = 0, block_outcome = NULL, block_reason = NULL, updated_at = ?"
            " WHERE provider = ? AND (disabled <> 0 OR block_outcome IS NOT NULL)",
            (now, provider),
        )
        limits = db.execute("DELETE FROM provider_limits WHERE provider = ?", (provider,))
        return bool(state.rowcount > 0 or limits.rowcount > 0)


def unhealthy(ledger: Ledger) -> dict[str, str]:
    """Providers disabled for bad health, with the reason stored when they were."""
    rows = ledger.read(
        "SELECT provider, block_reason FROM provider_state WHERE block_outcome = ?"
        " ORDER BY provider",
        (UNHEALTHY,),
    )
    return {str(provider): str(reason or "") for provider, reason in rows}


def reenabled_since(
    ledger: Ledger, since: float, *, job: str = "probe-disabled"
) -> dict[str, float]:
    """Providers a passing probe re-enabled since `since`, with the latest such instant.

    Read from the probe job's own runs (`detail.re_enabled`), so a re-enabled provider is judged on
    its calls after recovery, not disabled again for the failures that got it disabled.
    """
    found: dict[str, float] = {}
    for finished_at, detail in ledger.read(
        "SELECT finished_at, detail FROM job_runs WHERE job = ? AND ok = 1 AND finished_at >= ?",
        (job, since),
    ):
        try:
            names = json.loads(str(detail)).get("re_enabled", [])
        except (ValueError, AttributeError):
            continue
        for name in names if isinstance(names, list) else ():
            found[str(name)] = max(found.get(str(name), 0.0), _f(finished_at))
    return found


# -- daily reset: roll-ups and pruning -----------------------------------------------------------


# Latency histograms count served calls in buckets this wide: a median to 10 ms from counts alone.
LATENCY_BUCKET_MS = 10


def latency_bucket_sql(ledger: Ledger) -> str:
    """SQL for a call row's latency bucket, the same integer on both databases: SQLite's CAST
    truncates (latencies are never negative), PostgreSQL's rounds, so it floors first."""
    if ledger.dialect == "postgresql":
        return f"FLOOR(latency_ms / {LATENCY_BUCKET_MS})::integer"
    return f"CAST(latency_ms / {LATENCY_BUCKET_MS} AS INTEGER)"


def median_of(hist: Mapping[int, int]) -> float | None:
    """The median latency of a bucket histogram: the middle bucket's midpoint."""
    total = sum(hist.values())
    if not total:
        return None
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen * 2 >= total:
            return bucket * LATENCY_BUCKET_MS + LATENCY_BUCKET_MS / 2
    return None


def summarised_until(ledger: Ledger) -> float:
    """The start of the first UTC day without summaries: call rows before it are all counted in
    daily_summaries (and may be pruned), rows from it on only in calls."""
    latest = ledger.read("SELECT MAX(day) FROM daily_summaries")[0][0]
    return _day_start(str(latest)) + DAY_S if latest else 0.0


def period_split(
    ledger: Ledger, since: float, until: float
) -> tuple[tuple[str, str] | None, float]:
    """How to read [since, until) fast and exactly: the summarised UTC days to take from
    daily_summaries (`day >= first AND day < end`), or None, and the time from which call rows
    are read. Summaries serve only whole days, so a period that starts mid-day reads rows."""
    covered = summarised_until(ledger)
    end = min(covered, until - until % DAY_S)
    if since % DAY_S or end <= since:
        return None, since
    return (utc_day(since), utc_day(end)), end


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _day_start(day: str) -> float:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class RollUp:
    """What a roll-up did: the UTC days (re)computed and the summary rows they produced."""

    days: tuple[str, ...] = ()
    rows: int = 0


def day_sql(ledger: Ledger) -> str:
    """SQL for the UTC day ("YYYY-MM-DD") of `calls.ts`, in the ledger's dialect."""
    if ledger.dialect == "postgresql":
        return "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    return "strftime('%Y-%m-%d', ts, 'unixepoch')"


def roll_up_days(ledger: Ledger, *, now: float | None = None) -> RollUp:
    """Summarise every finished UTC day of calls into daily_summaries, idempotently.

    A day's summary rows are recomputed from its call rows and *replace* what was there, so
    running twice never double counts. Days already summarised are recomputed from the day
    before the latest summary on (an expired hold is logged late, at its reservation's time, so
    the last day or two can still change); older days keep their summaries, which matters once
    their call rows are pruned.
    """
    now = time.time() if now is None else now
    until = _day_start(utc_day(now))  # today is not finished
    day = day_sql(ledger)
    # Reads and writes in one transaction: no call row can slip in between count and upsert.
    with ledger.transaction() as db:
        latest = db.execute("SELECT MAX(day) FROM daily_summaries").fetchone()[0]
        since = _day_start(str(latest)) - DAY_S if latest else 0.0
        if since >= until:
            return RollUp()
        totals = db.execute(
            f"SELECT {day}, provider, task, outcome, COUNT(*), SUM(tries), SUM(latency_ms),"
            " SUM(cost_usd), SUM(list_usd) FROM calls WHERE ts >= ? AND ts < ?"
            " GROUP BY 1, 2, 3, 4",
            (since, until),
        ).fetchall()
        hists: dict[tuple[str, str, str, str], dict[str, int]] = defaultdict(dict)
        for d, provider, task, outcome, bucket, count in db.execute(
            f"SELECT {day}, provider, task, outcome, {latency_bucket_sql(ledger)}, COUNT(*)"
            " FROM calls WHERE ts >= ? AND ts < ? AND outcome = 'ok' GROUP BY 1, 2, 3, 4, 5",
            (since, until),
        ):
            hists[(str(d), str(provider), str(task), str(outcome))][str(bucket)] = _i(count)
        # Usage is a JSON object per call: summed here, the same way on either database.
        usage: dict[tuple[str, str, str, str], dict[str, float]] = defaultdict(dict)
        for d, provider, task, outcome, text in db.execute(
            f"SELECT {day}, provider, task, outcome, usage FROM calls WHERE ts >= ? AND ts < ?"
            " AND usage <> '{}'",
            (since, until),
        ):
            sums = usage[(str(d), str(provider), str(task), str(outcome))]
            for metric, amount in _usage(text).items():
                sums[metric] = sums.get(metric, 0.0) + amount
        for d, provider, task, outcome, calls, tries, latency, cost, listed in totals:
            key = (str(d), str(provider), str(task), str(outcome))
            db.execute(
                "INSERT INTO daily_summaries (day, provider, task, outcome, calls, tries,"
                " latency_ms_sum, cost_usd, usage, list_usd, latency_hist)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (day, provider, task, outcome) DO UPDATE SET"
                " calls = excluded.calls, tries = excluded.tries,"
                " latency_ms_sum = excluded.latency_ms_sum, cost_usd = excluded.cost_usd,"
                " usage = excluded.usage, list_usd = excluded.list_usd,"
                " latency_hist = excluded.latency_hist",
                (
                    *key,
                    _i(calls),
                    _i(tries or 0),
                    _f(latency or 0),
                    _f(cost or 0),
                    json.dumps(dict(sorted(usage.get(key, {}).items()))),
                    _f(listed or 0),
                    json.dumps(hists.get(key, {})),
                ),
            )
    days = tuple(sorted({str(row[0]) for row in totals}))
    return RollUp(days, len(totals))


def _usage(text: object) -> dict[str, float]:
    try:
        data = json.loads(str(text))
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def prune_calls(ledger: Ledger, *, before: float) -> int:
    """Delete call rows older than `before`, but only from days already summarised.

    Every roll-up covers all finished days from the day before its latest summary on, and the
    first one covers all of them, so every day before the latest summarised one is summarised:
    rows older than both `before` and that day can go without changing any total.
    """
    with ledger.transaction() as db:
        latest = db.execute("SELECT MAX(day) FROM daily_summaries").fetchone()[0]
        if not latest:
            return 0
        cur = db.execute("DELETE FROM calls WHERE ts < ?", (min(before, _day_start(str(latest))),))
        return int(cur.rowcount)


def prune_windows(ledger: Ledger, *, now: float | None = None) -> int:
    """Delete usage windows that have ended and hold no open reservation.

    The current window's key comes from the clock, so an ended row is never read again to decide
    anything; its usage is history, and the calls table and daily summaries keep that history.
    A row still carrying a reservation (a call in flight across the reset) is left until that
    hold settles, and goes with the next reset.
    """
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        cur = db.execute(
            "DELETE FROM usage_windows WHERE window_end IS NOT NULL AND window_end <= ?"
            " AND reserved <= 0",
            (now,),
        )
        return int(cur.rowcount)


def clear_expired_blocks(ledger: Ledger, *, now: float | None = None) -> list[str]:
    """Clear cool-downs and exhaustion flags that have run out, and stale provider-reported
    limits; return the providers whose block was cleared.

    Readers already ignore a block whose `blocked_until` has passed, so this is tidying for the
    reports, never a condition for a provider to become usable again.
    """
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        rows = db.execute(
            "SELECT provider FROM provider_state WHERE block_outcome IN"
            f" ({_placeholders(TIMED_BLOCKS)}) AND blocked_until <= ? ORDER BY provider",
            (*TIMED_BLOCKS, now),
        ).fetchall()
        db.execute(
            "UPDATE provider_state SET blocked_until = 0, block_outcome = NULL,"
            f" block_reason = NULL, updated_at = ? WHERE block_outcome IN"
            f" ({_placeholders(TIMED_BLOCKS)}) AND blocked_until <= ?",
            (now, *TIMED_BLOCKS, now),
        )
        db.execute("DELETE FROM provider_limits WHERE resets_at <= ?", (now,))
    return [str(row[0]) for row in rows]


# -- job runs ------------------------------------------------------------------------------------


def start_job_run(ledger: Ledger, job: str, *, now: float | None = None) -> int:
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        row = db.execute(
            "INSERT INTO job_runs (job, started_at, ok, detail) VALUES (?, ?, 0, '{}')"
            " RETURNING id",
            (job, now),
        ).fetchone()
        return _i(row[0])


def finish_job_run(
    ledger: Ledger, run_id: int, *, ok: bool, detail: Mapping[str, object], now: float | None = None
) -> None:
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        db.execute(
            "UPDATE job_runs SET finished_at = ?, ok = ?, detail = ? WHERE id = ?",
            (now, int(ok), json.dumps(detail, default=str), run_id),
        )


def record_job_run(
    ledger: Ledger, job: str, *, ok: bool, detail: Mapping[str, object], now: float | None = None
) -> int:
    """A run in one step, for what the scheduler reports itself (a missed run, a crash)."""
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        row = db.execute(
            "INSERT INTO job_runs (job, started_at, finished_at, ok, detail)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (job, now, now, int(ok), json.dumps(detail, default=str)),
        ).fetchone()
        return _i(row[0])


__all__ = [
    "enable_provider",
    "reset_provider",
    "FAULT_OUTCOMES",
    "HEALTH_BLOCK_S",
    "LATENCY_BUCKET_MS",
    "NOT_ATTEMPTS",
    "TIMED_BLOCKS",
    "UNHEALTHY",
    "FailureStats",
    "Health",
    "RollUp",
    "clear_expired_blocks",
    "day_sql",
    "disable_unhealthy",
    "failure_stats",
    "latency_bucket_sql",
    "median_of",
    "summarised_until",
    "finish_job_run",
    "percentile",
    "period_split",
    "provider_health",
    "prune_calls",
    "prune_windows",
    "reenable",
    "record_job_run",
    "reenabled_since",
    "roll_up_days",
    "sick_providers",
    "start_job_run",
    "unhealthy",
    "utc_day",
]
