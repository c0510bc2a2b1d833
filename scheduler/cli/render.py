"""Presentation: the one-line trace, the verbose trace, the --json object, and the tables.

Tables fit the terminal they are printed in: each column has a priority, and when the table is
wider than the terminal the least important columns go first (the caption says which), then the
columns marked `shrink` are cut with an ellipsis. Piped, nothing is cut: the console is as wide as
the table needs (--json remains the machine format).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from scheduler.dispatcher import Attempt, RunResult

# Wide enough that no table of this CLI wraps when piped, small enough for rich to lay out.
PIPED_WIDTH = 1000


def console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal (or $COLUMNS); when piped, as wide as PIPED_WIDTH."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if os.environ.get("COLUMNS", "").isdigit() or stream.isatty():
        return Console(stderr=stderr)  # rich reads $COLUMNS, then asks the terminal
    return Console(stderr=stderr, width=PIPED_WIDTH)


@dataclass(frozen=True)
class Column:
    """A table column. priority 0 is never dropped; higher numbers are dropped first."""

    header: str
    priority: int = 0
    justify: Literal["left", "right"] = "left"
    shrink: bool = False  # may be cut with an ellipsis when dropping columns is not enough


# A column that may shrink keeps at least SHRINK_MIN characters (with its ellipsis) before
# columns go, and is given SHRINK_WANT before a less important column is kept.
SHRINK_MIN = 12
SHRINK_WANT = 30


def fit_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    title: str | None = None,
) -> Table:
    """A rich Table of `rows` that fits `width` columns of text without wrapping a row."""
    from rich.cells import cell_len
    from rich.table import Table

    natural = [
        max(cell_len(cell) for cell in [column.header, *(row[index] for row in rows)])
        for index, column in enumerate(columns)
    ]

    def wanted(index: int, candidate: int) -> int:
        """What column `index` needs while deciding whether `candidate` may stay: a text column
        more important than the candidate is given room to be read, not just its ellipsis."""
        if not columns[index].shrink:
            return natural[index]
        more_important = columns[index].priority < columns[candidate].priority
        return min(natural[index], SHRINK_WANT if more_important else SHRINK_MIN)

    def frame(kept: list[int]) -> int:  # rich's default box: a border, then 1 + text + 1 + border
        return 1 + 3 * len(kept)

    kept = list(range(len(columns)))
    dropped: list[str] = []
    for index in sorted(kept, key=lambda i: -columns[i].priority):
        needed = frame(kept) + sum(wanted(i, index) for i in kept)
        if needed <= width or columns[index].priority == 0:
            break
        kept.remove(index)
        dropped.append(columns[index].header)
    allowed = _share(
        width - frame(kept), {i: natural[i] for i in kept}, {i for i in kept if columns[i].shrink}
    )
    table = Table(
        title=title,
        title_justify="left",
        caption=(
            f"hidden at this width: {', '.join(dropped)} (--json has every column)"
            if dropped
            else None
        ),
        caption_justify="left",
        caption_style="dim",
    )
    for index in kept:
        column = columns[index]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=True,
            overflow="ellipsis",
            min_width=allowed[index],
            max_width=allowed[index],
        )
    for row in rows:
        table.add_row(*(row[index] for index in kept))
    return table


def _share(room: int, natural: dict[int, int], shrinkable: set[int]) -> dict[int, int]:
    """Column widths: the fixed columns their natural width, the shrinkable ones an even share
    of what is left (a column that needs less than its share gives the rest to the others)."""
    widths = dict(natural)
    left = room - sum(natural[i] for i in natural if i not in shrinkable)
    pending = sorted(shrinkable, key=lambda i: natural[i])
    while pending:
        share = max(left // len(pending), 1)
        index = pending.pop(0)
        widths[index] = min(natural[index], max(share, 1))
        left -= widths[index]
    return widths


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    stderr: bool = False,
) -> Console:
    """Fit the table to the console it is printed on and print it; returns that console."""
    out = console(stderr=stderr)
    out.print(fit_table(columns, rows, out.width, title=title))
    return out


def _tokens(usage: dict[str, float]) -> str:
    from scheduler.ledger.trust import MAX_AMOUNT, finite

    tokens = finite(usage.get("tokens"))  # as the provider reported it: maybe 401 digits
    if tokens is None or not 0 <= tokens <= MAX_AMOUNT:
        return " tokens not trusted" if "tokens" in usage else ""
    return f" {tokens:g} tok" if tokens else ""


def attempt_summary(attempt: Attempt, usage: dict[str, float] | None = None) -> str:
    """`groq: no GROQ_API_KEY`, `mistral: quota full ...`, `cohere: ok 0.9s 312 tok`."""
    if attempt.outcome == "ok":
        cost = f" ${attempt.cost_usd:.4f}" + (" (free)" if attempt.cost_usd == 0 else "")
        seconds = attempt.latency_ms / 1000
        return f"{attempt.provider}: ok {seconds:.1f}s{_tokens(usage or {})}{cost}"
    if attempt.outcome == "skipped":
        return f"{attempt.provider}: {attempt.error}"
    label = attempt.outcome.replace("_", " ")
    return f"{attempt.provider}: {label} ({attempt.error})"


def trace_line(run: RunResult) -> str:
    if not run.attempts:
        return f"no provider in the table serves {run.task.kind}"
    usage = run.result.usage if run.result else None
    return " · ".join(attempt_summary(attempt, usage) for attempt in run.attempts)


def trace_lines(run: RunResult) -> list[str]:
    """The -v trace: where local was placed, then one line per candidate."""
    lines = [f"  ({run.placement})"] if run.placement else []
    for attempt in run.attempts:
        detail = f"model={attempt.model}" if attempt.model else ""
        if attempt.tries:
            detail += f" tries={attempt.tries} {attempt.latency_ms:.0f}ms"
        if attempt.ttft_ms is not None:
            detail += f" first-token={attempt.ttft_ms:.0f}ms"
        lines.append(f"  {attempt.provider:<12} {attempt.outcome:<15} {detail.strip()}")
        if attempt.error:
            lines.append(f"  {'':<12} {attempt.error}")
    return lines


def run_payload(run: RunResult, *, path: Path | None = None) -> dict[str, Any]:
    """The --json object of DESIGN.md, plus `ok`, `path` and `error` so scripts need not guess."""
    result = run.result
    payload: dict[str, Any] = {
        "ok": run.ok,
        "task": run.task.kind,
        "provider": run.provider,
        "model": result.model if result else None,
        "output": result.output if result and result.data is None else None,
        "path": str(path) if path is not None else None,
        "attempts": [
            {
                "provider": attempt.provider,
                "outcome": attempt.outcome,
                "error": attempt.error,
                "latency_ms": round(attempt.latency_ms, 1),
                "cost_usd": attempt.cost_usd,
                **({"ttft_ms": round(attempt.ttft_ms, 1)} if attempt.ttft_ms is not None else {}),
                **({"note": attempt.note} if attempt.note else {}),
            }
            for attempt in run.attempts
        ],
        "usage": result.usage if result else {},
        "cost_usd": run.cost_usd,
        "truncated": bool(result and result.truncated),
    }
    if result is not None and result.segments:
        payload["segments"] = [
            {"start": seg.start, "end": seg.end, "text": seg.text} for seg in result.segments
        ]
    if run.exit_code:
        payload["error"] = failure_reason(run)
        payload["error_type"] = _FAILURE_TYPES.get(run.exit_code, "all_failed")
        payload["exit_code"] = run.exit_code
    return payload


# The error_type of a run that did not give the whole answer (cli.main names the others).
_FAILURE_TYPES = {3: "no_provider", 4: "broken_stream"}


def failure_reason(run: RunResult) -> str:
    """Why a run did not give the whole answer, in the words of the stderr line and --json."""
    if run.exit_code == 4:
        return "the answer broke off after it began (kept and billed)"
    reason = "no provider was available" if run.exit_code == 3 else "every provider failed"
    return f"{reason} for this {run.task.kind} task"


def run_json(run: RunResult, *, path: Path | None = None) -> str:
    return json.dumps(run_payload(run, path=path), ensure_ascii=False)


__all__ = [
    "PIPED_WIDTH",
    "Column",
    "attempt_summary",
    "console",
    "fit_table",
    "print_table",
    "failure_reason",
    "run_json",
    "run_payload",
    "trace_line",
    "trace_lines",
]
