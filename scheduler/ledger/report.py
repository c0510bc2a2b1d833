"""What each provider has left: current windows, provider state and the last day's call health.

Reads only: the current window of every rule is a primary-key lookup, and the day's call counts use
the `ts` index, so the report does not slow down as the ledger's history grows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.ledger import trust
from scheduler.ledger.models import Retired, retired_models
from scheduler.windows import format_instant

if TYPE_CHECKING:
    from scheduler.config.keys import KeyStore
    from scheduler.config.schema import Config
    from scheduler.ledger.store import Ledger

DAY_S = 86400
# Outcomes that say nothing about a provider's health: the input was refused, the model asked
# for is retired there (a table to update, not a sick provider), or the process making the call
# died.
NOT_FAILURES = ("ok", "rejected_input", "model_unavailable", "expired")


@dataclass(frozen=True)
class WindowUsage:
    """One quota rule in its current window."""

    metric: str
    period: str
    limit: float
    used: float
    reserved: float
    resets_at: int | None
    resets: str  # the reset as a timestamp with its zone, "2026-11-22 00:00 PST"
    free: bool

    @property
    def remaining(self) -> float:
        return max(self.limit - self.used - self.reserved, 0.0)


@dataclass(frozen=True)
class ProviderReport:
    """Everything the quota report says about one provider."""

    provider: str
    status: str  # ok | exhausted | cooling_down | disabled | not_configured | off
    detail: str | None
    until: float | None
    windows: tuple[WindowUsage, ...]
    calls_24h: int
    failures_24h: int
    retired: tuple[Retired, ...] = ()  # models of this provider marked retired in the ledger

    @property
    def failure_rate_24h(self) -> float | None:
        return self.failures_24h / self.calls_24h if self.calls_24h else None


def quota_report(
    config: Config, ledger: Ledger, keys: KeyStore, *, now: float | None = None
) -> list[ProviderReport]:
    now = time.time() if now is None else now
    placeholders = ",".join("?" for _ in NOT_FAILURES)
    health = {
        str(provider): (int(calls), int(failures or 0))  # type: ignore[call-overload]
        for provider, calls, failures in ledger.read(
            "SELECT provider, COUNT(*), SUM(CASE WHEN outcome NOT IN"
            f" ({placeholders}) THEN 1 ELSE 0 END) FROM {ledger.calls_in_period}"
            " WHERE ts >= ? GROUP BY provider",
            (*NOT_FAILURES, now - DAY_S),
        )
    }
    states = _state_rows(ledger)
    retired: dict[str, list[Retired]] = {}
    for mark in retired_models(ledger):
        retired.setdefault(mark.provider, []).append(mark)
    reports = []
    for name, provider in config.providers.items():
        windows = []
        for rule in provider.quotas:
            _, end = rule.window.bounds(now)
            used, reserved = ledger.window_usage(name, provider.quotas, rule, now)
            windows.append(
                WindowUsage(
                    metric=rule.metric,
                    period=rule.per,
                    limit=rule.limit,
                    used=used,
                    reserved=reserved,
                    resets_at=end,
                    resets=format_instant(end, rule.tz) if end is not None else "never",
                    free=rule.free,
                )
            )
        status, detail, until = _status(
            provider.enabled, provider.note, states.get(name), now, ledger.max_block_s
        )
        full = [w for w in windows if not w.free and w.remaining <= 0]
        if status == "ok" and full:  # the ledger will refuse it until the window resets
            first = min(full, key=lambda w: w.resets_at or float("inf"))
            status, detail = "exhausted", f"{first.metric} per {first.period} used up"
            until = float(first.resets_at) if first.resets_at is not None else None
        if status == "ok" and provider.api_key_env and not keys.get(provider.api_key_env):
            status, detail = "not_configured", f"no {provider.api_key_env}"
        calls, failures = health.get(name, (0, 0))
        reports.append(
            ProviderReport(
                name,
                status,
                detail,
                until,
                tuple(windows),
                calls,
                failures,
                tuple(retired.get(name, ())),
            )
        )
    return reports


@dataclass(frozen=True)
class ReportedLimit:
    """What a provider last said it has left of one metric (its rate-limit headers)."""

    metric: str
    remaining: float
    resets_at: float


def reported_limits(ledger: Ledger, provider: str) -> list[ReportedLimit]:
    return [
        ReportedLimit(str(metric), float(str(remaining)), float(str(resets_at)))
        for metric, remaining, resets_at in ledger.read(
            "SELECT metric, remaining, resets_at FROM provider_limits WHERE provider = ?"
            " ORDER BY metric",
            (provider,),
        )
    ]


def _state_rows(ledger: Ledger) -> dict[str, tuple[object, ...]]:
    return {
        str(row[0]): row[1:]
        for row in ledger.read(
            "SELECT provider, blocked_until, block_outcome, block_reason, disabled,"
            " disabled_reason FROM provider_state"
        )
    }


def provider_states(
    ledger: Ledger, now: float | None = None
) -> dict[str, tuple[str, str | None, float | None]]:
    """(status, detail, until) of each provider the ledger holds back now: disabled,
    cooling_down or exhausted. Providers it does not hold back are left out."""
    now = time.time() if now is None else now
    found = {}
    for name, row in _state_rows(ledger).items():
        status = _status(True, None, row, now, ledger.max_block_s)
        if status[0] != "ok":
            found[name] = status
    return found


def _status(
    enabled: bool,
    note: str | None,
    state: tuple[object, ...] | None,
    now: float,
    max_block_s: float,
) -> tuple[str, str | None, float | None]:
    if not enabled:
        return "off", note or "disabled in providers.yaml", None
    if state is None:
        return "ok", None, None
    blocked_until, outcome, reason, disabled, disabled_reason = state
    if disabled:
        return "disabled", str(disabled_reason), None
    until = trust.until(blocked_until, now, max_block_s)  # a row from before the clamp
    if until is not None and until > now:
        status = "exhausted" if outcome == "quota_exhausted" else "cooling_down"
        return status, str(reason) if reason else None, until
    return "ok", None, None


__all__ = [
    "ProviderReport",
    "ReportedLimit",
    "WindowUsage",
    "provider_states",
    "quota_report",
    "reported_limits",
]
