"""Turn a provider's "wait this long" hint into seconds, whatever format it arrives in.

Rate-limited APIs say when to come back in a dozen dialects (delta seconds, HTTP-dates,
epoch milliseconds, Go durations, RFC 3339 stamps, Google RetryInfo, free text). A scheduler
that ignores them either hammers a provider that asked for quiet or parks one that is ready
again, so every parser here is total: garbage gives ``None``, never an exception, and every
answer is a non-negative number of seconds measured from the caller's ``now``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# One Go duration component; "ms" is tried before "m"/"s" so "370ms" is not read as 370 minutes.
_GO_UNITS = r"(?:ns|us|µs|μs|ms|h|m|s)"
_GO_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"  # unambiguous: no quadratic backtracking
_GO_FULL = re.compile(rf"([+-]?)((?:{_GO_NUM}{_GO_UNITS})+)")
_GO_PART = re.compile(rf"({_GO_NUM})({_GO_UNITS})")
_SCALE = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_NUMBER = re.compile(rf"[+-]?{_GO_NUM}(?:[eE][+-]?\d+)?")
_TRAILING_Z = re.compile(r"[zZ]$")
# Free-text hints: "try again in 9m38.016s", "retry in 36.4s", "resets in ~30s",
# "retry after 20 seconds". Neither form may run into an unknown unit ("2 days" is no hint).
_TEXT_HINT = re.compile(
    rf"(?:try\s+again|retry|resets?)\s+(?:in|after)\s*(?:~\s*)?"
    rf"(?:(?P<go>(?:\d+(?:\.\d+)?{_GO_UNITS})+)(?![a-z])|(?P<num>\d+(?:\.\d+)?)\s*+"
    rf"(?:(?P<word>milli(?:second)?s?|msecs?|seconds?|secs?|minutes?|mins?|hours?|hrs?)\b"
    rf"|(?![a-z])))",
    re.IGNORECASE,
)
# Reset headers and the name of the "remaining" header that says whether that limit is spent.
_RESET_HEADER = re.compile(
    r"x-ratelimit-reset(?:-[a-z0-9-]+)?|anthropic-ratelimit-[a-z0-9-]+-reset|ratelimit-reset"
)
_MAX_VALUE = 256  # longer than any real header value; keeps hostile input cheap
_DATE_ERRORS = (TypeError, ValueError, OverflowError, IndexError, OSError)


def _clamp(seconds: float | None) -> float | None:
    """Never hand back a negative or non-finite wait: a past reset means "go now"."""
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else None


def _from_number(number: float, now: float) -> float | None:
    """Classify a bare number by magnitude, since providers never label the unit."""
    if number >= 1e11:  # epoch milliseconds (OpenRouter)
        return _clamp(number / 1000.0 - now)
    if number >= 1e9:  # epoch seconds
        return _clamp(number - now)
    return _clamp(number)  # delta seconds


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go/protobuf duration ("2m59.56s", "370ms", "36s"); None for anything else.

    OpenAI and Groq reset headers and Google's RetryInfo all use this shape, so it needs its own
    strict parser rather than a lenient number grab that would misread "6m0s" as 6.
    """
    if not isinstance(text, str) or len(text) > _MAX_VALUE:
        return None
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    match = _GO_FULL.fullmatch(text)
    if match is None:
        return None
    total = sum(float(n) * _SCALE[u] for n, u in _GO_PART.findall(match.group(2)))
    total = -total if match.group(1) == "-" else total
    return total if math.isfinite(total) else None


def _parse_datetime(value: str, now: float) -> float | None:
    """RFC 3339 first (Anthropic), then HTTP-date (Retry-After); naive stamps are read as UTC."""
    try:
        moment = datetime.fromisoformat(_TRAILING_Z.sub("+00:00", value))
    except _DATE_ERRORS:
        try:
            moment = parsedate_to_datetime(value)
        except _DATE_ERRORS:
            return None
    try:
        return _clamp(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() - now)
    except _DATE_ERRORS:
        return None


def parse_retry_value(value: str | float, *, now: float) -> float | None:
    """One header value in any known format -> seconds to wait from ``now`` (>= 0), or None.

    Bare numbers are classified by size (delta seconds / epoch seconds / epoch ms) because the
    same header name (x-ratelimit-reset) carries each of them depending on the provider.
    JSON numbers (a body's ``retry_after``) are accepted too and classified the same way.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _from_number(float(value), now)
        except OverflowError:  # a JSON integer beyond float range
            return None
    if not isinstance(value, str) or len(value) > _MAX_VALUE:
        return None
    value = value.strip()
    if not value:
        return None
    if _NUMBER.fullmatch(value):
        return _from_number(float(value), now)
    if (go := _clamp(parse_go_duration(value))) is not None:
        return go
    if any(c.isdigit() for c in value) and (parsed := _parse_datetime(value, now)) is not None:
        return parsed
    head = value.split(",", 1)[0].strip()  # a repeated header joined by httpx: "30, 30"
    if head != value and (_NUMBER.fullmatch(head) or parse_go_duration(head) is not None):
        return parse_retry_value(head, now=now)
    return None


def _is_zero(value: str | None) -> bool:
    """A limit is spent when its remaining counter reads 0 (in any numeric spelling)."""
    value = (value or "").strip()
    return bool(_NUMBER.fullmatch(value)) and float(value) == 0.0


def hint_from_headers(headers: Mapping[str, str], *, now: float) -> float | None:
    """Wait from response headers: retry-after-ms, then retry-after, then rate-limit resets.

    Among reset headers the one whose limit is exhausted (remaining == 0) is what actually
    blocks us; if several are exhausted we must wait for the last of them, and if none is we
    take the soonest reset as the most optimistic honest guess.
    """
    try:  # JSON-echoed headers (OpenRouter) may hold numbers; anything else is not a hint
        lower = {
            k.strip().lower(): str(v)
            for k, v in headers.items()
            if isinstance(k, str) and isinstance(v, str | int | float)
        }
    except (AttributeError, TypeError, ValueError):
        return None
    ms = lower.get("retry-after-ms", "").strip()
    if _NUMBER.fullmatch(ms) and (wait := _clamp(float(ms) / 1000.0)) is not None:
        return wait
    if (wait := parse_retry_value(lower.get("retry-after", ""), now=now)) is not None:
        return wait
    spent: list[float] = []
    other: list[float] = []
    for name, value in lower.items():
        wait = parse_retry_value(value, now=now) if _RESET_HEADER.fullmatch(name) else None
        if wait is not None:  # x-ratelimit-reset-tokens pairs with x-ratelimit-remaining-tokens
            remaining = lower.get(name.replace("-reset", "-remaining", 1))
            (spent if _is_zero(remaining) else other).append(wait)
    if spent:
        return max(spent)
    return min(other) if other else None


def _word_scale(word: str | None) -> float:
    """Seconds per spelled-out unit; a bare number in prose means seconds."""
    word = (word or "s").lower()
    if word.startswith(("ms", "milli")):
        return 1e-3
    if word.startswith("mi"):
        return 60.0
    return 3600.0 if word.startswith("h") else 1.0


def _text_hint(text: str) -> float | None:
    """First "try again in X" style phrase in a human-readable error message."""
    for match in _TEXT_HINT.finditer(text):
        if match.group("go"):
            wait = parse_go_duration(match.group("go").lower())
        else:
            wait = float(match.group("num")) * _word_scale(match.group("word"))
        if (clamped := _clamp(wait)) is not None:
            return clamped
    return None


def _dict_hint(body: Mapping[str, object], now: float) -> float | None:
    """Structured hints beat prose: RetryInfo, retry_after, OpenRouter's echoed headers, text."""
    error = body.get("error")
    err: Mapping[str, object] = error if isinstance(error, Mapping) else {}
    for details in (err.get("details"), body.get("details")):
        for item in details if isinstance(details, list) else ():
            # retryDelay only exists on google.rpc.RetryInfo; it is a protobuf Duration ("36s").
            if isinstance(item, Mapping) and isinstance(delay := item.get("retryDelay"), str):
                if (wait := _clamp(parse_go_duration(delay))) is not None:
                    return wait
    for scope in (body, err):
        for key in ("retry_after", "retryAfter"):
            raw = scope.get(key)
            wait = parse_retry_value(raw, now=now) if isinstance(raw, str | int | float) else None
            if wait is not None:
                return wait
    metadata = err.get("metadata")
    headers = metadata.get("headers") if isinstance(metadata, Mapping) else None
    if isinstance(headers, Mapping) and (wait := hint_from_headers(headers, now=now)) is not None:
        return wait
    for text in (err.get("message"), body.get("message"), body.get("detail"), error):
        if isinstance(text, str) and (wait := _text_hint(text)) is not None:
            return wait
    return None


def hint_from_body(body: object, *, now: float) -> float | None:
    """Wait from an error body (decoded JSON, or raw text that may itself be JSON)."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            return _text_hint(body)
        if not isinstance(decoded, dict | list):
            return _text_hint(body)
        body = decoded
    if isinstance(body, Mapping):
        return _dict_hint(body, now)
    if isinstance(body, list):  # Google sometimes wraps the error object in an array
        for item in body:
            if isinstance(item, Mapping) and (wait := _dict_hint(item, now)) is not None:
                return wait
    return None


def retry_hint(headers: Mapping[str, str] | None, body: object, *, now: float) -> float | None:
    """Best wait for one failed response: headers are authoritative, the body is a fallback."""
    wait = hint_from_headers(headers, now=now) if headers is not None else None
    return wait if wait is not None else hint_from_body(body, now=now)


__all__ = [
    "hint_from_body",
    "hint_from_headers",
    "parse_go_duration",
    "parse_retry_value",
    "retry_hint",
]
