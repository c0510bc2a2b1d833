"""The one place HTTP clients are built, so timeouts, pooling and the guards are explicit.

httpx's default 5 s timeout is far too short for image generation or long completions, so every
client takes the configured `timeout_s`. Every client also carries `http_guard`'s hooks: keys never
follow a redirect to another origin, and no answer is read past `settings.max_response_mb`.
Tests and benchmarks pass their own transport.
"""

from __future__ import annotations

import httpx

from scheduler.providers.http_guard import DEFAULT_MAX_RESPONSE_MB, hooks


def make_client(
    timeout_s: float,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    max_response_mb: float = DEFAULT_MAX_RESPONSE_MB,
) -> httpx.AsyncClient:
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    return httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        transport=transport,
        follow_redirects=True,
        event_hooks=hooks(max_response_mb),
    )


__all__ = ["make_client"]
