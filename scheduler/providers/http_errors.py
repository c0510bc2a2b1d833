"""What every HTTP adapter does with a failed answer before it decides what the failure means.

Each adapter's `classify_error` keeps only its provider's decisions (which status, error type or
message text is which taxonomy class). The reading that comes first is the same everywhere and
lives here: decode the body as JSON (or keep None), find the provider's own words in it (the
adapter's `message_of`), else fall back to an HTML page's `<title>` or the start of the text,
take the retry hint from the headers or the body, and build the one-line, redacted message.

Also shared: whether an answer says the model itself is gone (`is_model_gone`, one table for
every adapter), the Transient that a transport failure (timeout, refused connection) becomes, and
reading a successful answer that must be a JSON object.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from scheduler.errors import Transient, redact
from scheduler.providers.http_guard import refused_text
from scheduler.retry_hints import retry_hint

# A proxy or gateway in front of an API answers an HTML page; its title is the readable part.
_HTML_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
MAX_FALLBACK_CHARS = 200  # of a body that is neither the provider's JSON nor a titled page
MAX_TEXT_CHARS = 300  # of the error message an adapter raises

# Error codes / types providers give a model they do not serve (OpenAI, Groq, Mistral, Together,
# OpenRouter, DeepInfra: `error.code`; Groq adds `model_decommissioned`; Google: NOT_FOUND).
_MODEL_GONE_CODES = frozenset(
    {
        "model_not_found",
        "model_decommissioned",
        "model_deprecated",
        "model_not_available",
        "model_retired",
        "unknown_model",
        "invalid_model",
    }
)
# Sunset wording (Groq "has been decommissioned and is no longer supported", Anthropic "model:
# X" with not_found_error, Gemini "models/X is not found for API version v1beta", OpenAI "The
# model `X` does not exist"). Text alone counts only when it is about a model, so a retired
# *parameter* ("max_tokens is no longer supported") stays a rejected input.
_SUNSET_TEXT = re.compile(
    r"(?:has been|was|is being|is) (?:decommissioned|retired|sunset|shut down|discontinued|"
    r"removed|deprecated and (?:removed|shut down))|is no longer (?:supported|available|served)"
    r"|reached (?:its )?end of life|\bnot found\b|does not exist|unknown model|no such model",
    re.IGNORECASE,
)
_MODEL_WORD = re.compile(r"\bmodels?\b", re.IGNORECASE)


def _codes(body: object) -> set[str]:
    """Every error `code`, `type` and `status` string in a decoded body, at the top level and in
    its `error` object (the shapes the providers use)."""
    found: set[str] = set()
    if isinstance(body, list) and body:
        body = body[0]
    for part in (body, body.get("error") if isinstance(body, Mapping) else None):
        if isinstance(part, Mapping):
            for key in ("code", "type", "status", "error_code", "reason"):
                value = part.get(key)
                if isinstance(value, str):
                    found.add(value.lower())
    return found


def is_model_gone(status: int, body: object, message: str) -> bool:
    """Whether a failed answer says the model asked for is retired or unknown there.

    410 Gone always; a 404 or 400 with a model-gone code (`model_not_found`,
    `model_decommissioned`, ...), or whose message says a *model* was decommissioned, is no
    longer supported, or is not found. A 404 that names no model (a wrong base URL) is not.
    """
    if status == 410:
        return True
    if status not in (400, 404, 422):
        return False
    if _codes(body) & _MODEL_GONE_CODES:
        return True
    if not _MODEL_WORD.search(message):
        return False
    if status == 404:
        return True  # "model: X", "The model `X` does not exist", "models/X is not found"
    return bool(_SUNSET_TEXT.search(message))


@dataclass(frozen=True)
class ErrorAnswer:
    """One failed HTTP answer, read: what `classify_error` decides on."""

    status: int
    body: object  # the decoded JSON, or None when the body is empty or not JSON
    message: str  # the provider's own words (or the page title / start of the text)
    text: str  # "HTTP 429: <message>", redacted, at most MAX_TEXT_CHARS characters
    retry_after: float | None  # the hint from the headers, else from the body

    @property
    def model_gone(self) -> bool:
        """The answer says the model is retired or unknown (see `is_model_gone`)."""
        return is_model_gone(self.status, self.body, self.message)

    def fields(self, provider: str, *, with_hint: bool = True) -> dict[str, Any]:
        """Keyword arguments for `ProviderError(text, **fields)`; `with_hint=False` leaves the
        retry hint out, for adapters that attach it only to some classes."""
        fields: dict[str, Any] = {"provider": provider, "status": self.status}
        if with_hint:
            fields["retry_after"] = self.retry_after
        return fields


def decode_json(raw: bytes) -> object:
    """The JSON value of a body; None when it is empty or not JSON."""
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


def page_title_or_text(raw: bytes | str) -> str:
    """The message of a body that is not the provider's JSON: an HTML page's `<title>`, else the
    first MAX_FALLBACK_CHARS characters of the (stripped) text."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    title = _HTML_TITLE.search(text)
    return title.group(1).strip() if title else text.strip()[:MAX_FALLBACK_CHARS]


def error_text(status: int, message: str, secret: str | None) -> str:
    """`HTTP 429: message`, without a dangling colon when there is no message, with the key and
    anything key-shaped removed, cut to MAX_TEXT_CHARS characters."""
    return redact(f"HTTP {status}: {message}".strip().rstrip(":"), secret)[:MAX_TEXT_CHARS]


def read_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    secret: str | None,
    now: float | None,
    message_of: Callable[[object], str | None],
) -> ErrorAnswer:
    """Read one failed answer. `message_of(body)` finds the provider's message in the decoded
    body (None when the body is not in the provider's shape: the page title or text is used)."""
    now = time.time() if now is None else now
    body = decode_json(raw)
    message = message_of(body)
    if message is None:
        message = page_title_or_text(raw)
    return ErrorAnswer(
        status=status,
        body=body,
        message=message,
        text=error_text(status, message, secret),
        retry_after=retry_hint(headers, raw if body is None else body, now=now),
    )


def error_parts(response: httpx.Response) -> tuple[int, httpx.Headers, bytes]:
    """(status, headers, body) of an answer: the first three arguments of a `classify_error`."""
    return response.status_code, response.headers, response.content


def transport_error(
    exc: httpx.HTTPError, *, provider: str, timeout_s: float, where: str = ""
) -> Transient:
    """The Transient a request that got no answer becomes: "timed out after 30 s" (plus
    `where`, e.g. " on GET /v2/jobs/1") or "connection to api.groq.com failed: ConnectError"
    (the host only: never a user part or query of the URL); an answer the HTTP layer refused
    (over the size cap) says so, with the cap."""
    if refused := refused_text(exc):
        return Transient(f"{refused}{where}", provider=provider)
    if isinstance(exc, httpx.TimeoutException):
        return Transient(f"timed out after {timeout_s:g} s{where}", provider=provider)
    host = _host_of(exc)
    to = f" to {host}" if host else ""
    return Transient(f"connection{to} failed: {type(exc).__name__}", provider=provider)


def _host_of(exc: httpx.HTTPError) -> str | None:
    """`host[:port]` of the request that failed, if the exception knows it."""
    try:
        url = exc.request.url
    except RuntimeError:  # raised outside a request (no .request set)
        return None
    return f"{url.host}:{url.port}" if url.port else url.host or None


def not_json(response: httpx.Response, *, provider: str) -> Transient:
    """A successful answer whose body is not JSON: "malformed response: not JSON (text/html)"."""
    content_type = response.headers.get("content-type") or "no content type"
    return Transient(
        f"malformed response: not JSON ({content_type})",
        provider=provider,
        status=response.status_code,
    )


def json_object(response: httpx.Response, *, provider: str) -> dict[str, Any]:
    """A successful answer's JSON object; a body that is not JSON, or JSON that is not an object,
    is a malformed response (Transient)."""
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise not_json(response, provider=provider) from None
    if not isinstance(data, dict):
        raise Transient("malformed response: not a JSON object", provider=provider, status=200)
    return data


__all__ = [
    "MAX_FALLBACK_CHARS",
    "MAX_TEXT_CHARS",
    "ErrorAnswer",
    "decode_json",
    "error_parts",
    "error_text",
    "is_model_gone",
    "json_object",
    "not_json",
    "page_title_or_text",
    "read_error",
    "transport_error",
]
