"""Stability AI's Stable Image REST API (v2beta): text to image on Core, Ultra and SD 3.5.

Plain httpx on the shared client, because Stability ships no Python SDK for v2beta. The wire
format, as the v2beta reference documents it:

* `POST /v2beta/stable-image/generate/{core|ultra|sd3}`, always `multipart/form-data` (the API
  refuses a urlencoded or JSON body even when no file is sent), with `prompt`, `output_format`,
  `aspect_ratio` (one of nine fixed ratios, not pixel sizes) and, for SD 3.5, `model`.
* `Accept: image/*` makes the answer the raw image, with `finish-reason: SUCCESS` or
  `CONTENT_FILTERED` (still HTTP 200: the image comes back blurred, so it must be refused here)
  and `seed` headers.
* Errors are `{"id", "name", "errors": [...]}`; out of credit is 402 `payment_required` (seen in
  real answers, absent from the published spec), moderation is 403 `content_moderation`, and a
  429 also times the caller out for 60 s, which is the wait used when no hint says otherwise.

Billing is in credits per image (1 credit = $0.01): the usage reports them so the ledger can count
the 25 free credits and price paid ones.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from scheduler.errors import (
    AuthFailed,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
    redact,
)
from scheduler.providers.base import Adapter
from scheduler.providers.http_errors import (
    decode_json,
    error_parts,
    is_model_gone,
    page_title_or_text,
    transport_error,
)
from scheduler.retry_hints import retry_hint
from scheduler.tasks import ImageTask, ProviderResult, Task, TaskKind

# Credits per image (Stability pricing, v2beta docs). The sd3-* names are silently re-routed to
# their 3.5 equivalents at the same price since 2025-04-17, so they cost what those cost.
MODEL_CREDITS: dict[str, float] = {
    "ultra": 8.0,
    "core": 3.0,
    "sd3.5-large": 6.5,
    "sd3.5-large-turbo": 4.0,
    "sd3.5-medium": 3.5,
    "sd3.5-flash": 2.5,
    "sd3-large": 6.5,
    "sd3-large-turbo": 4.0,
    "sd3-medium": 3.5,
}
# The ratios `aspect_ratio` accepts on every generate endpoint, square first so ties prefer it.
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
# "Stability times you out for 60 s" after a 429 (rate-limit docs): the wait when no hint is sent.
RATE_LIMIT_TIMEOUT_S = 60.0

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
_CREDIT_TEXT = re.compile(r"sufficient credits|purchase more credits", re.IGNORECASE)


def nearest_aspect_ratio(size: str, ratios: Sequence[str]) -> str:
    """The ratio in `ratios` closest to a "WIDTHxHEIGHT" size, compared on a log scale.

    Image APIs that take ratios rather than pixels (Stability, Replicate's FLUX) still get the
    shape the user asked for; the log makes 2:1 and 1:2 equally far from 1:1. Raises ValueError
    for a size that is not two positive integers.
    """
    match = _SIZE.match(size)
    if match is None or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise ValueError(f"size must be WIDTHxHEIGHT in pixels, got {size!r}")
    target = math.log(int(match.group(1)) / int(match.group(2)))

    def distance(ratio: str) -> float:
        width, _, height = ratio.partition(":")
        return abs(math.log(int(width) / int(height)) - target)

    return min(ratios, key=distance)


def endpoint_for(model: str) -> tuple[str, str | None]:
    """(endpoint, form `model` field) for a configured model name; ValueError if unknown."""
    if model not in MODEL_CREDITS:
        known = ", ".join(MODEL_CREDITS)
        raise ValueError(f"unknown Stability image model {model!r}; expected one of {known}")
    if model.startswith("sd3"):
        return "sd3", model
    return model, None


class StabilityAdapter(Adapter):
    """Text to image on Stability's v2beta Stable Image endpoints."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"image"})
    default_base_url: ClassVar[str | None] = "https://api.stability.ai"

    @classmethod
    def estimate(cls, task: Task, *, model: str) -> dict[str, float]:
        """Stability bills credits per image by model: reserve them against the credits rule."""
        usage = super().estimate(task, model=model)
        usage["credits"] = MODEL_CREDITS.get(model, max(MODEL_CREDITS.values()))
        return usage

    async def image(self, task: ImageTask, *, model: str) -> ProviderResult:
        try:
            endpoint, form_model = endpoint_for(model)
            ratio = nearest_aspect_ratio(task.size, ASPECT_RATIOS) if task.size else None
        except ValueError as exc:
            raise RejectedInput(str(exc), provider=self.name) from None
        fields: dict[str, str] = {"prompt": task.prompt, "output_format": "png"}
        if ratio is not None:
            fields["aspect_ratio"] = ratio
        if form_model is not None:
            fields["model"] = form_model
        # (None, value) parts carry no filename: plain form fields, yet httpx must send
        # multipart/form-data because they are passed as `files`.
        parts = {name: (None, value) for name, value in fields.items()}
        url = f"{self.base_url}/v2beta/stable-image/generate/{endpoint}"
        headers = {"Authorization": f"Bearer {self.api_key or ''}", "Accept": "image/*"}
        try:
            response = await self.http.post(url, files=parts, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
        if response.status_code != 200:
            raise classify_error(*error_parts(response), provider=self.name, secret=self.api_key)
        return self._result(response, model)

    def _result(self, response: httpx.Response, model: str) -> ProviderResult:
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not media_type.startswith("image/") or not response.content:
            raise Transient(
                f"malformed response: expected image bytes, got {media_type or 'no content type'}"
                f" ({len(response.content)} bytes)",
                provider=self.name,
                status=200,
            )
        reason = response.headers.get("finish-reason", "SUCCESS").strip().upper()
        if reason == "CONTENT_FILTERED":
            raise RejectedInput(
                "finish-reason CONTENT_FILTERED: the image was blurred by content moderation",
                provider=self.name,
                status=200,
            )
        if reason != "SUCCESS":
            raise Transient(f"unexpected finish-reason {reason!r}", provider=self.name, status=200)
        return ProviderResult(
            output="",
            model=model,
            usage={"requests": 1, "images": 1, "credits": MODEL_CREDITS[model]},
            data=response.content,
            media_type=media_type,
        )


def _error_fields(raw: bytes) -> tuple[str, str]:
    """(name, message) from a v2beta `{"id","name","errors"}` body, a v1 `{"message"}` body, or
    the title of an HTML error page from a proxy in front of the API."""
    body = decode_json(raw)
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            message = "; ".join(str(e) for e in errors)
        else:
            message = str(body.get("message") or errors or "")
        return str(body.get("name") or ""), message
    return "", page_title_or_text(raw)


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map a Stability error answer to the taxonomy by status and the body's `name`."""
    now = time.time() if now is None else now
    name, message = _error_fields(raw)
    label = ": ".join(part for part in (f"HTTP {status}", name, message) if part)
    text = redact(label, secret)[:300]
    kwargs: dict[str, Any] = {"provider": provider, "status": status}
    if status == 402 or name == "payment_required" or _CREDIT_TEXT.search(message):
        return QuotaExhausted(text, **kwargs)  # credits never come back by themselves
    if status == 429:
        hint = retry_hint(headers, raw.decode("utf-8", "replace"), now=now)
        wait = hint if hint is not None else RATE_LIMIT_TIMEOUT_S
        return RateLimited(text, retry_after=wait, **kwargs)
    if status == 403 and name == "content_moderation":
        return RejectedInput(text, **kwargs)
    if status in (401, 403):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 425) or status >= 500:
        return Transient(text, **kwargs)
    if is_model_gone(status, {"code": name}, message):
        return ModelUnavailable(text, **kwargs)
    return RejectedInput(text, **kwargs)  # 400, 404, 413, 422: this request will not work


__all__ = [
    "ASPECT_RATIOS",
    "MODEL_CREDITS",
    "StabilityAdapter",
    "classify_error",
    "endpoint_for",
    "nearest_aspect_ratio",
]
