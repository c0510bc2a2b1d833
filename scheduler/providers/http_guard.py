"""What every HTTP client of this product enforces, whoever built it: keys stay with their origin,
and an answer is read within a size cap.

Both are httpx event hooks (`install`), so they hold for our own client (`make_client`) and for
the clients two SDKs insist on building themselves (Replicate, AssemblyAI): the adapters call
`install` on those too. Hooks run once per hop of a redirect chain and before a body is read,
which is exactly where both rules must act.

**Redirects.** httpx strips only `Authorization` when a redirect leaves the origin; our adapters
also send `x-api-key`, `xi-api-key`, `x-gladia-key`, `x-goog-api-key` and SDK headers, and a key
may sit in the query. So a hop to another origin (scheme, host, port) keeps only an allowlist of
headers that can carry no credential, and loses every secret-named query parameter and any user
part of the URL. An allowlist, not a list of key headers: the next adapter's header is covered
before anyone remembers to add it. The first hop stamps its origin on the request's extensions,
which httpx carries to every redirect request it builds.

**Size.** A body is decoded here (gzip, deflate; `Accept-Encoding` is set to just those), in
steps of at most `_STEP` bytes, and counted as it is decoded, so neither an endless body nor a
gzip bomb (a few MB that inflate to GBs, nested or not) can hold more than the cap in memory.
Past the cap the read fails with `AnswerRefused` (an `httpx.TransportError`, so every adapter's
transport-failure path turns it into a Transient), its message naming the cap and the setting.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpx

from scheduler.call_clock import request_sent
from scheduler.urls import is_secret_param, origin

DEFAULT_MAX_RESPONSE_MB = 64.0
SETTING = "settings.max_response_mb"
_ORIGIN_KEY = "sched.origin"
_STEP = 64 * 1024  # the most one inflate step may produce
_DECODED = ("gzip", "x-gzip", "deflate")
ACCEPT_ENCODING = "gzip, deflate"

# Headers that carry no credential and that a redirected request still needs. Everything else
# (Authorization, any *-key, cookies, SDK headers that might hold a token) stays behind.
SAFE_HEADERS = frozenset(
    {
        "host",
        "accept",
        "accept-encoding",
        "accept-language",
        "user-agent",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "cache-control",
        "range",
    }
)


class AnswerRefused(httpx.TransportError):
    """An answer the HTTP layer will not read: larger than the cap, or in an encoding it does not
    decode (so cannot count). Adapters report it as a Transient with this message."""


def _origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    return origin(url.scheme, url.host, url.port)


def strip_for_other_origin(request: httpx.Request) -> None:
    """Make `request` safe to send to an origin its credentials do not belong to."""
    for name in list(request.headers.keys()):
        if name.lower() not in SAFE_HEADERS:
            del request.headers[name]
    url = (
        request.url.copy_with(username=None, password=None) if request.url.userinfo else request.url
    )
    params = url.params
    secret = [name for name in params if is_secret_param(name)]
    for name in secret:
        params = params.remove(name)
    request.url = url.copy_with(params=params) if secret else url


def sync_guard_request(request: httpx.Request) -> None:
    """Request hook: stamp the first hop's origin; strip credentials from a hop that left it."""
    request.headers["Accept-Encoding"] = ACCEPT_ENCODING
    first = request.extensions.get(_ORIGIN_KEY)
    here = _origin_of(request.url)
    if first is None:
        # A dict of this request's own: SDKs may share one extensions dict between requests.
        request.extensions = {**request.extensions, _ORIGIN_KEY: here}
    elif first != here:
        strip_for_other_origin(request)


async def guard_request(request: httpx.Request) -> None:
    """`sync_guard_request` for an AsyncClient; also the moment a provider call's timeout starts
    (`call_clock`): this hook runs on every client, ours and the SDKs', just before sending."""
    sync_guard_request(request)
    request_sent()


def _too_large(max_bytes: int) -> AnswerRefused:
    return AnswerRefused(
        f"answer larger than the {max_bytes / 1_000_000:g} MB cap ({SETTING}); not read"
    )


def _inflater(encoding: str) -> Callable[[bytes], Iterator[bytes]]:
    """A function that decodes the next piece of a body in `encoding`, in bounded steps."""
    wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    state: dict[str, Any] = {"obj": zlib.decompressobj(wbits), "first": True}

    def feed(data: bytes) -> Iterator[bytes]:
        obj = state["obj"]
        if state["first"] and data:
            state["first"] = False
            if encoding == "deflate":  # servers send zlib-wrapped or raw deflate; try both
                try:
                    zlib.decompressobj(wbits).decompress(data[:_STEP], 1)
                except zlib.error:
                    obj = state["obj"] = zlib.decompressobj(-zlib.MAX_WBITS)
        pending = data
        while True:
            try:
                out = obj.decompress(pending, _STEP)
            except zlib.error as exc:
                raise httpx.DecodingError(f"undecodable {encoding} body: {exc}") from None
            pending = obj.unconsumed_tail
            if out:
                yield out
            # Output exactly _STEP long may leave more inside zlib: ask again with no input.
            if obj.eof or (not pending and len(out) < _STEP):
                return

    return feed


def _encodings(headers: httpx.Headers) -> list[str]:
    value = headers.get("content-encoding", "")
    return [part.strip().lower() for part in value.split(",") if part.strip().lower()]


def _decode_chain(
    chunk: bytes, stages: list[Callable[[bytes], Iterator[bytes]]]
) -> Iterator[bytes]:
    """`chunk` through each decoder in turn, one bounded piece at a time."""
    if not stages:
        yield chunk
        return
    first, rest = stages[0], stages[1:]
    for piece in first(chunk):
        yield from _decode_chain(piece, rest)


class CappedStream(httpx.AsyncByteStream, httpx.SyncByteStream):
    """A response body decoded and counted as it is read; fails past `max_bytes`."""

    def __init__(self, inner: Any, encodings: list[str], max_bytes: int) -> None:
        self._inner = inner
        # Content-Encoding lists the codings in the order applied: undo the last first.
        self._stages = [_inflater(e) for e in reversed(encodings) if e != "identity"]
        self._max = max_bytes
        self._seen = 0

    def _count(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            self._seen += len(piece)
            if self._seen > self._max:
                raise _too_large(self._max)
            yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            for piece in self._count(_decode_chain(chunk, self._stages)):
                yield piece

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            yield from self._count(_decode_chain(chunk, self._stages))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def close(self) -> None:
        self._inner.close()


def _check_answer(response: httpx.Response, max_bytes: int) -> None:
    """Refuse at once what cannot be read within the cap; else decode and count as it is read."""
    encodings = [e for e in _encodings(response.headers) if e != "identity"]
    unknown = [e for e in encodings if e not in _DECODED]
    if unknown:
        raise AnswerRefused(f"answer in an unsupported content-encoding {unknown[0][:20]!r}")
    length = response.headers.get("content-length", "")
    # A HEAD answer (or a 204/304) announces a length it never sends: nothing to refuse.
    bodiless = response.request.method == "HEAD" or response.status_code in (204, 304)
    if not encodings and not bodiless and length.isdigit() and int(length) > max_bytes:
        raise _too_large(max_bytes)
    response.stream = CappedStream(response.stream, encodings, max_bytes)
    if encodings:  # decoded here: httpx must not decode again
        del response.headers["content-encoding"]
        response.headers.pop("content-length", None)


def response_guard(max_bytes: int) -> Callable[[httpx.Response], Any]:
    """The response hook of an AsyncClient that caps bodies at `max_bytes` decoded bytes."""

    async def guard_response(response: httpx.Response) -> None:
        _check_answer(response, max_bytes)

    guard_response.sched_guard = True  # type: ignore[attr-defined]
    return guard_response


def sync_response_guard(max_bytes: int) -> Callable[[httpx.Response], None]:
    """`response_guard` for a synchronous `httpx.Client`."""

    def guard_response(response: httpx.Response) -> None:
        _check_answer(response, max_bytes)

    return guard_response


def max_bytes_of(max_response_mb: float) -> int:
    return max(1, int(max_response_mb * 1_000_000))


def hooks(max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> dict[str, list[Any]]:
    """The event hooks of an AsyncClient: first in line, before any SDK's own."""
    return {"request": [guard_request], "response": [response_guard(max_bytes_of(max_response_mb))]}


def sync_hooks(max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> dict[str, list[Any]]:
    """The event hooks of a synchronous httpx.Client."""
    return {
        "request": [sync_guard_request],
        "response": [sync_response_guard(max_bytes_of(max_response_mb))],
    }


def _ours(hook: Any) -> bool:
    return hook is guard_request or getattr(hook, "sched_guard", False)


def guard_hooks_of(shared: httpx.AsyncClient) -> dict[str, list[Any]]:
    """Our hooks as `shared` (a `make_client` client) carries them, cap included, for a client an
    SDK builds itself; the defaults when `shared` has none (a test's bare client)."""
    found = {
        name: [h for h in shared.event_hooks[name] if _ours(h)] for name in ("request", "response")
    }
    return found if found["request"] and found["response"] else hooks()


def install(client: httpx.AsyncClient, like: httpx.AsyncClient) -> None:
    """Put the hooks of `like` (our shared client) in front of a client an SDK built, keeping the
    SDK's own hooks after ours."""
    current = client.event_hooks
    if any(_ours(h) for h in current["request"]):
        return
    ours = guard_hooks_of(like)
    client.event_hooks = {
        "request": ours["request"] + current["request"],
        "response": ours["response"] + current["response"],
    }


def refused_text(exc: BaseException) -> str | None:
    """The message of an AnswerRefused anywhere in `exc`'s chain (SDKs wrap transport errors in
    their own), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AnswerRefused):
            return str(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def failure_name(exc: BaseException) -> str:
    """How a transport failure is named in a message: the refusal's own words (with the cap), or
    the exception's type (`ConnectError`): never its text, which may hold a URL."""
    return refused_text(exc) or type(exc).__name__


__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_RESPONSE_MB",
    "SAFE_HEADERS",
    "SETTING",
    "AnswerRefused",
    "CappedStream",
    "failure_name",
    "guard_request",
    "hooks",
    "guard_hooks_of",
    "install",
    "max_bytes_of",
    "refused_text",
    "response_guard",
    "strip_for_other_origin",
    "sync_guard_request",
    "sync_hooks",
    "sync_response_guard",
]
