"""Presentation of run results: the one-line trace, the verbose trace and the --json object."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from scheduler.dispatcher import Attempt, RunResult


def _tokens(usage: dict[str, float]) -> str:
    tokens = usage.get("tokens")
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
        payload["exit_code"] = run.exit_code
    return payload


def failure_reason(run: RunResult) -> str:
    """Why a run did not give the whole answer, in the words of the stderr line and --json."""
    if run.exit_code == 4:
        return "the answer broke off after it began (kept and billed)"
    if run.exit_code == 3:
        return "no provider was available"
    return "every provider failed"


def run_json(run: RunResult, *, path: Path | None = None) -> str:
    return json.dumps(run_payload(run, path=path), ensure_ascii=False)


__all__ = [
    "attempt_summary",
    "failure_reason",
    "run_json",
    "run_payload",
    "trace_line",
    "trace_lines",
]
