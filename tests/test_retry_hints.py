"""Every "wait this long" dialect seen in the wild must become the right number of seconds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.retry_hints import (
    hint_from_body,
    hint_from_headers,
    parse_go_duration,
    parse_retry_value,
    retry_hint,
)

# 2026-10-21T07:27:30Z: every absolute timestamp below is written relative to this instant.
NOW = 1_792_567_650.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2m59.56s", 179.56),
        ("7.66s", 7.66),
        ("6m0s", 360.0),
        ("370ms", 0.37),
        ("1h2m3s", 3723.0),
        ("36.429760048s", 36.429760048),
        ("1.5h", 5400.0),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("500ns", 500e-9),
        ("0", 0.0),
        ("-1s", -1.0),
        ("30", None),
        ("soon", None),
        ("", None),
        ("s", None),
        ("1d", None),
        ("1h 2m", None),
    ],
)
def test_parse_go_duration(text: str, expected: float | None) -> None:
    assert parse_go_duration(text) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("30", 30.0, id="seconds"),
        pytest.param("1.5", 1.5, id="decimal-seconds"),
        pytest.param(" 12 ", 12.0, id="together-seconds-padded"),
        pytest.param("Wed, 21 Oct 2026 07:28:00 GMT", 30.0, id="http-date"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, id="http-date-past"),
        pytest.param("2m59.56s", 179.56, id="go-2m59.56s"),
        pytest.param("6m0s", 360.0, id="go-6m0s"),
        pytest.param("370ms", 0.37, id="go-370ms"),
        pytest.param("1h2m3s", 3723.0, id="go-1h2m3s"),
        pytest.param("1792567680000", 30.0, id="epoch-ms"),
        pytest.param("1792567695", 45.0, id="epoch-seconds"),
        pytest.param("1000000000000", 0.0, id="epoch-ms-past"),
        pytest.param("2026-10-21T07:28:00Z", 30.0, id="rfc3339-z"),
        pytest.param("2026-10-21T09:28:00+02:00", 30.0, id="rfc3339-offset"),
        pytest.param("2026-10-21T07:28:00.250Z", 30.25, id="rfc3339-fraction"),
        pytest.param("2026-10-21T07:28:00.123456789Z", 30.123456, id="rfc3339-nanos"),
        pytest.param("2025-08-21T12:40:59Z", 0.0, id="rfc3339-past-clamps"),
        pytest.param("-5", 0.0, id="negative-clamps"),
        pytest.param("30, 30", 30.0, id="repeated-header"),
        pytest.param("soon", None, id="garbage-word"),
        pytest.param("", None, id="empty"),
        pytest.param("-", None, id="dash"),
        pytest.param("   ", None, id="blank"),
        pytest.param("1e999", None, id="infinite"),
        pytest.param("nan", None, id="nan"),
        pytest.param("2026-13-45T99:00:00Z", None, id="bad-date"),
    ],
)
def test_parse_retry_value(value: str, expected: float | None) -> None:
    result = parse_retry_value(value, now=NOW)
    assert result == (None if expected is None else pytest.approx(expected, abs=1e-6))


def test_parse_retry_value_accepts_json_numbers() -> None:
    assert parse_retry_value(5, now=NOW) == 5.0
    assert parse_retry_value(1_792_567_680_000, now=NOW) == pytest.approx(30.0)
    assert parse_retry_value(10**400, now=NOW) is None
    assert parse_retry_value(True, now=NOW) is None  # type: ignore[arg-type]
    assert parse_retry_value(None, now=NOW) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "30"}, 30.0, id="retry-after"),
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="retry-after-ms"),
        pytest.param({"RETRY-AFTER-MS": "1500"}, 1.5, id="case-insensitive"),
        pytest.param({"x-ratelimit-reset-requests": "2m59.56s"}, 179.56, id="openai-requests"),
        pytest.param({"x-ratelimit-reset": "12"}, 12.0, id="together-seconds"),
        pytest.param({"X-RateLimit-Reset": "1792567680000"}, 30.0, id="openrouter-epoch-ms"),
        pytest.param(
            {"anthropic-ratelimit-requests-reset": "2026-10-21T07:28:00Z"}, 30.0, id="anthropic"
        ),
        pytest.param({"RateLimit-Reset": "7"}, 7.0, id="ietf-ratelimit-reset"),
        pytest.param(
            {"retry-after-ms": "1500", "retry-after": "30", "x-ratelimit-reset": "60"},
            1.5,
            id="ms-beats-retry-after",
        ),
        pytest.param(
            {"retry-after": "30", "x-ratelimit-reset-requests": "1s"}, 30.0, id="retry-after-wins"
        ),
        pytest.param(
            {"retry-after-ms": "soon", "retry-after": "30"}, 30.0, id="bad-ms-falls-through"
        ),
        pytest.param(
            {
                "x-ratelimit-remaining-requests": "99",
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "7.66s",
            },
            7.66,
            id="remaining-zero-wins",
        ),
        pytest.param(
            {
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2026-10-21T07:28:10Z",
                "anthropic-ratelimit-tokens-remaining": "5000",
                "anthropic-ratelimit-tokens-reset": "2026-10-21T07:27:35Z",
            },
            40.0,
            id="anthropic-remaining-zero",
        ),
        pytest.param(
            {"x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "370ms"},
            0.37,
            id="none-at-zero-takes-smallest",
        ),
        pytest.param({"content-type": "application/json"}, None, id="unrelated"),
        pytest.param({}, None, id="empty"),
        pytest.param({"retry-after": "soon"}, None, id="garbage"),
    ],
)
def test_hint_from_headers(headers: dict[str, str], expected: float | None) -> None:
    result = hint_from_headers(headers, now=NOW)
    assert result == (None if expected is None else pytest.approx(expected))


def test_hint_from_headers_accepts_httpx_headers() -> None:
    httpx = pytest.importorskip("httpx")
    headers = httpx.Headers({"X-RateLimit-Remaining-Tokens": "0", "X-RateLimit-Reset-Tokens": "2s"})
    assert hint_from_headers(headers, now=NOW) == pytest.approx(2.0)


GOOGLE_ERROR = {
    "code": 429,
    "status": "RESOURCE_EXHAUSTED",
    "message": "Quota exceeded. Please retry in 36.429760048s.",
    "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"},
    ],
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"error": GOOGLE_ERROR}, 36.0, id="google-retryinfo"),
        pytest.param([{"error": GOOGLE_ERROR}], 36.0, id="google-array-wrapped"),
        pytest.param(json.dumps([{"error": GOOGLE_ERROR}]), 36.0, id="google-raw-json-text"),
        pytest.param(
            {"error": {"code": 429, "message": "Please retry in 36.429760048s."}},
            36.429760048,
            id="google-message-only",
        ),
        pytest.param(
            {"error": {"message": "Rate limit reached. Please try again in 9m38.016s."}},
            578.016,
            id="groq-message",
        ),
        pytest.param(
            {"error": {"message": "Limit 200000, Used 199000. Please try again in 1.2s."}},
            1.2,
            id="openai-message",
        ),
        pytest.param({"message": "try again in 20ms"}, 0.02, id="top-level-message-ms"),
        pytest.param(
            {"detail": "Request was throttled. Your rate limit resets in ~30s.", "retry_after": 5},
            5.0,
            id="replicate-retry-after",
        ),
        pytest.param(
            {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429},
            30.0,
            id="replicate-resets-in",
        ),
        pytest.param({"error": {"retryAfter": 12}}, 12.0, id="error-level-retryAfter"),
        pytest.param(
            {"error": {"message": "Rate limited. Please retry after 20 seconds."}},
            20.0,
            id="retry-after-n-seconds",
        ),
        pytest.param(
            {
                "error": {
                    "message": "Rate limit exceeded: free-models-per-day",
                    "code": 429,
                    "metadata": {
                        "headers": {
                            "X-RateLimit-Limit": "50",
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": "1792567680000",
                        }
                    },
                }
            },
            30.0,
            id="openrouter-metadata-headers",
        ),
        pytest.param("Too many requests, please try again in 2m0s.", 120.0, id="raw-text"),
        pytest.param({"error": "Please try again in 3s."}, 3.0, id="error-is-string"),
        pytest.param({"message": "Please retry in 1 minute."}, 60.0, id="spelled-minute"),
        pytest.param({"message": "try again in 300 milliseconds"}, 0.3, id="spelled-ms"),
        pytest.param({"message": "Please try again in 2 days."}, None, id="unknown-unit"),
        pytest.param({"retry_after": 10**400}, None, id="huge-int"),
        pytest.param({"retry_after": float("inf")}, None, id="infinite"),
        pytest.param({"retry_after": True}, None, id="bool-is-not-a-number"),
        pytest.param(
            {"error": {"metadata": {"headers": {"retry-after": 10**400}}}}, None, id="huge"
        ),
        pytest.param({"error": {"message": "Please try again later."}}, None, id="no-duration"),
        pytest.param(None, None, id="none"),
        pytest.param("", None, id="empty-text"),
        pytest.param([], None, id="empty-list"),
        pytest.param({}, None, id="empty-dict"),
        pytest.param({"data": [1, 2, 3], "object": "list"}, None, id="unrelated-json"),
        pytest.param("null", None, id="json-null"),
        pytest.param(42, None, id="number"),
    ],
)
def test_hint_from_body(body: object, expected: float | None) -> None:
    result = hint_from_body(body, now=NOW)
    assert result == (None if expected is None else pytest.approx(expected))


def test_retry_hint_prefers_headers_then_body() -> None:
    body = {"error": GOOGLE_ERROR}
    assert retry_hint({"Retry-After": "3"}, body, now=NOW) == 3.0
    assert retry_hint({"content-type": "application/json"}, body, now=NOW) == 36.0
    assert retry_hint({}, {"error": {}}, now=NOW) is None


JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["error", "details", "retryDelay", "retry_after", "retryAfter", "metadata", "headers"]
    + ["message", "detail", "@type", "X-RateLimit-Reset", "retry-after-ms"]
)
HINTY = st.recursive(
    st.none() | st.integers() | st.floats() | st.text() | st.sampled_from(["36s", "1e9", "0"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=15,
)


@given(st.text())
def test_parse_retry_value_never_raises(text: str) -> None:
    result = parse_retry_value(text, now=NOW)
    assert result is None or result >= 0.0


@given(st.one_of(JSON_LIKE, HINTY, st.text()))
def test_hint_from_body_never_raises(body: object) -> None:
    result = hint_from_body(body, now=NOW)
    assert result is None or result >= 0.0
    from_text = hint_from_body(json.dumps(body), now=NOW)  # the same body as raw response text
    assert from_text is None or from_text >= 0.0


@given(st.dictionaries(st.text(), st.text(), max_size=5))
def test_hint_from_headers_never_raises(headers: dict[str, str]) -> None:
    result = hint_from_headers(headers, now=NOW)
    assert result is None or result >= 0.0
