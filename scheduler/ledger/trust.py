"""What the ledger believes of a provider's answer: its trust boundary, in one place.

A provider's answer is input, like a user's. Every settlement passes through here before it
touches the ledger, whoever makes it (the CLI, the library, the cron jobs, a journal replay):

- usage and cost are numbers from zero to a sane cap. A figure that is negative, not finite,
  not a number at all or beyond the cap (a 401-digit token count) is not trusted: it is replaced
  by the hold's estimate for that metric (what the reservation already counted, so `used` never
  drops below what was served) and flagged on the calls row;
- instants a provider names (a reset, a retry hint turned into a block) are finite and at most
  `max_block_s` ahead, so that no hint parks a provider for ever and every stored instant formats;
- a rate-limit report whose figures are not finite is ignored, never written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from scheduler.config.schema import Pricing
from scheduler.cost import list_price
from scheduler.tasks import RateLimitReport

# No single call uses a billion of anything (tokens, characters, audio seconds, images).
MAX_AMOUNT = 1e9
# Nor costs more than this many dollars; a larger reported price is a bug or a lie.
MAX_CALL_USD = 10_000.0


def finite(value: object) -> float | None:
    """`value` as a finite float, or None (not a number, a bool, NaN, infinite, too large)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


def _shown(value: object) -> str:
    """A hostile value described in a few characters (a 401-digit int is not printed)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        digits = len(str(abs(value))) if value.bit_length() < 10_000 else "many-thousand"
        return f"a {digits}-digit number"
    if isinstance(value, float | int):
        return f"{value:g}"
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class Settled:
    """A call's usage as the ledger records it, and what was not trusted (empty: all of it)."""

    usage: dict[str, float]
    flags: tuple[str, ...] = ()

    @property
    def flag(self) -> str | None:
        return "; ".join(self.flags) or None


def settle_usage(
    reported: Mapping[str, object],
    estimate: Mapping[str, float],
    pricing: Pricing | None = None,
) -> Settled:
    """The reported usage (with its list price as `usd`), every figure sane.

    An untrusted figure becomes the estimate the hold reserved for that metric (0 when it
    reserved none); when any was replaced the price is worked out again from the clean figures
    (or is the estimated price when the pricing is not known), since the reported price was
    computed from the untrusted ones."""
    usage: dict[str, float] = {}
    flags: list[str] = []
    for metric, raw in reported.items():
        if metric == "usd" or not isinstance(metric, str):
            continue
        value = finite(raw)
        if value is None or value < 0 or value > MAX_AMOUNT:
            fallback = _sane(estimate.get(metric), MAX_AMOUNT)
            flags.append(f"reported {metric} {_shown(raw)} not trusted, counted {fallback:g}")
            value = fallback
        # A trusted figure is kept as reported (an int stays an int in the calls row).
        usage[metric] = value if value != raw else raw
    if "usd" not in reported and not flags:
        return Settled(usage)
    usd = finite(reported.get("usd", 0.0))
    estimated_usd = _sane(estimate.get("usd"), MAX_CALL_USD)
    if flags:
        usd = list_price(usage, pricing) if pricing is not None else estimated_usd
    elif usd is None or usd < 0 or usd > MAX_CALL_USD:
        flags.append(f"reported price {_shown(reported.get('usd'))} not trusted")
        usd = estimated_usd
    usage["usd"] = min(max(usd, 0.0), MAX_CALL_USD)
    return Settled(usage, tuple(flags))


def _sane(value: object, cap: float) -> float:
    number = finite(value)
    return 0.0 if number is None else min(max(number, 0.0), cap)


def until(value: object, now: float, max_block_s: float) -> float | None:
    """An instant a provider named, at most `max_block_s` ahead; None when it is no number."""
    number = finite(value)
    return None if number is None else min(number, now + max_block_s)


def rate_report(report: RateLimitReport, now: float, max_block_s: float) -> RateLimitReport | None:
    """A rate-limit report fit to store, or None when its figures cannot be believed."""
    remaining = finite(report.remaining)
    if remaining is None or not isinstance(report.metric, str) or len(report.metric) > 64:
        return None
    resets_at = None
    if report.resets_at is not None:
        resets_at = until(report.resets_at, now, max_block_s)
        if resets_at is None:
            return None
    limit = finite(report.limit) if report.limit is not None else None
    return replace(report, remaining=max(remaining, 0.0), resets_at=resets_at, limit=limit)


__all__ = [
    "MAX_AMOUNT",
    "MAX_CALL_USD",
    "Settled",
    "finite",
    "rate_report",
    "settle_usage",
    "until",
]
