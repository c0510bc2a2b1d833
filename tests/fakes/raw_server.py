"""A byte-level HTTP stand-in for faults `FakeServer` cannot script: a truncated body.

`FakeServer` always computes Content-Length itself so that keep-alive works, which is right for
every well-formed answer but cannot say "300 bytes follow" and then hang up after 80, as a proxy
or an upstream that crashed mid-answer does. `RawServer` reads each request (headers and
Content-Length body) and writes exactly the bytes it was given, then closes the connection.

Standard library only, like `FakeServer`; every socket and thread is closed on exit (pytest runs
with filterwarnings=error, so a leaked socket would fail some other test).
"""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["RawServer", "truncated_response"]


def truncated_response(body: bytes, *, announced: int, content_type: str) -> bytes:
    """A 200 whose headers announce `announced` bytes while only `body` follows."""
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {announced}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class RawServer:
    """Context manager on 127.0.0.1; answers every request with `payload`, then closes."""

    def __init__(self, payload: bytes, *, drip_s: float = 0.0) -> None:
        self.payload = payload
        self.drip_s = drip_s  # > 0: send one byte of the body at a time, this far apart
        self._lock = threading.Lock()
        self._paths: list[str] = []
        self._arrivals: list[tuple[str, float]] = []  # (path, time.time() the request was read)
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopping = threading.Event()

    def __enter__(self) -> RawServer:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.05)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name="RawServer", daemon=True)
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    @property
    def url(self) -> str:
        assert self._listener is not None, "RawServer is not running"
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def base_url(self, prefix: str) -> str:
        return f"{self.url}/{prefix}/v1"

    def count(self, path: str) -> int:
        with self._lock:
            return self._paths.count(path)

    def arrivals(self, path: str) -> list[float]:
        """When each request to `path` was read (POSIX times), in arrival order."""
        with self._lock:
            return [at for seen, at in self._arrivals if seen == path]

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _send(self, conn: socket.socket) -> None:
        if not self.drip_s:
            conn.sendall(self.payload)
            return
        head, sep, body = self.payload.partition(b"\r\n\r\n")
        conn.sendall(head + sep)
        for index in range(len(body)):
            if self._stopping.wait(self.drip_s):
                return
            conn.sendall(body[index : index + 1])

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                with self._lock:
                    self._paths.append(lines[0].split(" ")[1])
                    self._arrivals.append((lines[0].split(" ")[1], time.time()))
                self._send(conn)
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                return
