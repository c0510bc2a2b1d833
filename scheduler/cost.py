"""What a call costs: list prices applied to usage, and the share a free allowance covers.

Two figures per call. Its *list price* is what the provider charges for the usage (recorded as the
`usd` usage metric, which is also what a provider's prepaid credit or `usd` allowance is spent
by). Its *cost* is what the user pays: the list price times the share of the call that falls
outside every free allowance. A provider with free rules is free while all of them still cover the
call; a call that starts inside an allowance and ends past it pays only for the part past it (the
largest overflow share among its free rules); a provider with prices and no free rule bills every
call. A provider with no prices never bills.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scheduler.config.schema import Prices, Pricing

# Pricing field -> (usage metric, units per priced amount)
_RATES: tuple[tuple[str, str, float], ...] = (
    ("usd_per_mtok_input", "input_tokens", 1_000_000),
    ("usd_per_mtok_output", "output_tokens", 1_000_000),
    ("usd_per_image", "images", 1),
    ("usd_per_audio_minute", "audio_seconds", 60),
    ("usd_per_kchar", "characters", 1000),
    ("usd_per_request", "requests", 1),
    ("usd_per_credit", "credits", 1),
)


def is_billable(pricing: Prices) -> bool:
    """Whether any price is set (a model's own included): a provider without prices never
    bills."""
    if isinstance(pricing, Pricing) and any(is_billable(own) for own in pricing.models.values()):
        return True
    return any(getattr(pricing, field) for field, _, _ in _RATES)


def list_price(usage: Mapping[str, float], pricing: Prices) -> float:
    """USD at list price for `usage`. Token totals without a split are priced as input tokens."""
    total = 0.0
    for field, metric, per in _RATES:
        rate = getattr(pricing, field)
        if rate:
            total += _amount(usage.get(metric, 0.0)) * rate / per
    if "input_tokens" not in usage and "output_tokens" not in usage and usage.get("tokens"):
        total += _amount(usage["tokens"]) * (pricing.usd_per_mtok_input or 0.0) / 1_000_000
    return total


def _amount(value: float) -> float:
    """A usage figure as a float; one beyond float range (a provider's 401-digit count) is
    infinite, which the ledger's trust boundary refuses, rather than an OverflowError here."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


@dataclass(frozen=True)
class FreeShare:
    """How much of one free allowance was left when a call was reserved."""

    metric: str
    remaining: float


def paid_share(usage: Mapping[str, float], free: Iterable[FreeShare], billable: bool) -> float:
    """The share of a call that no free allowance covers (0 = free, 1 = fully paid)."""
    if not billable:
        return 0.0
    allowances = list(free)
    if not allowances:
        return 1.0
    share = 0.0
    for allowance in allowances:
        amount = usage.get(allowance.metric, 0.0)
        if amount > 0:
            share = max(share, max(amount - max(allowance.remaining, 0.0), 0.0) / amount)
    return min(share, 1.0)


__all__ = ["FreeShare", "is_billable", "list_price", "paid_share"]
