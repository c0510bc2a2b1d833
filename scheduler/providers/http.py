"""The one place HTTP clients are built, so timeouts and pooling are explicit and injectable.

httpx's default 5 s timeout is far too short for image generation or long completions, so every
client takes the configured `timeout_s`. Tests and benchmarks pass their own transport.
"""

from __future__ import annotations

import httpx


def make_client(
    timeout_s: float, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    return httpx.AsyncClient(
        timeout=timeout, limits=limits, transport=transport, follow_redirects=True
    )


__all__ = ["make_client"]
