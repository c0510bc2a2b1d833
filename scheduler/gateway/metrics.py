"""`GET /metrics` in Prometheus' text format.

Two sources, each where it is true: what this worker saw (requests per endpoint and status,
fallbacks, attempts per provider and outcome) is counted in memory and labelled with the
worker's pid, so a scrape of several workers sums correctly; what the ledger knows for every
worker and host (quota remaining per rule, spend today and this month) is read from it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from scheduler.dispatcher import RunResult

if TYPE_CHECKING:
    from scheduler.config.schema import Config
    from scheduler.ledger.store import Ledger


def _labels(**labels: object) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(
    name: str, description: str, kind: str, samples: Iterable[tuple[str, float]]
) -> list[str]:
    """One metric family in the text format: its HELP and TYPE lines, then a line per sample."""
    lines = [f"# HELP {name} {description}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value}" for labels, value in samples]
    return lines


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.fallbacks = 0
        self.pid = os.getpid()

    def count_request(self, path: str, status: int) -> None:
        self.requests[(path, status)] += 1

    def observe(self, run: RunResult) -> None:
        for attempt in run.attempts:
            self.attempts[(attempt.provider, attempt.outcome)] += 1
        tried = [a for a in run.attempts if a.outcome != "skipped"]
        if run.ok and len(tried) > 1:
            self.fallbacks += 1

    def render(self, ledger: Ledger, config: Config) -> str:
        """The text exposition; called on the ledger thread (it reads the ledger)."""
        from scheduler.config.keys import KeyStore
        from scheduler.ledger.report import quota_report
        from scheduler.ledger.spend import spend_report

        worker = self.pid
        lines = _family(
            "sched_requests_total",
            "Gateway requests by endpoint and status (this worker).",
            "counter",
            (
                (_labels(endpoint=path, status=status, worker=worker), count)
                for (path, status), count in sorted(self.requests.items())
            ),
        )
        lines += _family(
            "sched_attempts_total",
            "Provider attempts by outcome (this worker).",
            "counter",
            (
                (_labels(provider=provider, outcome=outcome, worker=worker), count)
                for (provider, outcome), count in sorted(self.attempts.items())
            ),
        )
        lines += [
            "# HELP sched_fallbacks_total Requests served after another provider failed.",
            "# TYPE sched_fallbacks_total counter",
            f"sched_fallbacks_total{_labels(worker=worker)} {self.fallbacks}",
            "# HELP sched_quota_remaining What each quota rule has left in its current window.",
            "# TYPE sched_quota_remaining gauge",
        ]
        for report in quota_report(config, ledger, KeyStore()):
            for window in report.windows:
                labels = _labels(provider=report.provider, metric=window.metric, per=window.period)
                lines.append(f"sched_quota_remaining{labels} {window.remaining:g}")
        lines += [
            "# HELP sched_spend_usd What calls cost in the current UTC day and month.",
            "# TYPE sched_spend_usd gauge",
        ]
        for period in ("day", "month"):
            spent = spend_report(config, ledger, period).cost_usd
            lines.append(f"sched_spend_usd{_labels(period=period)} {spent:g}")
        return "\n".join(lines) + "\n"


__all__ = ["Metrics"]
