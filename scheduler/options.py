"""How one run picks its providers and what it may spend: options that travel with the call.

A `Scheduler` serves many callers at once (a CLI batch, the gateway's requests), each with its
own strategy, spending cap and pinned provider. Keeping these on the call, never on the shared
dispatcher, is what lets two concurrent runs with different options both be right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from scheduler.config.schema import Strategy
from scheduler.errors import InputError

if TYPE_CHECKING:
    from scheduler.ledger.store import CallerLimits

STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


@dataclass(frozen=True)
class RunOptions:
    """Per-call choices; the defaults defer to the table's settings.

    - `provider`: use only this provider (its quota rules and state still apply).
    - `strategy`: priority, cheapest or fastest; None is the table's `settings.strategy`.
    - `max_cost`: USD this run may spend in all, across its fallbacks and retries.
    - `free_only`: refuse every call that would cost money.
    - `probe`: a health probe by the cron service: one try, and this provider's failure-rate
      block (only that one) lets the call through. Not for ordinary runs.
    - `caller`: the limits of whoever asked (a gateway token), held with every reservation.
    """

    provider: str | None = None
    strategy: Strategy | None = None
    max_cost: float | None = None
    free_only: bool = False
    probe: bool = False
    caller: CallerLimits | None = None

    def __post_init__(self) -> None:
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise InputError(
                f"--strategy {self.strategy!r}: expected {', '.join(STRATEGIES[:-1])}"
                f" or {STRATEGIES[-1]}"
            )
        if self.max_cost is not None and not (math.isfinite(self.max_cost) and self.max_cost >= 0):
            raise InputError(f"--max-cost {self.max_cost!r}: expected a number of USD >= 0")


__all__ = ["STRATEGIES", "RunOptions"]
