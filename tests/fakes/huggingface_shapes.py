"""Replies shaped like the Hugging Face router's `hf-inference` provider answers.

Why: HF answers images as raw bytes, transcriptions as `{"text"}`, and every failure as
`{"error": ...}` whose meaning (model still loading, credits gone, token lacking a permission,
retired endpoint) is only in the status and the text. Sources, each reproduced below:

- Text-to-image: `POST /hf-inference/models/{model}`, JSON `{"inputs", "parameters": {width,
  height, ...}}` -> raw image bytes with `Content-Type: image/jpeg|png`
  (@huggingface/tasks text-to-image spec; /work/shared/providers/media.md "Hugging Face").
- ASR: same URL, raw audio body with its Content-Type -> `{"text", "chunks"?: [{"text",
  "timestamp": [start, end]}]}` (@huggingface/tasks automatic-speech-recognition output.json).
- 503 `{"error": "Model X is currently loading", "estimated_time": 20.0}` (legacy serverless,
  media.md [obs]).
- 402 "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO
  to get 20x more monthly included credits." (huggingface/agents-course#386, 2025-03).
- 401 `{"error": "Invalid credentials in Authorization header"}`; 403 `permission_error` for a
  fine-grained token without the Inference Providers permission (media.md [obs]).
- 400 `{"error": "Model not supported by provider ..."}` (huggingface/huggingface.js#2225, 2026-06).
- 410 Gone from api-inference.huggingface.co: "https://api-inference.huggingface.co is no longer
  supported. Please use https://router.huggingface.co instead." (SreejanPersonal/JARVIS-AGI#9,
  2026-02).
- 429 with the IETF-draft `RateLimit: "api";r=0;t=N` and `RateLimit-Policy` headers
  (huggingface/hub-docs docs/hub/rate-limits.md). The 429 body text is not documented; the one
  here is a plausible stand-in and nothing asserts on its wording.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_STT_MODEL",
    "asr_ok",
    "bad_gateway_html",
    "bad_request",
    "credits_exhausted",
    "gone",
    "image_ok",
    "invalid_credentials",
    "model_loading",
    "model_path",
    "mount_huggingface_ok",
    "permission_error",
    "png_bytes",
    "rate_limited",
    "server_error",
    "unprocessable",
]

DEFAULT_IMAGE_MODEL = "black-forest-labs/FLUX.1-schnell"
DEFAULT_STT_MODEL = "openai/whisper-large-v3-turbo"
CREDITS_MESSAGE = (
    "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO "
    "to get 20x more monthly included credits."
)
GONE_MESSAGE = (
    "https://api-inference.huggingface.co is no longer supported. Please use "
    "https://router.huggingface.co instead."
)


def png_bytes(
    width: int = 2, height: int = 2, color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    """A real, tiny PNG made on the spot (media are never committed)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def model_path(model: str, prefix: str = "") -> str:
    """Path the adapter posts to for `model` when base_url is `{url}/{prefix}`."""
    head = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
    return f"{head}/hf-inference/models/{model}"


def image_ok(
    data: bytes | None = None,
    content_type: str = "image/png",
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """200 with the raw image bytes."""
    return Reply(
        status=200,
        body=data if data is not None else png_bytes(),
        headers={"content-type": content_type, **(headers or {})},
    )


def asr_ok(
    text: str,
    chunks: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """200 `{"text": ...}`, with `chunks` when timestamps were returned."""
    body: dict[str, Any] = {"text": text}
    if chunks is not None:
        body["chunks"] = chunks
    return Reply(status=200, json=body, headers=dict(headers or {}))


def model_loading(model: str = DEFAULT_IMAGE_MODEL, estimated_time: float = 20.0) -> Reply:
    """503 while the model is loaded onto a machine; `estimated_time` is seconds to wait."""
    return Reply(
        status=503,
        json={"error": f"Model {model} is currently loading", "estimated_time": estimated_time},
    )


def credits_exhausted() -> Reply:
    """402: the month's included credits are spent (free users cannot go past them)."""
    return Reply(status=402, json={"error": CREDITS_MESSAGE})


def invalid_credentials() -> Reply:
    """401 for a wrong or revoked token."""
    return Reply(status=401, json={"error": "Invalid credentials in Authorization header"})


def permission_error(user: str = "someone") -> Reply:
    """403 for a fine-grained token without the "Make calls to Inference Providers" permission."""
    return Reply(
        status=403,
        json={
            "error": {
                "message": "This authentication method does not have sufficient permissions to "
                f"call Inference Providers on behalf of user {user}",
                "type": "permission_error",
            }
        },
    )


def rate_limited(reset_s: int = 89, *, retry_after: str | None = None) -> Reply:
    """429 with HF's IETF-draft RateLimit headers (r = remaining, t = seconds to reset)."""
    headers = {
        "RateLimit": f'"api";r=0;t={reset_s}',
        "RateLimit-Policy": '"fixed window";"api";q=1000;w=300',
    }
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Reply(status=429, json={"error": "Too Many Requests"}, headers=headers)


def bad_request(message: str = "Model not supported by provider hf-inference") -> Reply:
    """400 for a request this provider will not serve."""
    return Reply(status=400, json={"error": message})


def unprocessable() -> Reply:
    """422 for parameters the model rejects (error as a list of messages)."""
    return Reply(
        status=422,
        json={"error": ["Error in `parameters.width`: ensure this value is less than 2048"]},
    )


def gone() -> Reply:
    """410 from the retired serverless host."""
    return Reply(
        status=410,
        body=GONE_MESSAGE,
        headers={"content-type": "text/plain; charset=utf-8"},
    )


def server_error() -> Reply:
    """500 with HF's plain error object."""
    return Reply(status=500, json={"error": "Internal Server Error"})


def bad_gateway_html() -> Reply:
    """502 from the CDN in front of the router: HTML, not JSON."""
    return Reply(
        status=502,
        body="<html><head><title>502 Bad Gateway</title></head><body>"
        "<center><h1>502 Bad Gateway</h1></center></body></html>",
        headers={"content-type": "text/html"},
    )


def mount_huggingface_ok(
    fake: FakeServer,
    prefix: str = "",
    *,
    image_model: str = DEFAULT_IMAGE_MODEL,
    stt_model: str = DEFAULT_STT_MODEL,
    image: bytes | None = None,
    text: str = "hello world",
) -> dict[str, str]:
    """Script one successful text-to-image and one successful ASR exchange.

    Returns {"image": path, "stt": path}; point the provider's base_url at `f"{fake.url}/{prefix}"`.
    The two models must differ: both tasks use the same URL pattern.
    """
    if image_model == stt_model:
        raise ValueError("image_model and stt_model share one path; use two models")
    paths = {"image": model_path(image_model, prefix), "stt": model_path(stt_model, prefix)}
    fake.route("POST", paths["image"], image_ok(image))
    fake.route("POST", paths["stt"], asr_ok(f" {text}"))  # Whisper starts with a space
    return paths
