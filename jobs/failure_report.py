"""failure-report: failure rates, latency and spend per provider and task kind; health disables.

Over the last hour and the last day, per provider and task kind: calls, successes, failures by
class, failure rate, p50/p95 latency and spend. The report goes to the log (one JSON line), to
`<reports_dir>/failure-report-<UTC time>.json`, and to the chat webhook in `SCHED_REPORT_WEBHOOK`
when set (both through `jobs.reporting`).

Then every provider whose own-fault failure rate over the last hour is above
`disable_above_failure_rate`, with at least `min_calls` calls, is disabled for every process until
the probe job sees it healthy again (see `scheduler.ledger.maintenance` for what counts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from jobs import Detail, JobContext, run_recorded
from jobs.reporting import WEBHOOK_ENV, post_webhook, write_report
from jobs.reporting import iso as _iso

if TYPE_CHECKING:
    import httpx

PERIODS: tuple[tuple[str, str, int], ...] = (
    ("last_hour", "Last hour", 3600),
    ("last_day", "Last day", 86400),
)
HEALTH_PERIOD_S = 3600

log = logging.getLogger("sched.jobs.failure_report")


def failure_report(config_path: str | None = None, db_target: str | None = None) -> Detail:
    return run_recorded("failure-report", config_path, db_target, report)


def report(
    ctx: JobContext, *, now: float | None = None, transport: httpx.BaseTransport | None = None
) -> Detail:
    from scheduler.ledger.maintenance import failure_stats

    now = time.time() if now is None else now
    periods: dict[str, object] = {}
    for key, _, span in PERIODS:
        rows = failure_stats(ctx.ledger, now - span, now)
        periods[key] = {
            "since": _iso(now - span),
            "until": _iso(now),
            "providers": [row.as_dict() for row in rows],
        }
    disabled = disable_sick(ctx, now=now)
    cron = ctx.config.settings.cron
    doc: dict[str, object] = {
        "version": 1,
        "generated_at": _iso(now),
        "periods": periods,
        "disabled": disabled,
        "policy": {
            "disable_above_failure_rate": cron.disable_above_failure_rate,
            "min_calls": cron.min_calls,
            "counted_failures": ["transient", "auth_failed"],
        },
    }
    path = write_report(Path(cron.reports_dir), doc, now)
    text = render_text(doc)
    log.info("failure report %s", path, extra={"fields": {"report": doc}})
    webhook = ctx.keys.get(WEBHOOK_ENV)
    posted = post_webhook(webhook, text, transport=transport) if webhook else "not set"
    return {
        "path": str(path),
        "rows_last_hour": len(_providers(periods["last_hour"])),
        "rows_last_day": len(_providers(periods["last_day"])),
        "disabled": disabled,
        "webhook": posted,
    }


def disable_sick(ctx: JobContext, *, now: float) -> list[dict[str, str]]:
    """Disable the providers of the table whose own-fault failure rate crossed the threshold."""
    from scheduler.ledger.maintenance import (
        disable_unhealthy,
        provider_health,
        reenabled_since,
        sick_providers,
        unhealthy,
    )

    cron = ctx.config.settings.cron
    since = now - HEALTH_PERIOD_S
    health = provider_health(ctx.ledger, since, now)
    for name, at in reenabled_since(ctx.ledger, since).items():
        # Judge a provider a probe re-enabled only on what it did since.
        after = provider_health(ctx.ledger, at, now).get(name)
        if after is None:
            health.pop(name, None)
        else:
            health[name] = after
    already = unhealthy(ctx.ledger)
    disabled = []
    for sick in sick_providers(
        health.values(), above=cron.disable_above_failure_rate, min_calls=cron.min_calls
    ):
        if sick.provider not in ctx.config.providers or sick.provider in already:
            continue
        reason = sick.reason("the last hour")
        disable_unhealthy(ctx.ledger, sick.provider, reason, now=now)
        log.warning("disabled %s: %s", sick.provider, reason)
        disabled.append({"provider": sick.provider, "reason": reason})
    return disabled


def _providers(period: object) -> list[Mapping[str, object]]:
    rows = period.get("providers", []) if isinstance(period, Mapping) else []
    return [row for row in rows if isinstance(row, Mapping)]


def _ms(value: object) -> str:
    return f"{value:.0f} ms" if isinstance(value, int | float) else "-"


def _line(row: Mapping[str, object]) -> str:
    calls, ok, failed = row["calls"], row["ok"], row["failed"]
    rate = row["failure_rate"]
    failures = row["failures"]
    classes = (
        ", ".join(f"{name} {count}" for name, count in failures.items())
        if isinstance(failures, Mapping)
        else ""
    )
    rate_text = f"{rate:.0%}" if isinstance(rate, float) else "-"
    failed_text = f"{failed} failed ({rate_text}{': ' + classes if classes else ''})"
    spend = row["spend_usd"]
    spend_text = f"${spend:.4f}" if isinstance(spend, int | float) else "-"
    return (
        f"  {row['provider']} / {row['task']}: {calls} calls, {ok} ok, {failed_text}; "
        f"p50 {_ms(row['p50_ms'])}, p95 {_ms(row['p95_ms'])}; spend {spend_text}"
    )


def render_text(doc: Mapping[str, object]) -> str:
    """The report as a short message a person reads in a chat channel."""
    lines = [f"sched failure report, {doc['generated_at']}"]
    periods = doc.get("periods")
    for key, title, _ in PERIODS:
        period = periods.get(key) if isinstance(periods, Mapping) else None
        rows = _providers(period)
        lines.append(f"{title}:")
        lines += [_line(row) for row in rows] or ["  no calls"]
    disabled = doc.get("disabled")
    for entry in disabled if isinstance(disabled, list) else ():
        lines.append(f"Disabled {entry['provider']}: {entry['reason']}")
    return "\n".join(lines)


__all__ = [
    "WEBHOOK_ENV",
    "disable_sick",
    "failure_report",
    "post_webhook",
    "render_text",
    "report",
    "write_report",
]
