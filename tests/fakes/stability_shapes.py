"""Replies shaped like Stability AI's v2beta Stable Image API, and a reader for its requests.

Sources (see /work/shared/providers/media.md, section "Stability AI"):

* [doc] v2beta reference: `POST /v2beta/stable-image/generate/{core,ultra,sd3}`, multipart
  fields, `Accept: image/*` -> raw image with `finish-reason` and `seed` headers,
  `CONTENT_FILTERED` still HTTP 200, errors `{"id", "name", "errors": [...]}`, 403
  `content_moderation` (the example body below is the spec's own), 400/413/422/500.
* [obs] 401 `unauthorized` "authorization: invalid or missing header value" and 402
  `payment_required` "You lack sufficient credits ..." come from real answers quoted in two
  independent repositories; 402 is not in the published spec.
* [doc] 429 past 150 requests / 10 s, with a 60 s time-out. The spec gives no 429 body; the one
  here uses the common error envelope with wording of our own (schematic).
"""

from __future__ import annotations

import io
from email.parser import BytesParser
from email.policy import HTTP

from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = [
    "bad_request",
    "content_filtered",
    "content_moderation",
    "error",
    "generate_path",
    "html_bad_gateway",
    "image_ok",
    "mount_stability_ok",
    "multipart_fields",
    "payload_too_large",
    "payment_required",
    "png_bytes",
    "rate_limited",
    "server_error",
    "unauthorized",
    "unprocessable",
]

ERROR_ID = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4"
PAYMENT_REQUIRED_MESSAGE = (
    "You lack sufficient credits to make this request. Please purchase more credits at "
    "https://platform.stability.ai/account/credits and try again."
)
MODERATION_MESSAGE = (
    "Your request was flagged by our content moderation system, as a result your request was "
    "denied and you were not charged."
)


def png_bytes(width: int = 8, height: int = 8, color: str = "red") -> bytes:
    """A real PNG made now with Pillow (media is generated, never committed)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def generate_path(endpoint: str = "core", prefix: str = "") -> str:
    """Path of a generate endpoint for a fake mounted at ``/{prefix}`` (or the root)."""
    root = f"/{prefix}" if prefix else ""
    return f"{root}/v2beta/stable-image/generate/{endpoint}"


def image_ok(
    data: bytes,
    *,
    finish_reason: str = "SUCCESS",
    seed: int = 343940597,
    media_type: str = "image/png",
) -> Reply:
    """200 with the raw image, as `Accept: image/*` asks for."""
    return Reply(
        status=200,
        body=data,
        headers={
            "content-type": media_type,
            "finish-reason": finish_reason,
            "seed": str(seed),
            "x-request-id": "7c0a1f0e3b5d4c2a",
        },
    )


def content_filtered(data: bytes) -> Reply:
    """200 whose image was blurred by moderation: `finish-reason: CONTENT_FILTERED`."""
    return image_ok(data, finish_reason="CONTENT_FILTERED")


def error(status: int, name: str, *errors: str) -> Reply:
    """The v2beta error envelope."""
    return Reply(status=status, json={"id": ERROR_ID, "name": name, "errors": list(errors)})


def payment_required() -> Reply:
    return error(402, "payment_required", PAYMENT_REQUIRED_MESSAGE)


def unauthorized() -> Reply:
    return error(401, "unauthorized", "authorization: invalid or missing header value")


def content_moderation() -> Reply:
    return error(403, "content_moderation", MODERATION_MESSAGE)


def bad_request() -> Reply:
    return error(400, "bad_request", "prompt: cannot be empty")


def payload_too_large() -> Reply:
    return error(413, "payload_too_large", "body: payloads cannot be larger than 10MiB in size")


def unprocessable() -> Reply:
    return error(
        422, "invalid_language", "English is the only supported language for this service."
    )


def rate_limited(headers: dict[str, str] | None = None) -> Reply:
    reply = error(
        429,
        "rate_limit_exceeded",
        "You have exceeded the rate limit of 150 requests within a 10 second period.",
    )
    return Reply(status=429, json=reply.json, headers=headers or {})


def server_error() -> Reply:
    return error(500, "internal_error", "An unexpected server error has occurred.")


def html_bad_gateway() -> Reply:
    """A proxy's HTML page in front of the API (not JSON at all)."""
    page = "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
    return Reply(status=502, body=page, headers={"content-type": "text/html"})


def multipart_fields(request: Recorded) -> dict[str, str]:
    """The form fields of a multipart/form-data request, by name (fails on anything else)."""
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary="), content_type
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.body)
    assert message.is_multipart()
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        fields[name] = payload.decode("utf-8")
    return fields


def mount_stability_ok(fake: FakeServer, prefix: str = "", *, endpoint: str = "core") -> bytes:
    """Script one successful generation at ``/{prefix}``; returns the PNG it will answer."""
    data = png_bytes(16, 9)
    fake.route("POST", generate_path(endpoint, prefix), image_ok(data))
    return data
