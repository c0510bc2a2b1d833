"""Replicate's predictions API through the `replicate` SDK (1.x): images and image questions.

The job flow, as Replicate documents it: create a prediction for an official model
(`POST /v1/models/{owner}/{name}/predictions`, `{"input": ...}`) or for a version of any model
(`POST /v1/predictions`, `{"version", "input"}`) with `Prefer: wait=N`, which holds the request
until the model finishes or N seconds pass; poll `GET /v1/predictions/{id}` until `succeeded`,
`failed`, `canceled` or `aborted`; then download the output files at once, because files of
API-created predictions are deleted after an hour.

Three things about the SDK shape this module (replicate-python 1.0.x, `client.py`):

* `Client(**kwargs)` builds its own httpx client and wraps every transport in `RetryTransport`
  (10 attempts, backoff up to 60 s, on 429/503/504 for GET). No argument turns that off, so the
  built transport gets `max_attempts = 1`: the dispatcher's loop is the only retry loop.
* `ReplicateError` keeps only status, title and detail: the headers and the body's `retry_after`
  are gone. A response event hook (an httpx feature the SDK passes through) classifies every
  error answer from its full status, headers and body before the SDK sees it.
* Its pydantic `Prediction` model rejects statuses it does not know (`aborted`) and answers that
  lack `model`/`version`. The same hook keeps the raw JSON of the last answer, and this module
  reads predictions from that, not from the typed object.

The SDK gets our shared client's transport (it takes a transport, not a client), so its requests
use the same connection pool and are closed with it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
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
from scheduler.providers.base import Adapter, reported_count
from scheduler.providers.http_errors import (
    decode_json,
    error_parts,
    is_model_gone,
    page_title_or_text,
    transport_error,
)
from scheduler.providers.http_guard import failure_name, guard_hooks_of
from scheduler.providers.stability import nearest_aspect_ratio
from scheduler.retry_hints import retry_hint
from scheduler.tasks import (
    ImageTask,
    MultimodalTask,
    ProviderResult,
    TaskKind,
    estimate_tokens,
    text_usage,
)

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
# aspect_ratio values of black-forest-labs/flux-schnell (its input schema); other FLUX models
# accept the same set.
ASPECT_RATIOS: tuple[str, ...] = (
    "1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21",
)  # fmt: skip
_MAX_WAIT_S = 60  # `Prefer: wait=N` takes 1..60 (Replicate, "Create a prediction")
_MODEL = re.compile(r"^([\w.-]+)/([\w.-]+)(?::([0-9a-fA-F]{8,}))?$")
# A failed prediction's `error` is free text; Replicate's own status cannot tell bad input from
# a broken model (replicate/cog#1180). These phrases name the input: content filters, the input
# URL fetcher, and E1001 out-of-memory, which Replicate's error-code docs attribute to input too
# large for the model. Anything else (E1000 unknown, E6716 timeout starting, crashes) is the
# platform's or the model's trouble.
_INPUT_FAILURE = re.compile(
    r"nsfw|flagged as sensitive|sensitive content|content polic|content filter|safety (?:checker|"
    r"filter|system)|moderation|input validation|failed validation|invalid input|\bE005\b|"
    r"\bE1001\b|out of memory|image (?:is )?too large|could not (?:decode|open|identify) image",
    re.IGNORECASE,
)

# The body of the last SDK answer in this task, saved by the response hook (hooks run inline in
# the awaiting task, so concurrent calls each see their own).
_LAST_BODY: ContextVar[bytes] = ContextVar("replicate_last_body", default=b"")


def parse_model(model: str) -> tuple[str, str, str | None]:
    """(owner, name, version or None) from "owner/name" or "owner/name:version"."""
    match = _MODEL.match(model.strip())
    if match is None:
        raise ValueError(f"Replicate model must be owner/name or owner/name:version, got {model!r}")
    return match.group(1), match.group(2), match.group(3)


class ReplicateAdapter(Adapter):
    """Predictions on Replicate: text to image, and a question about an image."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"image", "multimodal"})
    default_base_url: ClassVar[str | None] = "https://api.replicate.com"
    poll_interval_s: ClassVar[float] = 1.0

    _client: Any = None

    def _sdk(self) -> Any:
        if self._client is None:
            from replicate.client import Client, RetryTransport

            guard = guard_hooks_of(self.http)
            client = Client(
                api_token=self.api_key,
                base_url=self.base_url,
                timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
                transport=self.http._transport,
                # The shared client's guards first (keys stay with their origin, bodies capped),
                # then ours: this SDK builds its own client around our transport.
                event_hooks={
                    "request": guard["request"],
                    "response": [*guard["response"], self._inspect],
                },
            )
            retry = client._async_client._transport  # built on first access
            if isinstance(retry, RetryTransport):
                retry.max_attempts = 1  # no retries inside the SDK: ours is the only loop
            self._client = client
        return self._client

    async def _inspect(self, response: httpx.Response) -> None:
        """Response hook: keep the body, and classify an error answer from all of it."""
        await response.aread()
        _LAST_BODY.set(response.content)
        if response.status_code >= 400:
            raise classify_error(*error_parts(response), provider=self.name, secret=self.api_key)

    # -- task kinds -------------------------------------------------------------------------

    async def image(self, task: ImageTask, *, model: str) -> ProviderResult:
        try:
            ratio = nearest_aspect_ratio(task.size, ASPECT_RATIOS) if task.size else None
        except ValueError as exc:
            raise RejectedInput(str(exc), provider=self.name) from None
        payload: dict[str, Any] = {"prompt": task.prompt}
        if ratio is not None:
            payload["aspect_ratio"] = ratio
        prediction = await self._run(model, payload)
        output = prediction.get("output")
        url = output[0] if isinstance(output, list) and output else output
        if not isinstance(url, str) or not url:
            raise self._malformed("no output file URL in a succeeded prediction")
        data, media_type = await self._download(url)
        return ProviderResult(
            output="",
            model=model,
            usage={"requests": 1, "images": 1},
            data=data,
            media_type=media_type,
        )

    async def multimodal(self, task: MultimodalTask, *, model: str) -> ProviderResult:
        if task.is_audio:
            # Replicate's chat models with media input (openai/gpt-4o-mini, anthropic/claude-*)
            # document image inputs only; audio models there are transcribers, a different task.
            raise RejectedInput(
                "replicate: no documented audio input for chat models; send an image",
                provider=self.name,
            )
        try:
            media = task.media.read_bytes()
        except OSError as exc:
            raise RejectedInput(
                f"cannot read {task.media}: {exc.strerror}", provider=self.name
            ) from None
        data_url = f"data:{task.mime_type};base64,{base64.b64encode(media).decode('ascii')}"
        payload = {"prompt": task.prompt, **_image_input(model, data_url, task.max_tokens)}
        prediction = await self._run(model, payload)
        output = prediction.get("output")
        if isinstance(output, list):  # language models stream tokens: a list of chunks
            text = "".join(chunk for chunk in output if isinstance(chunk, str))
        elif isinstance(output, str):
            text = output
        else:
            raise self._malformed("no text output in a succeeded prediction")
        metrics = prediction.get("metrics")
        metrics = metrics if isinstance(metrics, dict) else {}
        estimate = task.estimate()
        return ProviderResult(
            output=text,
            model=model,
            usage=text_usage(
                _count(metrics.get("input_token_count"), estimate["input_tokens"]),
                _count(metrics.get("output_token_count"), estimate_tokens(text)),
            ),
        )

    # -- the prediction job -----------------------------------------------------------------

    async def _run(self, model: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Create, poll to a terminal status within `timeout_s`, return the succeeded one."""
        try:
            owner, name, version = parse_model(model)
        except ValueError as exc:
            raise RejectedInput(str(exc), provider=self.name) from None
        if not self.api_key:  # the SDK would fall back to $REPLICATE_API_TOKEN: never that
            raise AuthFailed("no Replicate API token", provider=self.name)
        sdk = self._sdk()
        wait = max(1, min(_MAX_WAIT_S, int(self.timeout_s)))
        prediction: dict[str, Any] = {}
        try:
            async with asyncio.timeout(self.timeout_s):
                if version is None:
                    create = sdk.models.predictions.async_create(
                        model=f"{owner}/{name}", input=payload, wait=wait
                    )
                else:
                    create = sdk.predictions.async_create(version=version, input=payload, wait=wait)
                prediction = await self._call(create)
                while prediction["status"] not in TERMINAL:
                    await asyncio.sleep(self.poll_interval_s)
                    prediction = await self._call(sdk.predictions.async_get(prediction["id"]))
        except TimeoutError:
            where = f" (prediction {prediction['id']} {prediction['status']})" if prediction else ""
            raise Transient(
                f"timed out after {self.timeout_s:g} s{where}", provider=self.name
            ) from None
        if prediction["status"] != "succeeded":
            raise self._job_failure(prediction)
        return prediction

    async def _call(self, request: Awaitable[Any]) -> dict[str, Any]:
        """Await one SDK request; return the prediction JSON it received, checked."""
        from replicate.exceptions import ReplicateError

        _LAST_BODY.set(b"")
        try:
            await request
        except ProviderError:
            raise  # classified by the response hook
        except ReplicateError as exc:  # only if the hook did not see the answer
            raise _from_sdk_error(exc, self.name, self.api_key) from None
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
        except (ValueError, TypeError):
            pass  # the SDK's model rejected the answer ("aborted", not an object): read it raw
        try:
            prediction = json.loads(_LAST_BODY.get())
        except (ValueError, UnicodeDecodeError):
            raise self._malformed("not JSON") from None
        if (
            not isinstance(prediction, dict)
            or not isinstance(prediction.get("id"), str)
            or not isinstance(prediction.get("status"), str)
        ):
            raise self._malformed("no prediction id and status")
        return prediction

    def _job_failure(self, prediction: dict[str, Any]) -> ProviderError:
        """A prediction that ended without output: the input's fault or the platform's."""
        status = prediction["status"]
        error = prediction.get("error")
        detail = str(error) if error else "no error message"
        text = redact(f"prediction {prediction['id']} {status}: {detail}", self.api_key)[:300]
        if status == "failed" and _INPUT_FAILURE.search(detail):
            return RejectedInput(text, provider=self.name)
        return Transient(text, provider=self.name)  # crashed, canceled or aborted server-side

    async def _download(self, url: str) -> tuple[bytes, str]:
        """Fetch an output file now (Replicate deletes them after an hour) with our client."""
        if url.startswith("data:"):
            header, _, encoded = url.partition(",")
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise self._malformed("undecodable data URL output") from None
            return data, header[5:].split(";", 1)[0] or "application/octet-stream"
        if not url.startswith(("http://", "https://")):
            raise self._malformed(f"output is not a file URL: {url[:80]!r}")
        try:
            response = await self.http.get(url)
        except httpx.TimeoutException:
            raise Transient(
                f"timed out after {self.timeout_s:g} s downloading the output", provider=self.name
            ) from None
        except httpx.HTTPError as exc:
            raise Transient(
                f"output download failed: {failure_name(exc)}", provider=self.name
            ) from None
        if response.status_code != 200 or not response.content:
            raise Transient(
                f"output download failed: HTTP {response.status_code}",
                provider=self.name,
                status=response.status_code,
            )
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not media_type.startswith("image/"):
            guessed = mimetypes.guess_type(httpx.URL(url).path)[0]
            media_type = guessed or media_type or "application/octet-stream"
        return response.content, media_type

    def _malformed(self, what: str) -> Transient:
        return Transient(f"malformed response: {what}", provider=self.name, status=200)


def _image_input(model: str, data_url: str, max_tokens: int | None) -> dict[str, Any]:
    """The image and length inputs under the names the model's schema uses.

    OpenAI's models on Replicate take `image_input` (a list of URIs) and `max_completion_tokens`
    (openai/gpt-4o-mini input schema); the other chat-with-image models there (LLaVA,
    anthropic/claude-*) take one `image` and `max_tokens`.
    """
    if model.startswith("openai/"):
        fields: dict[str, Any] = {"image_input": [data_url]}
        if max_tokens:
            fields["max_completion_tokens"] = max_tokens
        return fields
    fields = {"image": data_url}
    if max_tokens:
        fields["max_tokens"] = max_tokens
    return fields


def _count(value: object, fallback: float) -> int:
    """A token count from `metrics`, or the estimate when it is missing or not a number."""
    count = reported_count(value)
    return count if count is not None else int(fallback)


def _problem(raw: bytes) -> tuple[str, str, object]:
    """(title, detail, body for the retry hint) of an RFC 7807 problem (its decoded JSON), or of
    another body (an HTML page's title or the text, and the raw bytes)."""
    body = decode_json(raw)
    if isinstance(body, dict):
        return str(body.get("title") or ""), str(body.get("detail") or ""), body
    return "", page_title_or_text(raw), raw


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map a Replicate error answer (`{"title", "detail", "status"}`) to the taxonomy."""
    now = time.time() if now is None else now
    title, detail, body = _problem(raw)
    label = ": ".join(part for part in (f"HTTP {status}", title, detail) if part)
    text = redact(label, secret)[:300]
    kwargs: dict[str, Any] = {"provider": provider, "status": status}
    if status == 402 or "insufficient credit" in f"{title} {detail}".lower():
        return QuotaExhausted(text, **kwargs)  # prepaid credit: back only when someone pays
    if status == 429:
        # `retry_after` (low-balance accounts) beats "resets in ~30s" in the detail.
        return RateLimited(text, retry_after=retry_hint(headers, body, now=now), **kwargs)
    if status in (401, 403):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 425) or status >= 500:
        return Transient(text, **kwargs)
    if is_model_gone(status, body, f"{title} {detail}"):
        return ModelUnavailable(text, **kwargs)  # no such model (or version) any more
    return RejectedInput(text, **kwargs)  # 400, 413, 422


def _from_sdk_error(exc: Any, provider: str, secret: str | None) -> ProviderError:
    """A `ReplicateError` the hook did not see, classified from what the SDK kept."""
    status = exc.status if isinstance(exc.status, int) else 500
    body = {"title": exc.title, "detail": exc.detail, "status": status}
    return classify_error(status, {}, json.dumps(body).encode(), provider=provider, secret=secret)


__all__ = ["ASPECT_RATIOS", "TERMINAL", "ReplicateAdapter", "classify_error", "parse_model"]
