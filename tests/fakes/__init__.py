"""Local stand-ins for AI providers, so no test ever reaches a real one.

``FakeServer`` serves scripted ``Reply`` objects per method+path and records
every request; ``openai_shapes`` builds replies shaped exactly like the
providers' documented answers (successes, quota/rate-limit/auth errors).
"""

from __future__ import annotations

from tests.fakes.server import UNEXPECTED_STATUS, FakeServer, Recorded, Reply

__all__ = ["UNEXPECTED_STATUS", "FakeServer", "Recorded", "Reply"]
