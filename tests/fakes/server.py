"""A scriptable local HTTP server that stands in for AI providers in tests.

Why this exists: tests must never reach a real provider, yet the scheduler's
interesting behaviour (fallover, quota bookkeeping, retry-after handling) only
shows up against real HTTP: status codes, headers, odd bodies, dropped
connections and slow answers.  ``FakeServer`` answers with exactly the bytes a
test scripts, records every request it sees, and is safe to hammer from many
threads or client processes at once.

Several fake providers share one server by path prefix, e.g. base_url
``f"{server.url}/a/v1"`` is provider A and ``f"{server.url}/b/v1"`` is provider B.

Standard library only, so the fake cannot disagree with the real client stack
(httpx) about anything but what the test scripted.
"""

from __future__ import annotations

import json as _json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "Recorded", "Reply", "UNEXPECTED_STATUS"]

#: Status used when a request arrives that no script covers.  Not a real HTTP
#: status any provider sends, so a test that forgot a route fails loudly instead
#: of being mistaken for a provider error the scheduler knows how to handle.
UNEXPECTED_STATUS = 599

# Reason phrases for the non-standard codes providers actually send (Anthropic's
# 529) and for our own 599; http.server would otherwise send an empty phrase.
_EXTRA_REASONS = {529: "Overloaded", UNEXPECTED_STATUS: "Unscripted Request"}

# How often serve_forever checks for shutdown: it bounds how long __exit__ takes.
_POLL_INTERVAL_S = 0.02
# How long __exit__ waits for in-flight handler threads before giving up on them.
_DRAIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Frozen so that a reply shared between routes (or reused by a builder) can
    never be mutated by one test behind another's back; ``headers`` is copied
    into a read-only mapping for the same reason.
    """

    status: int = 200
    #: Serialised with ``json.dumps``; content-type ``application/json``.
    json: object | None = None
    #: Raw body: an HTML error page, truncated JSON, image bytes...
    body: bytes | str | None = None
    #: Extra or overriding headers (content-type too); Content-Length is always ours.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Sleep before answering, to provoke client timeouts or measure latency.
    delay_s: float = 0.0
    #: Drop the connection without writing a single byte (simulated reset).
    close: bool = False
    #: A streamed body (server-sent events): each bytes item is written and flushed as one
    #: HTTP chunk; a `threading.Event` item makes the server wait until the test sets it, so a
    #: test can look at what the client did with the chunks before it.
    chunks: tuple[bytes | threading.Event, ...] | None = None
    #: With `chunks`: hang up after them without the closing zero-length chunk (a cut stream).
    cut: bool = False

    def __post_init__(self) -> None:
        if self.json is not None and self.body is not None:
            raise ValueError("Reply takes json or body, not both")
        if self.delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        if self.chunks is not None and (self.json is not None or self.body is not None):
            raise ValueError("Reply takes chunks or a body, not both")
        if self.chunks is not None:
            object.__setattr__(self, "chunks", tuple(self.chunks))
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def encode(self) -> tuple[bytes, dict[str, str]]:
        """Return the body bytes and the headers to send (names lower-cased).

        Content-Length is always computed here, never taken from ``headers``:
        keep-alive only works when the length is right.
        """
        if self.json is not None:
            payload = _json.dumps(self.json).encode("utf-8")
            content_type = "application/json"
        elif isinstance(self.body, str):
            payload = self.body.encode("utf-8")
            content_type = "text/plain; charset=utf-8"
        elif self.body is not None:
            payload = bytes(self.body)
            content_type = "application/octet-stream"
        else:
            payload = b""
            content_type = ""
        out: dict[str, str] = {}
        if content_type:
            out["content-type"] = content_type
        for name, value in self.headers.items():
            if name.lower() in ("content-length", "transfer-encoding"):
                continue
            out[name.lower()] = value
        out["content-length"] = str(len(payload))
        return payload, out


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it, for assertions after the fact."""

    method: str
    path: str
    query: dict[str, list[str]]
    #: Header names lower-cased; repeated headers joined with ", ".
    headers: dict[str, str]
    body: bytes
    #: When the request had been read (POSIX time): for timings relative to what the client did.
    at: float = 0.0

    def json(self) -> Any:
        """The body parsed as JSON (raises if it is not JSON)."""
        return _json.loads(self.body)


class _Route:
    """The script for one method+path: replies served once each, then ``default``."""

    __slots__ = ("replies", "default")

    def __init__(self, replies: tuple[Reply, ...], default: Reply | None) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.default = default


def _unexpected(method: str, path: str) -> Reply:
    return Reply(
        status=UNEXPECTED_STATUS,
        json={
            "error": {
                "message": f"fake server: no scripted reply for {method} {path}",
                "type": "unexpected_request",
                "method": method,
                "path": path,
            }
        },
    )


class _BadRequestBody(Exception):
    """The request body could not be framed (bad Content-Length or chunking)."""


class _Handler(BaseHTTPRequestHandler):
    """Turns each HTTP request into a ``Recorded`` and writes the scripted ``Reply``."""

    # HTTP/1.1 so clients keep connections alive the way they do against real
    # providers; that is only safe because every answer carries Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for
    # the client's delayed ACK (~40 ms per request on Linux).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: per-request lines on stderr only bury test output."""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _BadRequestBody as exc:
            self.close_connection = True
            self._write(Reply(status=400, json={"error": {"message": str(exc)}}))
            return
        raw_path = self.path
        if raw_path.startswith(("http://", "https://")):  # absolute-form target
            parts = urlsplit(raw_path)
            path, query = parts.path or "/", parts.query
        else:
            path, _, query = raw_path.partition("?")
            path = path.partition("#")[0]
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        recorded = Recorded(
            method=self.command,
            path=path,
            query=parse_qs(query, keep_blank_values=True),
            headers=headers,
            body=body,
            at=time.time(),
        )
        reply = self.server.owner._dispatch(recorded)
        if reply.delay_s and self.server.stopping.wait(reply.delay_s):
            reply = Reply(close=True)  # server is shutting down: do not linger
        if reply.close:
            self._drop()
            return
        if reply.chunks is not None:
            self._write_chunks(reply)
            return
        self._write(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle

    def _read_body(self) -> bytes:
        """Read the request body framed by chunked encoding or Content-Length."""
        encoding = self.headers.get("Transfer-Encoding", "")
        if "chunked" in encoding.lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise _BadRequestBody(f"bad Content-Length: {length!r}") from None
        if n < 0:
            raise _BadRequestBody(f"bad Content-Length: {length!r}")
        data = self.rfile.read(n)
        if len(data) != n:
            raise _BadRequestBody(f"body ended after {len(data)} of {n} bytes")
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise _BadRequestBody("connection closed inside chunked body")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequestBody(f"bad chunk size line: {line!r}") from None
            if size == 0:
                break
            data = self.rfile.read(size)
            if len(data) != size:
                raise _BadRequestBody("connection closed inside a chunk")
            chunks.append(data)
            if self.rfile.readline(65537) not in (b"\r\n", b"\n"):
                raise _BadRequestBody("chunk not followed by CRLF")
        while True:  # trailer section, ends with an empty line
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
        return b"".join(chunks)

    def _drop(self) -> None:
        """Close the socket without sending anything, like a crashed upstream."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, reply: Reply) -> None:
        payload, headers = reply.encode()
        reason = _EXTRA_REASONS.get(reply.status)
        if reason is None:
            try:
                reason = HTTPStatus(reply.status).phrase
            except ValueError:
                reason = ""
        if headers.get("connection", "").lower() == "close":
            self.close_connection = True
        try:
            self.send_response(reply.status, reason)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            no_body = self.command == "HEAD" or reply.status in (204, 304) or reply.status < 200
            if payload and not no_body:
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client gave up (e.g. its timeout fired): nothing to tell it
            self.close_connection = True

    def _write_chunks(self, reply: Reply) -> None:
        """A chunked `text/event-stream` answer, written piece by piece as scripted."""
        assert reply.chunks is not None
        self.close_connection = True
        try:
            self.send_response(reply.status)
            self.send_header("content-type", "text/event-stream")
            for name, value in reply.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for item in reply.chunks:
                if isinstance(item, threading.Event):
                    while not item.wait(_POLL_INTERVAL_S):
                        if self.server.stopping.is_set():
                            self._drop()
                            return
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(item), item))
                self.wfile.flush()
            if reply.cut:
                self._drop()
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client went away mid-stream (Ctrl-C, its timeout)
            self.close_connection = True


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that can drain its connections on shutdown.

    Handler threads are daemons, yet ``FakeServer.__exit__`` still closes every
    open connection and waits for the handlers, so no socket outlives the test
    (pytest runs with ``filterwarnings=error``; a leaked socket is a
    ResourceWarning, i.e. a failure somewhere else).
    """

    daemon_threads = True
    allow_reuse_address = True
    # Many client processes connect at once; the default backlog of 5 would make
    # the kernel drop SYNs and add whole seconds of retransmit delay.
    request_queue_size = 128

    def __init__(self, owner: FakeServer) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._active = 0
        self._cv = threading.Condition()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._cv:
            self._conns.add(request)
            self._active += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._cv:
                self._active -= 1
                self._cv.notify_all()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._cv:
                self._active -= 1
                self._cv.notify_all()

    def shutdown_request(self, request: Any) -> None:
        # Forget the socket before closing it so drain() never shuts down a
        # socket that another thread is closing at the same moment.
        with self._cv:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up; print anything else (a bug in the fake)."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def drain(self, timeout: float) -> None:
        """Wake idle keep-alive handlers by shutting their sockets; wait for all."""
        with self._cv:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._cv.wait_for(lambda: self._active == 0, timeout)


class FakeServer:
    """Context manager; binds 127.0.0.1 on a free port, serves in a daemon thread.

    Scripts are per (method, exact path); the query string is ignored for
    matching but recorded.  Every request is recorded, scripted or not.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], _Route] = {}
        self._otherwise: Reply | None = None
        self._log: list[Recorded] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FakeServer:
        """Bind and start serving (what ``__enter__`` does)."""
        if self._httpd is not None:
            raise RuntimeError("FakeServer already started")
        httpd = _HTTPServer(self)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name=f"FakeServer:{httpd.server_address[1]}",
            daemon=True,
        )
        self._httpd, self._thread = httpd, thread
        thread.start()
        return self

    def close(self) -> None:
        """Stop serving, close every connection and the listening socket."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.stopping.set()  # wakes handlers sleeping in a delay_s
        httpd.shutdown()
        httpd.drain(_DRAIN_TIMEOUT_S)
        httpd.server_close()
        thread.join()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (only while started)."""
        if self._httpd is None:
            raise RuntimeError("FakeServer is not running; use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def base_url(self, prefix: str) -> str:
        """The OpenAI-style base_url for the fake provider at ``/{prefix}/v1``."""
        return f"{self.url}/{prefix}/v1"

    # -- scripting -------------------------------------------------------------

    def route(self, method: str, path: str, *replies: Reply, default: Reply | None = None) -> None:
        """Script ``replies`` (served once each, in order) then ``default`` for method+path.

        Without a default, requests past the script get a 599 naming the
        request, so a test that under-scripts fails loudly.  Calling again for
        the same method+path replaces the whole script.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        with self._lock:
            self._routes[(method.upper(), path)] = _Route(replies, default)

    def otherwise(self, reply: Reply | None) -> None:
        """Answer ``reply`` to every request no route covers (a redirect for every path, say);
        None restores the 599 for unscripted requests."""
        with self._lock:
            self._otherwise = reply

    def requests(self, path: str | None = None) -> list[Recorded]:
        """All recorded requests in arrival order, or only those to ``path``."""
        with self._lock:
            if path is None:
                return list(self._log)
            return [r for r in self._log if r.path == path]

    def count(self, path: str) -> int:
        """How many requests (any method) reached ``path``."""
        with self._lock:
            return sum(1 for r in self._log if r.path == path)

    def reset(self) -> None:
        """Forget every route and every recording."""
        with self._lock:
            self._routes.clear()
            self._otherwise = None
            self._log.clear()

    def _dispatch(self, recorded: Recorded) -> Reply:
        """Record the request and pick its reply, atomically.

        One lock around both, so concurrent requests can never be served the
        same scripted reply, and a reply is never served for a lost recording.
        """
        with self._lock:
            self._log.append(recorded)
            route = self._routes.get((recorded.method, recorded.path))
            if route is not None:
                if route.replies:
                    return route.replies.popleft()
                if route.default is not None:
                    return route.default
            if self._otherwise is not None:
                return self._otherwise
        return _unexpected(recorded.method, recorded.path)
