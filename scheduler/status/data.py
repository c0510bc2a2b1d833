"""The numbers behind the status page, `GET /v1/sched/status` and the JSON reports: one source.

`quota_json` is what `sched quota report --json` prints and `spend_json` what `sched cost report
--json` prints; `snapshot` adds what only the page shows (spend per day, health over 24 hours and
7 days, the last calls, the cron service's runs). The page renders a snapshot and nothing else,
so what it shows is what the reports say.

Every query reads a period through the calls table's ts-first covering index and aggregates in
SQL, so the page stays fast at a million call rows.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from scheduler.ledger.report import quota_report
from scheduler.ledger.spend import spend_report
from scheduler.windows import format_instant

if TYPE_CHECKING:
    from scheduler.config.keys import KeyStore
    from scheduler.config.schema import Config
    from scheduler.ledger.store import Ledger

DAY_S = 86400
_SPEND_KEYS = ("cost_usd", "list_usd", "saved_usd", "budgets", "resets")


def spend_json(
    config: Config, ledger: Ledger, period: str, *, now: float | None = None
) -> dict[str, Any]:
    """`sched cost report --json --period PERIOD`."""
    return spend_report(config, ledger, period, now=now).as_dict()  # type: ignore[arg-type]


def quota_json(
    config: Config, ledger: Ledger, keys: KeyStore, *, now: float | None = None
) -> dict[str, Any]:
    """`sched quota report --json`: spend of the day and month, then every provider's state and
    windows."""
    now = time.time() if now is None else now
    spend = {period: spend_json(config, ledger, period, now=now) for period in ("day", "month")}
    providers = []
    for report in quota_report(config, ledger, keys, now=now):
        providers.append(
            {
                "provider": report.provider,
                "status": report.status,
                "detail": report.detail,
                "until": format_instant(int(report.until), "UTC") if report.until else None,
                "calls_24h": report.calls_24h,
                "failures_24h": report.failures_24h,
                "failure_rate_24h": report.failure_rate_24h,
                "retired_models": [
                    {
                        "model": m.model,
                        "since": format_instant(int(m.since), "UTC"),
                        "reason": m.reason,
                    }
                    for m in report.retired
                ],
                "windows": [
                    {
                        "metric": w.metric,
                        "period": w.period,
                        "used": w.used,
                        "reserved": w.reserved,
                        "limit": w.limit,
                        "remaining": w.remaining,
                        "free": w.free,
                        "resets_at": w.resets_at,
                        "resets": w.resets,
                    }
                    for w in report.windows
                ],
            }
        )
    return {
        "spend": {
            period: {key: figures[key] for key in _SPEND_KEYS} for period, figures in spend.items()
        },
        "providers": providers,
    }


def daily_spend(
    ledger: Ledger, *, days: int = 30, now: float | None = None
) -> list[dict[str, Any]]:
    """Paid and list-price USD and calls per UTC day and provider over the last `days` days:
    summarised days from daily_summaries, the rest from the call rows."""
    from scheduler.ledger.maintenance import day_sql, period_split

    now = time.time() if now is None else now
    first = (int(now) // DAY_S - days + 1) * DAY_S
    summarised, rows_since = period_split(ledger, first, now + 1)
    totals: dict[tuple[str, str], list[float]] = {}

    def add(day: str, provider: object, cost: object, listed: object, calls: object) -> None:
        entry = totals.setdefault((day, str(provider)), [0.0, 0.0, 0])
        entry[0] += float(str(cost or 0))
        entry[1] += float(str(listed or 0))
        entry[2] += int(str(calls or 0))

    for day, provider, cost, listed, calls in ledger.read(
        f"SELECT {day_sql(ledger)}, provider, SUM(cost_usd), SUM(list_usd), COUNT(*)"
        f" FROM {ledger.calls_in_period} WHERE ts >= ? GROUP BY 1, 2",
        (rows_since,),
    ):
        add(str(day), provider, cost, listed, calls)
    if summarised is not None:
        for day, provider, cost, listed, calls in ledger.read(
            "SELECT day, provider, SUM(cost_usd), SUM(list_usd), SUM(calls) FROM daily_summaries"
            " WHERE day >= ? AND day < ? GROUP BY day, provider",
            summarised,
        ):
            add(str(day), provider, cost, listed, calls)
    return [
        {
            "day": day,
            "provider": provider,
            "cost_usd": round(v[0], 10),
            "list_usd": round(v[1], 10),
            "calls": int(v[2]),
        }
        for (day, provider), v in sorted(totals.items())
    ]


def health(ledger: Ledger, *, since: float, until: float) -> list[dict[str, Any]]:
    """Per provider over [since, until): calls, outcome counts, failure rate (outcomes that are
    the provider's fault, as the failure report counts them) and median latency of its served
    calls, to 10 ms (from latency buckets: the summaries of finished days keep those, so a
    week of a million calls needs no row list)."""
    from scheduler.ledger.maintenance import (
        FAULT_OUTCOMES,
        latency_bucket_sql,
        median_of,
        period_split,
    )

    summarised, rows_since = period_split(ledger, since, until)
    counts: dict[str, dict[str, int]] = {}
    hists: dict[str, dict[int, int]] = {}

    def count(provider: object, outcome: object, calls: object) -> None:
        outcomes = counts.setdefault(str(provider), {})
        outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + int(str(calls))

    def bucket(provider: object, key: object, calls: object) -> None:
        hist = hists.setdefault(str(provider), {})
        hist[int(str(key))] = hist.get(int(str(key)), 0) + int(str(calls))

    for provider, outcome, calls in ledger.read(
        f"SELECT provider, outcome, COUNT(*) FROM {ledger.calls_in_period}"
        " WHERE ts >= ? AND ts < ? GROUP BY provider, outcome",
        (rows_since, until),
    ):
        count(provider, outcome, calls)
    for provider, key, calls in ledger.read(
        f"SELECT provider, {latency_bucket_sql(ledger)}, COUNT(*) FROM {ledger.calls_in_period}"
        " WHERE ts >= ? AND ts < ? AND outcome = 'ok' GROUP BY 1, 2",
        (rows_since, until),
    ):
        bucket(provider, key, calls)
    if summarised is not None:
        for provider, outcome, calls, hist in ledger.read(
            "SELECT provider, outcome, calls, latency_hist FROM daily_summaries"
            " WHERE day >= ? AND day < ?",
            summarised,
        ):
            count(provider, outcome, calls)
            for key, n in json.loads(str(hist or "{}")).items():
                bucket(provider, key, n)
    out = []
    for provider, outcomes in sorted(counts.items()):
        calls = sum(outcomes.values())
        faults = sum(n for outcome, n in outcomes.items() if outcome in FAULT_OUTCOMES)
        out.append(
            {
                "provider": provider,
                "calls": calls,
                "outcomes": dict(sorted(outcomes.items())),
                "failure_rate": faults / calls if calls else None,
                "median_latency_ms": median_of(hists.get(provider, {})),
            }
        )
    return out


def recent_calls(ledger: Ledger, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = ledger.read(
        "SELECT ts, task, provider, model, outcome, latency_ms, usage, cost_usd, error"
        " FROM calls ORDER BY ts DESC, id DESC LIMIT ?",
        (limit,),
    )
    calls = []
    for ts, task, provider, model, outcome, latency, usage, cost, error in rows:
        calls.append(
            {
                "ts": float(ts),  # type: ignore[arg-type]
                "time": format_instant(int(ts), "UTC"),  # type: ignore[call-overload]
                "task": task,
                "provider": provider,
                "model": model,
                "outcome": outcome,
                "latency_ms": round(float(latency or 0), 1),  # type: ignore[arg-type]
                "usage": json.loads(str(usage or "{}")),
                "cost_usd": float(cost or 0),  # type: ignore[arg-type]
                "error": error,
            }
        )
    return calls


def job_runs(ledger: Ledger, *, limit: int = 20) -> list[dict[str, Any]]:
    rows = ledger.read(
        "SELECT job, started_at, finished_at, ok, detail FROM job_runs"
        " ORDER BY started_at DESC LIMIT ?",
        (limit,),
    )
    return [
        {
            "job": job,
            "started": format_instant(int(started), "UTC"),  # type: ignore[call-overload]
            "finished": format_instant(int(finished), "UTC") if finished else None,  # type: ignore[call-overload]
            "ok": bool(ok),
            "detail": _short(str(detail)),
        }
        for job, started, finished, ok, detail in rows
    ]


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def snapshot(
    config: Config, ledger: Ledger, keys: KeyStore, *, now: float | None = None
) -> dict[str, Any]:
    """Everything the status page shows (`GET /v1/sched/status`)."""
    now = time.time() if now is None else now
    return {
        "generated_at": format_instant(int(now), "UTC"),
        "generated_ts": now,
        "quota": quota_json(config, ledger, keys, now=now),
        "daily_spend": daily_spend(ledger, now=now),
        "health": {
            "24h": health(ledger, since=now - DAY_S, until=now + 1),
            # Seven whole UTC days, today included: finished days come from their summaries.
            "7d": health(ledger, since=(int(now) // DAY_S - 6) * DAY_S, until=now + 1),
        },
        "recent_calls": recent_calls(ledger),
        "jobs": job_runs(ledger),
    }


__all__ = [
    "daily_spend",
    "health",
    "job_runs",
    "quota_json",
    "recent_calls",
    "snapshot",
    "spend_json",
]
