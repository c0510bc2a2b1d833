"""Replies shaped like Fireworks AI's FLUX text-to-image workflow answers.

What is reproduced, and from where:

- Success (docs.fireworks.ai/api-reference/generate-a-new-image-from-a-text-prompt): with
  `Accept: image/png` the body is the PNG itself, with `Finish-Reason` (SUCCESS |
  CONTENT_FILTERED) and `Seed` headers; with `Accept: application/json` it is
  `{"id", "base64": ["data:image/png;base64,..."], "finishReason", "seed"}`.
- 412 (observed 2026-07 on .../flux-1-schnell-fp8/text_to_image, pollinations/pollinations#12136):
  `{"error": {"message": "Account X is suspended, possibly due to reaching the monthly spending
  limit or failure to pay past invoices. ...", "param": null, "code": "PRECONDITION_FAILED",
  "type": "error"}, "request_id": "..."}`.
- 429 (observed 2025-11, GordeyZuev/LEAP#6): `{"error": "Too Many Requests", "message": "You
  have exceeded your usage limits. ..."}`.
- 404 (observed 2026-08, text-llm.md): `{"message": "Model not found, inaccessible, and/or not
  deployed", "param": "model", "code": "NOT_FOUND", "type": "error"}`.
- 401, 402, 503: statuses from docs.fireworks.ai/guides/inference-error-codes; their bodies are
  not published, so they reuse the 412 envelope with the status's name as `code` (an assumption,
  flagged in each builder).
"""

from __future__ import annotations

import base64
import itertools

from tests.fakes.openai_shapes import chat_ok, tiny_png
from tests.fakes.server import FakeServer, Reply

__all__ = [
    "FLUX_SCHNELL",
    "SUSPENDED_MESSAGE",
    "base_path",
    "flux_filtered",
    "flux_json",
    "flux_png",
    "mount_fireworks_ok",
    "not_found_404",
    "overloaded_503",
    "payment_required_402",
    "rate_limited_429",
    "server_error_500",
    "suspended_412",
    "text_to_image_path",
    "unauthorized_401",
]

FLUX_SCHNELL = "accounts/fireworks/models/flux-1-schnell-fp8"
SUSPENDED_MESSAGE = (
    "Account acme is suspended, possibly due to reaching the monthly spending limit or failure "
    "to pay past invoices. Please go to https://fireworks.ai/account/billing for more information."
)
RATE_LIMIT_MESSAGE = (
    "You have exceeded your usage limits. Please try again later or contact Fireworks to "
    "explore dedicated capacity."
)

_ids = itertools.count(1)


def base_path(prefix: str) -> str:
    """Fireworks' base path `/inference/v1`, under ``/{prefix}`` when given."""
    return f"/{prefix}/inference/v1" if prefix else "/inference/v1"


def text_to_image_path(prefix: str, model: str = "flux-1-schnell-fp8") -> str:
    return f"{base_path(prefix)}/workflows/accounts/fireworks/models/{model}/text_to_image"


def flux_png(image: bytes, *, seed: int = 1234567890) -> Reply:
    """200 with `Accept: image/png`: the image bytes and the Finish-Reason / Seed headers."""
    return Reply(
        status=200,
        body=image,
        headers={"content-type": "image/png", "finish-reason": "SUCCESS", "seed": str(seed)},
    )


def flux_filtered() -> Reply:
    """200, but the safety check filtered the image (a black frame comes back)."""
    return Reply(
        status=200,
        body=tiny_png((0, 0, 0)),
        headers={"content-type": "image/png", "finish-reason": "CONTENT_FILTERED", "seed": "7"},
    )


def flux_json(image: bytes, *, finish: str = "SUCCESS") -> Reply:
    """200 with `Accept: application/json`: base64 data URLs in `base64`."""
    encoded = "data:image/png;base64," + base64.b64encode(image).decode("ascii")
    return Reply(
        status=200,
        json={"id": f"{next(_ids):010d}", "base64": [encoded], "finishReason": finish, "seed": 1},
    )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        json={
            "error": {"message": message, "param": None, "code": code, "type": "error"},
            "request_id": f"11650e2f-ff1b-4aac-9719-{next(_ids):012d}",
        },
        headers=headers or {},
    )


def suspended_412() -> Reply:
    """412 PRECONDITION_FAILED: account suspended for its spend limit (observed 2026-07)."""
    return _error(412, "PRECONDITION_FAILED", SUSPENDED_MESSAGE)


def payment_required_402() -> Reply:
    """402: not on a paid plan or over its usage limit (status documented, body assumed)."""
    return _error(
        402,
        "PAYMENT_REQUIRED",
        "Your account is not on a paid plan or has exceeded its usage limits.",
    )


def unauthorized_401() -> Reply:
    """401: invalid API key (status documented, code UNAUTHORIZED reported, body assumed)."""
    return _error(401, "UNAUTHORIZED", "The API key you provided is invalid.")


def rate_limited_429(retry_after: str | None = "3") -> Reply:
    """429 in the observed bare shape (`error` is a string), with a Retry-After header."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Reply(
        status=429,
        json={"error": "Too Many Requests", "message": RATE_LIMIT_MESSAGE},
        headers=headers,
    )


def not_found_404() -> Reply:
    """404 for an unknown model (observed 2026-08 on chat; same service front)."""
    return Reply(
        status=404,
        json={
            "message": "Model not found, inaccessible, and/or not deployed",
            "param": "model",
            "code": "NOT_FOUND",
            "type": "error",
        },
    )


def overloaded_503() -> Reply:
    """503: serverless capacity exhausted (status documented, body assumed)."""
    return _error(503, "UNAVAILABLE", "The service is currently overloaded. Please retry.")


def server_error_500() -> Reply:
    return _error(500, "INTERNAL", "Internal server error")


def mount_fireworks_ok(fake: FakeServer, prefix: str = "") -> str:
    """Script one successful chat and one FLUX image; returns the provider's base_url."""
    fake.route("POST", f"{base_path(prefix)}/chat/completions", chat_ok("ok"))
    fake.route("POST", text_to_image_path(prefix), flux_png(tiny_png()))
    return f"{fake.url}{base_path(prefix)}"
