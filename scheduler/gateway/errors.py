"""Failures in OpenAI's error shape, with the status a client's retry logic acts on.

OpenAI's SDKs retry 429 and 5xx (honouring `Retry-After`) and give up on other 4xx. So:

- 400 the request is wrong (or every provider that tried refused this input);
- 401 no, unknown, revoked or expired gateway token; 403 a token not allowed this route;
- 404 an unknown model route; 413 a body over the cap;
- 429 every provider is out of quota or cooling down (or the token's own limit is reached), with
  `Retry-After` = the earliest moment one of them comes back;
- 502 every provider that was tried failed; 503 none is configured for this kind of task.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from scheduler.cli.render import trace_line
from scheduler.dispatcher import RunResult

# Outcomes that mean "no quota now", not "broken": a client should come back later.
_OUT_OF_QUOTA = frozenset({"quota_exhausted", "rate_limited"})


@dataclass(frozen=True)
class ApiError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None
    challenge: bool = False  # ask a browser for credentials (HTTP Basic)

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after)))
        if self.challenge:
            headers["www-authenticate"] = 'Basic realm="sched status", charset="UTF-8"'
        return headers


def run_failure(run: RunResult, *, now: float | None = None) -> ApiError:
    """Why no provider answered, as the status a client should act on."""
    now = time.time() if now is None else now
    trace = trace_line(run)
    attempts = run.attempts
    tried = [a for a in attempts if a.outcome != "skipped"]
    comes_back = [a.until for a in attempts if a.until is not None and a.until > now]
    waiting = [
        a
        for a in attempts
        if a.outcome in _OUT_OF_QUOTA or (a.outcome == "skipped" and a.until is not None)
    ]
    if attempts and len(waiting) == len(attempts):
        retry = (min(comes_back) - now) if comes_back else None
        return ApiError(
            429,
            f"every provider is out of quota or cooling down: {trace}",
            "rate_limit_error",
            "rate_limit_exceeded",
            retry_after=retry,
        )
    if not tried:
        if comes_back:  # some are only waiting: worth a retry then
            return ApiError(
                429,
                f"no provider can take this now: {trace}",
                "rate_limit_error",
                "rate_limit_exceeded",
                retry_after=min(comes_back) - now,
            )
        return ApiError(
            503,
            f"no provider is available for this {run.task.kind} task: {trace}",
            "service_unavailable",
            "no_provider",
        )
    if all(a.outcome == "rejected_input" for a in tried):
        return ApiError(400, f"every provider refused this input: {trace}", code="rejected_input")
    return ApiError(502, f"every provider failed: {trace}", "upstream_error", "upstream_failed")


__all__ = ["ApiError", "run_failure"]
