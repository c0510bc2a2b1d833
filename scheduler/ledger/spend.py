"""Spend over a day or a month: what was paid, what free usage saved, what the budget has left.

Figures come from the calls table (`cost_usd` is what the user paid, `list_usd` the same usage at
the provider's list price), reading only the period's rows through the `ts` index. Budget "used"
is the period's committed spend; "reserved" is what calls in flight hold in the budget windows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from scheduler.ledger.store import BUDGET_SCOPE
from scheduler.windows import WindowSpec, format_instant

if TYPE_CHECKING:
    from scheduler.config.schema import Config
    from scheduler.ledger.store import Ledger

Period = Literal["day", "month"]
_WINDOWS: dict[Period, WindowSpec] = {"day": WindowSpec("day"), "month": WindowSpec("month")}


@dataclass(frozen=True)
class SpendLine:
    """One provider and task kind over the period."""

    provider: str
    task: str
    calls: int
    cost_usd: float
    list_usd: float

    @property
    def saved_usd(self) -> float:
        return max(self.list_usd - self.cost_usd, 0.0)


@dataclass(frozen=True)
class BudgetState:
    scope: str  # "all providers" or a provider name
    limit_usd: float
    used_usd: float
    reserved_usd: float

    @property
    def left_usd(self) -> float:
        return max(self.limit_usd - self.used_usd - self.reserved_usd, 0.0)


@dataclass(frozen=True)
class SpendReport:
    period: Period
    since: int
    until: int
    lines: tuple[SpendLine, ...]
    budgets: tuple[BudgetState, ...]

    @property
    def cost_usd(self) -> float:
        return sum(line.cost_usd for line in self.lines)

    @property
    def list_usd(self) -> float:
        return sum(line.list_usd for line in self.lines)

    @property
    def saved_usd(self) -> float:
        return sum(line.saved_usd for line in self.lines)

    def as_dict(self) -> dict[str, object]:
        return {
            "period": self.period,
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(),
            "until": datetime.fromtimestamp(self.until, UTC).isoformat(),
            "resets": format_instant(self.until, "UTC"),
            "cost_usd": self.cost_usd,
            "list_usd": self.list_usd,
            "saved_usd": self.saved_usd,
            "by_provider": [
                {
                    "provider": line.provider,
                    "task": line.task,
                    "calls": line.calls,
                    "cost_usd": line.cost_usd,
                    "list_usd": line.list_usd,
                    "saved_usd": line.saved_usd,
                }
                for line in self.lines
            ],
            "budgets": [
                {
                    "scope": budget.scope,
                    "limit_usd": budget.limit_usd,
                    "used_usd": budget.used_usd,
                    "reserved_usd": budget.reserved_usd,
                    "left_usd": budget.left_usd,
                }
                for budget in self.budgets
            ],
        }


def spend_report(
    config: Config, ledger: Ledger, period: Period = "day", *, now: float | None = None
) -> SpendReport:
    now = time.time() if now is None else now
    since, until = _WINDOWS[period].bounds(now)
    assert until is not None
    lines = _lines(ledger, since, until)
    spent: dict[str, float] = {}
    for line in lines:
        spent[line.provider] = spent.get(line.provider, 0.0) + line.cost_usd
    budgets = []
    scopes = [(None, config.settings.budget)] + [
        (name, provider.budget) for name, provider in config.providers.items() if provider.budget
    ]
    for scope, budget in scopes:
        assert budget is not None
        limit = budget.daily_usd if period == "day" else budget.monthly_usd
        if limit is None:
            continue
        owner = BUDGET_SCOPE if scope is None else scope
        rows = ledger.read(
            "SELECT reserved FROM usage_windows WHERE provider = ? AND rule = ?"
            " AND window_start = ?",
            (owner, f"budget/{period}", since),
        )
        used = sum(spent.values()) if scope is None else spent.get(scope, 0.0)
        reserved = float(str(rows[0][0])) if rows else 0.0
        budgets.append(BudgetState(scope or "all providers", limit, used, reserved))
    return SpendReport(period, since, until, lines, tuple(budgets))


def _lines(ledger: Ledger, since: float, until: float) -> tuple[SpendLine, ...]:
    """Spend per provider and task: finished days from their summaries, the rest from the call
    rows (so a month of a million calls is a few hundred summary rows and today's calls)."""
    from scheduler.ledger.maintenance import period_split

    days, rows_since = period_split(ledger, since, until)
    rows = ledger.read(
        "SELECT provider, task, COUNT(*), SUM(cost_usd), SUM(list_usd)"
        f" FROM {ledger.calls_in_period} WHERE ts >= ? AND ts < ? GROUP BY provider, task",
        (rows_since, until),
    )
    if days is not None:
        rows += ledger.read(
            "SELECT provider, task, SUM(calls), SUM(cost_usd), SUM(list_usd) FROM daily_summaries"
            " WHERE day >= ? AND day < ? GROUP BY provider, task",
            days,
        )
    totals: dict[tuple[str, str], list[float]] = {}
    for provider, task, calls, cost, listed in rows:
        entry = totals.setdefault((str(provider), str(task)), [0, 0.0, 0.0])
        entry[0] += int(str(calls))
        entry[1] += float(str(cost or 0))
        entry[2] += float(str(listed or 0))
    return tuple(
        SpendLine(provider, task, int(v[0]), round(v[1], 10), round(v[2], 10))
        for (provider, task), v in sorted(totals.items())
    )


__all__ = ["BudgetState", "SpendLine", "SpendReport", "spend_report"]
