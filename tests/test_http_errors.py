"""The reading every HTTP adapter does before it classifies a failure, pinned to exact values."""

from __future__ import annotations

import json

import httpx
import pytest

from scheduler.errors import Transient
from scheduler.providers.http_errors import (
    ErrorAnswer,
    decode_json,
    error_parts,
    error_text,
    json_object,
    not_json,
    page_title_or_text,
    read_error,
    transport_error,
)

NOW = 1_792_567_650.0
SECRET = "sk-test-0123456789abcdef"


def _detail(body: object) -> str | None:
    """A provider's `message_of`: `detail` of an object body, None for any other body."""
    return str(body.get("detail", "")) if isinstance(body, dict) else None


# -- decode_json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"detail": "x", "n": [1, 2]}', {"detail": "x", "n": [1, 2]}),
        (b"[1, 2]", [1, 2]),
        (b'"text"', "text"),
        (b"0", 0),
        (b"", None),
        (b"null", None),
        (b"<html>Bad Gateway</html>", None),
        (b'{"cut": ', None),
        (b"\xff\xfe\xfa", None),
    ],
)
def test_decode_json(raw: bytes, expected: object) -> None:
    assert decode_json(raw) == expected


# -- page_title_or_text ----------------------------------------------------------------------


def test_an_html_page_is_its_title_stripped() -> None:
    page = b"<HTML><head><TITLE>\n  502 Bad Gateway \n</TITLE></head><body>nginx</body></HTML>"
    assert page_title_or_text(page) == "502 Bad Gateway"


def test_the_first_title_wins_and_text_may_be_str() -> None:
    assert page_title_or_text("<title>one</title><title>two</title>") == "one"


def test_text_without_a_title_is_stripped_then_cut_to_200_characters() -> None:
    assert page_title_or_text(b"  upstream connect error  \n") == "upstream connect error"
    long = " " + "a" * 150 + " " + "b" * 100
    assert page_title_or_text(long) == "a" * 150 + " " + "b" * 49


def test_undecodable_bytes_are_replaced_not_raised() -> None:
    assert page_title_or_text(b"bad \xff byte") == "bad \ufffd byte"


# -- error_text ----------------------------------------------------------------------------


def test_error_text_joins_status_and_message() -> None:
    assert error_text(429, "slow down", None) == "HTTP 429: slow down"


@pytest.mark.parametrize("message", ["", "   ", "\n"])
def test_error_text_without_a_message_has_no_dangling_colon(message: str) -> None:
    assert error_text(502, message, None) == "HTTP 502"


def test_error_text_drops_a_trailing_colon_of_the_message() -> None:
    assert error_text(400, "bad field: ", None) == "HTTP 400: bad field"


def test_error_text_removes_the_secret_and_key_shaped_tokens() -> None:
    text = error_text(401, f"bad key {SECRET} or hf_abcdefghijklmnop", SECRET)
    assert text == "HTTP 401: bad key *** or ***"


def test_error_text_is_cut_to_300_characters() -> None:
    text = error_text(400, "word " * 100, None)
    assert len(text) == 300
    assert text.startswith("HTTP 400: word word")


# -- read_error ----------------------------------------------------------------------------


def test_read_error_takes_the_message_the_adapter_finds() -> None:
    raw = json.dumps({"detail": f"quota exceeded for {SECRET}"}).encode()
    answer = read_error(429, {"retry-after": "7"}, raw, secret=SECRET, now=NOW, message_of=_detail)
    assert answer == ErrorAnswer(
        status=429,
        body={"detail": f"quota exceeded for {SECRET}"},
        message=f"quota exceeded for {SECRET}",
        text="HTTP 429: quota exceeded for ***",
        retry_after=7.0,
    )


def test_read_error_falls_back_to_the_page_title_when_the_adapter_finds_nothing() -> None:
    raw = b"<html><title>503 Service Unavailable</title></html>"
    answer = read_error(503, {}, raw, secret=None, now=NOW, message_of=_detail)
    assert answer.body is None
    assert answer.message == "503 Service Unavailable"
    assert answer.text == "HTTP 503: 503 Service Unavailable"
    assert answer.retry_after is None


def test_read_error_hands_the_adapter_every_decoded_body() -> None:
    seen: list[object] = []

    def message_of(body: object) -> str | None:
        seen.append(body)
        return None

    answer = read_error(400, {}, b"[1, 2]", secret=None, now=NOW, message_of=message_of)
    assert seen == [[1, 2]]
    assert answer.message == "[1, 2]"  # not the provider's shape: the text itself


def test_an_empty_message_from_the_adapter_is_kept_not_replaced() -> None:
    answer = read_error(404, {}, b'{"other": 1}', secret=None, now=NOW, message_of=_detail)
    assert answer.message == ""
    assert answer.text == "HTTP 404"


def test_an_empty_body_reads_as_the_status_alone() -> None:
    answer = read_error(500, {}, b"", secret=None, now=NOW, message_of=_detail)
    assert (answer.body, answer.message, answer.text, answer.retry_after) == (
        None,
        "",
        "HTTP 500",
        None,
    )


def test_the_retry_hint_comes_from_the_body_when_no_header_gives_one() -> None:
    raw = b'{"detail": "slow down", "retry_after": 12}'
    answer = read_error(429, {}, raw, secret=None, now=NOW, message_of=_detail)
    assert answer.retry_after == 12.0


def test_the_retry_hint_reads_the_decoded_body_not_the_bytes() -> None:
    raw = b'\xef\xbb\xbf{"detail": "slow down", "retry_after": 9}'  # JSON with a UTF-8 BOM
    answer = read_error(429, {}, raw, secret=None, now=NOW, message_of=_detail)
    assert (answer.message, answer.retry_after) == ("slow down", 9.0)


def test_a_header_hint_beats_the_body() -> None:
    raw = b'{"detail": "slow down", "retry_after": 12}'
    answer = read_error(
        429, {"retry-after-ms": "1500"}, raw, secret=None, now=NOW, message_of=_detail
    )
    assert answer.retry_after == 1.5


def test_the_retry_hint_reads_a_text_body_too() -> None:
    answer = read_error(
        429, {}, b"Please try again in 2.5s", secret=None, now=NOW, message_of=_detail
    )
    assert answer.message == "Please try again in 2.5s"
    assert answer.retry_after == 2.5


def test_an_absolute_hint_is_measured_from_now() -> None:
    headers = {"x-ratelimit-reset": str(int(NOW) + 40), "x-ratelimit-remaining": "0"}
    answer = read_error(429, headers, b"", secret=None, now=NOW, message_of=_detail)
    assert answer.retry_after == 40.0


# -- ErrorAnswer.fields --------------------------------------------------------------------


def test_fields_carry_provider_status_and_hint() -> None:
    answer = ErrorAnswer(status=429, body=None, message="m", text="HTTP 429: m", retry_after=3.0)
    assert answer.fields("groq") == {"provider": "groq", "status": 429, "retry_after": 3.0}
    assert answer.fields("groq", with_hint=False) == {"provider": "groq", "status": 429}
    error = Transient(answer.text, **answer.fields("groq"))
    assert (str(error), error.provider, error.status, error.retry_after) == (
        "HTTP 429: m",
        "groq",
        429,
        3.0,
    )


# -- error_parts ---------------------------------------------------------------------------


def test_error_parts_are_status_headers_and_body() -> None:
    response = httpx.Response(418, headers={"Retry-After": "5"}, content=b"teapot")
    status, headers, raw = error_parts(response)
    assert (status, headers["retry-after"], raw) == (418, "5", b"teapot")


# -- transport_error -----------------------------------------------------------------------


def test_a_timeout_says_how_long_we_waited() -> None:
    error = transport_error(httpx.ReadTimeout("read timed out"), provider="p", timeout_s=2.5)
    assert type(error) is Transient
    assert (str(error), error.provider, error.status, error.retry_after) == (
        "timed out after 2.5 s",
        "p",
        None,
        None,
    )


def test_a_timeout_may_say_where() -> None:
    error = transport_error(
        httpx.ConnectTimeout("x"), provider="p", timeout_s=30.0, where=" on GET /v2/jobs/1"
    )
    assert str(error) == "timed out after 30 s on GET /v2/jobs/1"


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        (httpx.ConnectError("refused"), "ConnectError"),
        (httpx.RemoteProtocolError("closed"), "RemoteProtocolError"),
        (httpx.TooManyRedirects("loop"), "TooManyRedirects"),
    ],
)
def test_a_connection_failure_names_the_exception_not_its_text(
    exc: httpx.HTTPError, name: str
) -> None:
    error = transport_error(exc, provider="p", timeout_s=30.0, where=" ignored")
    assert type(error) is Transient
    assert str(error) == f"connection failed: {name}"


# -- json_object / not_json ----------------------------------------------------------------


def test_json_object_returns_the_object() -> None:
    response = httpx.Response(200, json={"choices": []})
    assert json_object(response, provider="p") == {"choices": []}


@pytest.mark.parametrize(
    ("status", "headers", "content", "message"),
    [
        (200, {"content-type": "text/html"}, b"<html>", "malformed response: not JSON (text/html)"),
        (201, {}, b"", "malformed response: not JSON (no content type)"),
        (200, {}, b"\xff\xfe\xfa", "malformed response: not JSON (no content type)"),
    ],
)
def test_a_body_that_is_not_json_is_malformed_with_its_status(
    status: int, headers: dict[str, str], content: bytes, message: str
) -> None:
    response = httpx.Response(status, headers=headers, content=content)
    with pytest.raises(Transient) as caught:
        json_object(response, provider="p")
    assert (str(caught.value), caught.value.provider, caught.value.status) == (message, "p", status)
    made = not_json(response, provider="p")
    assert (str(made), made.status) == (message, status)


@pytest.mark.parametrize("content", [b"[1, 2]", b'"text"', b"null"])
def test_json_that_is_not_an_object_is_malformed(content: bytes) -> None:
    response = httpx.Response(202, content=content)
    with pytest.raises(Transient) as caught:
        json_object(response, provider="p")
    assert (str(caught.value), caught.value.status) == (
        "malformed response: not a JSON object",
        200,
    )
