"""quota-check: what is left of every free allowance, and the providers' own balances.

Free allowances come from the ledger's current window of every `free: true` rule; a warning is
logged for each one with less than `quota_warning_below` of its limit left. Three providers also
say what is left on their side, and those balances are fetched with the provider's own key:

- ElevenLabs `GET /v1/user/subscription` (`xi-api-key`): character_limit - character_count;
- OpenRouter `GET /api/v1/key` (Bearer): data.limit_remaining (credits, USD; null = no limit);
- Stability `GET /v1/user/balance` (Bearer): credits.

A failing balance call is reported in the run's result, never fatal. Keys only ever go into the
request header: results and log lines carry provider names and numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from jobs import Detail, JobContext, run_recorded

if TYPE_CHECKING:
    import httpx

    from scheduler.config import Config, KeyStore, ProviderConfig

BALANCE_TIMEOUT_S = 15.0

log = logging.getLogger("sched.jobs.quota_check")


@dataclass(frozen=True)
class Balance:
    """What a provider says is left on the account (or why it could not be read)."""

    provider: str
    remaining: float | None = None
    unit: str = ""
    limit: float | None = None
    error: str | None = None


def quota_check(config_path: str | None = None, db_target: str | None = None) -> Detail:
    return run_recorded("quota-check", config_path, db_target, check)


def check(ctx: JobContext, *, transport: httpx.BaseTransport | None = None) -> Detail:
    from scheduler.ledger.report import quota_report

    threshold = ctx.config.settings.cron.quota_warning_below
    allowances: list[dict[str, object]] = []
    warnings: list[str] = []
    for report in quota_report(ctx.config, ctx.ledger, ctx.keys):
        for window in report.windows:
            if not window.free:
                continue
            share = window.remaining / window.limit
            allowances.append(
                {
                    "provider": report.provider,
                    "metric": window.metric,
                    "period": window.period,
                    "limit": window.limit,
                    "used": window.used,
                    "reserved": window.reserved,
                    "remaining": window.remaining,
                    "share_left": round(share, 4),
                    "resets": window.resets,
                }
            )
            if share < threshold:
                warnings.append(
                    f"{report.provider}: {window.remaining:g} of {window.limit:g} free"
                    f" {window.metric} per {window.period} left ({share:.0%}),"
                    f" resets {window.resets}"
                )
    balances = fetch_balances(ctx.config, ctx.keys, transport=transport)
    for balance in balances:
        if balance.error is not None:
            log.warning("%s balance: %s", balance.provider, balance.error)
        elif balance.remaining is not None and balance.limit:
            share = balance.remaining / balance.limit
            if share < threshold:
                warnings.append(
                    f"{balance.provider}: {balance.remaining:g} of {balance.limit:g}"
                    f" {balance.unit} left on the account ({share:.0%})"
                )
    for line in warnings:
        log.warning("quota low: %s", line)
    return {
        "allowances": allowances,
        "balances": [asdict(balance) for balance in balances],
        "warnings": warnings,
    }


# -- the providers' own balance endpoints ---------------------------------------------------------

Fetcher = Callable[["httpx.Client", str, str], tuple[float | None, float | None, str]]


def elevenlabs_balance(client: httpx.Client, base_url: str, key: str) -> tuple[float, float, str]:
    response = client.get(f"{base_url}/v1/user/subscription", headers={"xi-api-key": key})
    response.raise_for_status()
    data = response.json()
    limit = float(data["character_limit"])
    return limit - float(data["character_count"]), limit, "characters"


def openrouter_balance(
    client: httpx.Client, base_url: str, key: str
) -> tuple[float | None, float | None, str]:
    # base_url is the API root as configured, https://openrouter.ai/api/v1
    response = client.get(f"{base_url}/key", headers={"Authorization": f"Bearer {key}"})
    response.raise_for_status()
    data = response.json()["data"]
    remaining, limit = data.get("limit_remaining"), data.get("limit")
    return (
        None if remaining is None else float(remaining),
        None if limit is None else float(limit),
        "credits (USD)",
    )


def stability_balance(client: httpx.Client, base_url: str, key: str) -> tuple[float, None, str]:
    response = client.get(f"{base_url}/v1/user/balance", headers={"Authorization": f"Bearer {key}"})
    response.raise_for_status()
    return float(response.json()["credits"]), None, "credits"


def balance_fetcher(name: str, provider: ProviderConfig) -> Fetcher | None:
    """The balance endpoint of a provider, by its adapter (OpenRouter speaks the openai one)."""
    if provider.adapter == "elevenlabs":
        return elevenlabs_balance
    if provider.adapter == "stability":
        return stability_balance
    if provider.adapter == "openai" and (
        "openrouter.ai" in (provider.base_url or "") or name == "openrouter"
    ):
        return openrouter_balance
    return None


def fetch_balances(
    config: Config, keys: KeyStore, *, transport: httpx.BaseTransport | None = None
) -> list[Balance]:
    """One balance call per enabled provider that has an endpoint, a base_url and a key."""
    import httpx

    from scheduler.errors import redact
    from scheduler.providers.http_guard import sync_hooks

    wanted = []
    for name, provider in config.providers.items():
        fetcher = balance_fetcher(name, provider)
        key = keys.get(provider.api_key_env) if provider.api_key_env else None
        if fetcher is not None and provider.enabled and provider.base_url and key:
            wanted.append((name, provider.base_url, key, fetcher))
    balances = []
    # The same guards as every provider call: no key follows a redirect elsewhere, bodies capped.
    hooks = sync_hooks(config.settings.max_response_mb)
    with httpx.Client(timeout=BALANCE_TIMEOUT_S, transport=transport, event_hooks=hooks) as client:
        for name, base_url, key, fetcher in wanted:
            try:
                remaining, limit, unit = fetcher(client, base_url, key)
            except httpx.HTTPStatusError as exc:
                error = f"HTTP {exc.response.status_code} from {exc.request.url.path}"
                balances.append(Balance(name, error=error))
            except httpx.HTTPError as exc:
                balances.append(Balance(name, error=redact(f"{type(exc).__name__}: {exc}", key)))
            except (ValueError, KeyError, TypeError) as exc:
                error = f"unexpected balance reply ({type(exc).__name__}: {exc})"
                balances.append(Balance(name, error=redact(error, key)))
            else:
                balances.append(Balance(name, remaining, unit, limit))
    return balances


__all__ = [
    "Balance",
    "balance_fetcher",
    "check",
    "elevenlabs_balance",
    "fetch_balances",
    "openrouter_balance",
    "quota_check",
    "stability_balance",
]
