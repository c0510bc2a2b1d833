"""Replies shaped like Replicate's predictions API and its output-file delivery.

Sources (see /work/shared/providers/media.md, section "Replicate"):

* [doc] HTTP API reference / "Create a prediction": official-model create
  `POST /v1/models/{owner}/{name}/predictions` `{"input"}`, version create `POST /v1/predictions`
  `{"version", "input"}`, `Prefer: wait[=N]`, `GET /v1/predictions/{id}`; the prediction object
  (id, model, version, input, logs, output, data_removed, error, status, created_at, started_at,
  completed_at, urls, metrics); statuses starting, processing, succeeded, failed, canceled,
  aborted. Create answers 201.
* [doc] "Output files": flux-schnell's output is a list of `https://replicate.delivery/...`
  URLs (webp by default), deleted an hour after an API prediction.
* [doc] openai/gpt-4o-mini input schema: `prompt`, `image_input` (list of URIs),
  `max_completion_tokens`; language models return their text as a list of string chunks.
* [obs] official language models report `metrics.input_token_count` / `output_token_count`.
* [doc] rate limits page: 429 `{"detail":"Request was throttled. Your rate limit resets in
  ~30s."}`; [obs 2026-08] low-balance accounts get `"status": 429, "retry_after": 5` as well.
* [obs] 401 `{"title":"Unauthenticated","detail":"You did not pass a valid authentication
  token","status":401}` and 402 `{"title":"Insufficient credit",...}` from real answers.
* [doc] Replicate error codes (E1000 unknown, E1001 out of memory, E6716 timeout starting) appear
  in a failed prediction's free-text `error`. The 422 problem wording is schematic.
"""

from __future__ import annotations

import io
from typing import Any

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "FLUX",
    "GPT4O_MINI",
    "PREDICTIONS_PATH",
    "create_path",
    "delivery_path",
    "file_reply",
    "get_path",
    "insufficient_credit",
    "invalid_input",
    "mount_replicate_multimodal_ok",
    "mount_replicate_ok",
    "not_found",
    "prediction",
    "server_error",
    "throttled",
    "unauthenticated",
    "webp_bytes",
]

FLUX = "black-forest-labs/flux-schnell"
GPT4O_MINI = "openai/gpt-4o-mini"
PREDICTIONS_PATH = "/v1/predictions"
INSUFFICIENT_CREDIT_DETAIL = (
    "You have insufficient credit to run this model. Go to "
    "https://replicate.com/account/billing#billing to purchase credit. Once you purchase "
    "credit, please wait a few minutes before trying again."
)
THROTTLED_DETAIL = "Request was throttled. Your rate limit resets in ~30s."


def webp_bytes(width: int = 8, height: int = 8) -> bytes:
    """A real WebP made now with Pillow, like flux-schnell's default output."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(buffer, format="WEBP")
    return buffer.getvalue()


def _root(prefix: str) -> str:
    return f"/{prefix}" if prefix else ""


def create_path(model: str = FLUX, prefix: str = "") -> str:
    """Create endpoint of an official model ("owner/name")."""
    return f"{_root(prefix)}/v1/models/{model}/predictions"


def get_path(prediction_id: str, prefix: str = "") -> str:
    return f"{_root(prefix)}/v1/predictions/{prediction_id}"


def delivery_path(name: str = "out-0.webp", prefix: str = "") -> str:
    """Where the fake serves output files (replicate.delivery stands in at the same host)."""
    return f"{_root(prefix)}/delivery/xezq/{name}"


def prediction(
    prediction_id: str,
    status: str,
    *,
    base_url: str = "https://api.replicate.com",
    model: str = FLUX,
    version: str = "hidden",
    input: dict[str, Any] | None = None,
    output: Any = None,
    error: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A full prediction object as the API returns it."""
    done = status in ("succeeded", "failed", "canceled", "aborted")
    return {
        "id": prediction_id,
        "model": model,
        "version": version,
        "input": input or {},
        "logs": "",
        "output": output,
        "data_removed": False,
        "error": error,
        "status": status,
        "created_at": "2026-11-21T10:00:00.000Z",
        "started_at": None if status == "starting" else "2026-11-21T10:00:00.500Z",
        "completed_at": "2026-11-21T10:00:01.700Z" if done else None,
        "urls": {
            "get": f"{base_url}/v1/predictions/{prediction_id}",
            "cancel": f"{base_url}/v1/predictions/{prediction_id}/cancel",
            "stream": f"https://stream.replicate.com/v1/files/{prediction_id}",
            "web": f"https://replicate.com/p/{prediction_id}",
        },
        "metrics": metrics if metrics is not None else ({"predict_time": 1.2} if done else {}),
    }


def created(body: dict[str, Any]) -> Reply:
    """201 Created, the answer to a create request."""
    return Reply(status=201, json=body)


def polled(body: dict[str, Any]) -> Reply:
    return Reply(status=200, json=body)


def file_reply(data: bytes, media_type: str = "image/webp") -> Reply:
    return Reply(status=200, body=data, headers={"content-type": media_type})


def problem(status: int, title: str, detail: str, **extra: Any) -> Reply:
    """An RFC 7807 problem document, Replicate's error shape."""
    return Reply(
        status=status,
        json={"title": title, "detail": detail, "status": status, **extra},
        headers={"content-type": "application/problem+json"},
    )


def insufficient_credit() -> Reply:
    return problem(402, "Insufficient credit", INSUFFICIENT_CREDIT_DETAIL)


def unauthenticated() -> Reply:
    return problem(401, "Unauthenticated", "You did not pass a valid authentication token")


def throttled(retry_after: int | None = 5, headers: dict[str, str] | None = None) -> Reply:
    """429: plain (the documented body) or with the low-balance `status` + `retry_after`."""
    body: dict[str, Any] = {"detail": THROTTLED_DETAIL}
    if retry_after is not None:
        body.update(status=429, retry_after=retry_after)
    return Reply(status=429, json=body, headers=headers or {})


def invalid_input() -> Reply:
    return problem(
        422,
        "Input validation failed",
        '- input.aspect_ratio: aspect_ratio must be one of the following: "1:1", "16:9"',
        invalid_fields=[
            {
                "type": "enum",
                "field": "input.aspect_ratio",
                "description": 'aspect_ratio must be one of the following: "1:1", "16:9"',
            }
        ],
    )


def not_found() -> Reply:
    return problem(404, "Not found", "The requested resource could not be found.")


def server_error() -> Reply:
    return problem(500, "Internal Server Error", "An unexpected error occurred.")


def _mount_job(
    fake: FakeServer,
    prefix: str,
    model: str,
    output: Any,
    metrics: dict[str, Any],
    prediction_id: str,
) -> None:
    """create (starting, 201) -> poll (processing) -> poll (succeeded with `output`)."""
    base = f"{fake.url}{_root(prefix)}"
    start = prediction(prediction_id, "starting", base_url=base, model=model)
    fake.route("POST", create_path(model, prefix), created(start))
    done = prediction(
        prediction_id, "succeeded", base_url=base, model=model, output=output, metrics=metrics
    )
    fake.route(
        "GET",
        get_path(prediction_id, prefix),
        polled(prediction(prediction_id, "processing", base_url=base, model=model)),
        polled(done),
    )


def mount_replicate_ok(
    fake: FakeServer, prefix: str = "", *, prediction_id: str = "q7x2k9"
) -> bytes:
    """Script a whole successful flux-schnell job at ``/{prefix}``: create (starting), one poll
    (processing), one poll (succeeded), and the output file. Returns the image bytes (WebP)."""
    data = webp_bytes(16, 9)
    fake.route("GET", delivery_path("out-0.webp", prefix), file_reply(data))
    url = f"{fake.url}{delivery_path('out-0.webp', prefix)}"
    metrics = {"predict_time": 0.6, "image_count": 1}
    _mount_job(fake, prefix, FLUX, [url], metrics, prediction_id)
    return data


def mount_replicate_multimodal_ok(
    fake: FakeServer, prefix: str = "", *, prediction_id: str = "q7x2k9"
) -> str:
    """The same job flow for openai/gpt-4o-mini with an image; returns the answer text."""
    chunks = ["A", " red", " square", "."]
    metrics = {"predict_time": 0.9, "input_token_count": 271, "output_token_count": 4}
    _mount_job(fake, prefix, GPT4O_MINI, chunks, metrics, prediction_id)
    return "".join(chunks)
