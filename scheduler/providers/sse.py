"""Server-sent event streams, the way OpenAI-compatible servers, Anthropic and Gemini stream.

One request, one `SseStream`: it sends the POST, turns an error answer into the provider's
classified error before any event (so the dispatcher may still fall over), and then yields each
event's name and decoded JSON. A stream that breaks after it started (the connection dropped, a
read timed out, a line that is not JSON) raises a `Transient` saying so: the dispatcher keeps
what arrived. Parsing the `text/event-stream` lines is httpx-sse's job. `read_events` reads a
stream whose request an SDK already sent (Cohere's), with the same rules.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import EventSource

from scheduler.errors import ProviderError, Transient
from scheduler.providers.http_errors import transport_error

# (status, headers, body) of an error answer -> its taxonomy class (an adapter's classify_error).
Classifier = Callable[[int, Mapping[str, str], bytes], ProviderError]
# An error answer's body is read at most this far: enough for any provider's error JSON.
MAX_ERROR_BODY = 64 * 1024


class SseStream:
    """`async with SseStream(...) as stream: async for name, data in stream.events(): ...`"""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        provider: str,
        timeout_s: float,
        classify: Classifier,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self._request = http.build_request(
            "POST",
            url,
            content=json.dumps(body).encode(),
            headers={
                **headers,
                "content-type": "application/json",
                "accept": "text/event-stream",
            },
            params=params,
            timeout=timeout_s,
        )
        self._http = http
        self._provider = provider
        self._timeout_s = timeout_s
        self._classify = classify
        self._response: httpx.Response | None = None

    @property
    def response(self) -> httpx.Response:
        assert self._response is not None, "use `async with`"
        return self._response

    async def __aenter__(self) -> SseStream:
        try:
            response = await self._http.send(self._request, stream=True)
        except httpx.HTTPError as exc:
            raise self._broken(exc, started=False) from None
        if response.status_code != 200:
            try:
                raw = await _read_capped(response, MAX_ERROR_BODY)
            except httpx.HTTPError:
                raw = b""
            finally:
                await response.aclose()
            raise self._classify(response.status_code, response.headers, raw)
        self._response = response
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            await self._response.aclose()

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """(event name, JSON data) per event; `message` is the name when the server sends none.
        OpenAI's closing `data: [DONE]` ends the iteration."""
        async for event in read_events(
            self.response, provider=self._provider, timeout_s=self._timeout_s
        ):
            yield event

    def _broken(self, exc: httpx.HTTPError, *, started: bool) -> Transient:
        return _broken(exc, provider=self._provider, timeout_s=self._timeout_s, started=started)


async def read_events(
    response: httpx.Response, *, provider: str, timeout_s: float
) -> AsyncIterator[tuple[str, Any]]:
    """The events of a streamed answer that is already open (an SDK sent the request and
    checked its status): the same reading, and the same errors, as `SseStream.events`."""
    source = EventSource(response)
    try:
        async for event in source.aiter_sse():
            if not event.data:
                continue
            if event.data.strip() == "[DONE]":
                return
            try:
                data = json.loads(event.data)
            except ValueError:
                raise Transient(
                    "malformed response: a stream event is not JSON",
                    provider=provider,
                    status=200,
                ) from None
            yield event.event or "message", data
    except httpx.HTTPError as exc:
        raise _broken(exc, provider=provider, timeout_s=timeout_s, started=True) from None


def _broken(exc: httpx.HTTPError, *, provider: str, timeout_s: float, started: bool) -> Transient:
    error = transport_error(exc, provider=provider, timeout_s=timeout_s)
    if started:
        error = Transient(f"stream broke: {error}", provider=provider)
    return error


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= cap:
            break
    return b"".join(chunks)[:cap]


__all__ = ["MAX_ERROR_BODY", "Classifier", "SseStream", "read_events"]
