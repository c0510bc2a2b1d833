"""Tests for the fake provider server: the end-to-end suite trusts it blindly."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes import openai_shapes as shapes
from tests.fakes.server import UNEXPECTED_STATUS, FakeServer, Recorded, Reply


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def client(server: FakeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5.0) as c:
        yield c


def test_url_is_loopback_with_port(server: FakeServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    port = int(server.url.rsplit(":", 1)[1])
    assert 0 < port < 65536
    assert server.base_url("a") == f"{server.url}/a/v1"


def test_scripted_replies_in_order_then_default(server: FakeServer, client: httpx.Client) -> None:
    server.route(
        "POST",
        "/a/v1/x",
        Reply(json={"n": 1}),
        Reply(status=500, json={"n": 2}),
        default=Reply(status=202, json={"n": "default"}),
    )
    answers = [client.post("/a/v1/x", json={}) for _ in range(4)]
    assert [(r.status_code, r.json()) for r in answers] == [
        (200, {"n": 1}),
        (500, {"n": 2}),
        (202, {"n": "default"}),
        (202, {"n": "default"}),
    ]
    assert server.count("/a/v1/x") == 4


def test_unscripted_request_gets_599_naming_it(server: FakeServer, client: httpx.Client) -> None:
    server.route("POST", "/a/v1/x", Reply(json={"ok": True}))
    assert client.post("/a/v1/x").json() == {"ok": True}

    exhausted = client.post("/a/v1/x")
    assert exhausted.status_code == UNEXPECTED_STATUS == 599
    assert exhausted.reason_phrase == "Unscripted Request"
    assert exhausted.json() == {
        "error": {
            "message": "fake server: no scripted reply for POST /a/v1/x",
            "type": "unexpected_request",
            "method": "POST",
            "path": "/a/v1/x",
        }
    }

    wrong_method = client.get("/a/v1/x")
    assert wrong_method.status_code == 599
    assert wrong_method.json()["error"]["message"] == (
        "fake server: no scripted reply for GET /a/v1/x"
    )

    unknown_path = client.post("/b/v1/x?q=1")
    assert unknown_path.status_code == 599
    assert unknown_path.json()["error"]["path"] == "/b/v1/x"
    assert [(r.method, r.path) for r in server.requests()] == [
        ("POST", "/a/v1/x"),
        ("POST", "/a/v1/x"),
        ("GET", "/a/v1/x"),
        ("POST", "/b/v1/x"),
    ]


def test_route_again_replaces_script(server: FakeServer, client: httpx.Client) -> None:
    server.route("GET", "/p", Reply(json=1), Reply(json=2), default=Reply(json="d1"))
    assert client.get("/p").json() == 1
    server.route("GET", "/p", Reply(json=3))
    assert client.get("/p").json() == 3
    assert client.get("/p").status_code == 599


def test_query_ignored_for_matching_but_recorded(server: FakeServer, client: httpx.Client) -> None:
    server.route("GET", "/a/v1/models", default=Reply(json={"data": []}))
    resp = client.get("/a/v1/models", params=[("limit", "5"), ("tag", "x"), ("tag", "y")])
    assert resp.status_code == 200
    (rec,) = server.requests("/a/v1/models")
    assert rec.query == {"limit": ["5"], "tag": ["x", "y"]}
    assert rec.path == "/a/v1/models"


def test_recorded_request_fields(server: FakeServer, client: httpx.Client) -> None:
    path = shapes.chat_path("a")
    server.route("POST", path, shapes.chat_ok("hi"))
    payload = {"model": "m", "messages": [{"role": "user", "content": "héllo"}]}
    client.post(
        path,
        json=payload,
        headers={"Authorization": "Bearer sk-test", "X-Custom-Thing": "42"},
    )
    (rec,) = server.requests(path)
    assert isinstance(rec, Recorded)
    assert rec.method == "POST"
    assert rec.path == "/a/v1/chat/completions"
    assert rec.query == {}
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert rec.headers["x-custom-thing"] == "42"
    assert rec.headers["content-type"] == "application/json"
    assert rec.headers["content-length"] == str(len(rec.body))
    assert all(name == name.lower() for name in rec.headers)
    assert rec.json() == payload
    assert json.loads(rec.body.decode("utf-8")) == payload
    assert server.requests("/elsewhere") == []
    assert server.count("/elsewhere") == 0


def test_chunked_request_body_is_read(server: FakeServer, client: httpx.Client) -> None:
    server.route("PUT", "/upload", Reply(status=201, body=b""))
    resp = client.put("/upload", content=iter([b"hello ", b"chunked ", b"world"]))
    assert resp.status_code == 201
    assert resp.content == b""
    (rec,) = server.requests("/upload")
    assert rec.headers["transfer-encoding"] == "chunked"
    assert rec.body == b"hello chunked world"


def test_multipart_upload_is_recorded_whole(server: FakeServer, client: httpx.Client) -> None:
    server.route("POST", "/a/v1/files", Reply(json={"id": "file-1"}))
    image = bytes(range(256)) * 40
    resp = client.post("/a/v1/files", files={"file": ("pic.png", image, "image/png")})
    assert resp.json() == {"id": "file-1"}
    (rec,) = server.requests("/a/v1/files")
    assert int(rec.headers["content-length"]) == len(rec.body)
    assert image in rec.body
    assert rec.headers["content-type"].startswith("multipart/form-data; boundary=")


def test_raw_body_and_header_overrides(server: FakeServer, client: httpx.Client) -> None:
    server.route(
        "GET",
        "/raw",
        Reply(status=502, body="<html>bad gateway</html>", headers={"Content-Type": "text/html"}),
        Reply(body=b'{"truncated": ', headers={"content-type": "application/json"}),
        Reply(body=b"\x89PNG\r\n", headers={"X-Extra": "yes", "Content-Length": "999"}),
        Reply(status=204),
    )
    html = client.get("/raw")
    assert (html.status_code, html.headers["content-type"], html.text) == (
        502,
        "text/html",
        "<html>bad gateway</html>",
    )
    truncated = client.get("/raw")
    assert truncated.content == b'{"truncated": '
    with pytest.raises(json.JSONDecodeError):
        truncated.json()
    png = client.get("/raw")
    assert png.content == b"\x89PNG\r\n"
    assert png.headers["content-type"] == "application/octet-stream"
    assert png.headers["content-length"] == "6"
    assert png.headers["x-extra"] == "yes"
    empty = client.get("/raw")
    assert (empty.status_code, empty.content) == (204, b"")
    # keep-alive survived all of the above on the same client
    assert server.count("/raw") == 4


def test_close_drops_connection_without_answer(server: FakeServer, client: httpx.Client) -> None:
    server.route("POST", "/a/v1/x", Reply(close=True), Reply(json={"after": "drop"}))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/a/v1/x", json={"q": 1})
    # the request was still recorded, and the server keeps serving afterwards
    assert server.requests("/a/v1/x")[0].json() == {"q": 1}
    assert client.post("/a/v1/x").json() == {"after": "drop"}
    assert server.count("/a/v1/x") == 2


def test_close_on_reused_keepalive_connection(server: FakeServer, client: httpx.Client) -> None:
    server.route("GET", "/k", Reply(json=1), Reply(close=True), Reply(json=3))
    assert client.get("/k").json() == 1
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/k")
    assert client.get("/k").json() == 3


def test_delay_triggers_read_timeout(server: FakeServer) -> None:
    server.route("GET", "/slow", Reply(json={"late": True}, delay_s=2.0), Reply(json={"on": 1}))
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(5.0, read=0.2)) as c:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            c.get("/slow")
        assert time.monotonic() - started < 1.5
        assert c.get("/slow").json() == {"on": 1}
    assert server.count("/slow") == 2


def test_delay_is_honoured(server: FakeServer, client: httpx.Client) -> None:
    server.route("GET", "/lat", Reply(json="ok", delay_s=0.3))
    started = time.monotonic()
    assert client.get("/lat").json() == "ok"
    assert time.monotonic() - started >= 0.3


def test_exit_is_prompt_with_sleeping_handler_and_idle_keepalive() -> None:
    srv = FakeServer()
    with srv:
        srv.route("GET", "/slow", Reply(json=1, delay_s=30))
        srv.route("GET", "/fast", Reply(json=2))
        idle = httpx.Client(base_url=srv.url, timeout=httpx.Timeout(5.0, read=0.1))
        assert idle.get("/fast").json() == 2  # leaves an idle keep-alive connection
        with pytest.raises(httpx.ReadTimeout):
            idle.get("/slow")
        started = time.monotonic()
    assert time.monotonic() - started < 2.0
    idle.close()
    with pytest.raises(RuntimeError):
        _ = srv.url
    assert not any(t.name.startswith("FakeServer:") for t in threading.enumerate())


def test_concurrent_requests_never_share_a_scripted_reply(server: FakeServer) -> None:
    path = shapes.chat_path("a")
    server.route(
        "POST",
        path,
        *(Reply(json={"n": i}) for i in range(100)),
        default=Reply(status=429, json={"n": "default"}),
    )
    answers: list[tuple[int, object]] = []
    answers_lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def worker(w: int) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=10.0) as c:
                start.wait()
                for i in range(20):
                    resp = c.post(path, json={"worker": w, "i": i})
                    with answers_lock:
                        answers.append((resp.status_code, resp.json()["n"]))
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(answers) == 400
    scripted = sorted(n for status, n in answers if status == 200)
    assert scripted == list(range(100))
    assert Counter(answers)[(429, "default")] == 300
    assert server.count(path) == 400
    recorded = Counter((r.json()["worker"], r.json()["i"]) for r in server.requests(path))
    assert recorded == Counter({(w, i): 1 for w in range(20) for i in range(20)})


_CLIENT_SCRIPT = """
import http.client, json, sys
port, worker = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
out = []
for i in range(25):
    body = json.dumps({"worker": worker, "i": i})
    conn.request("POST", "/a/v1/chat/completions", body, {"content-type": "application/json"})
    r = conn.getresponse()
    out.append([r.status, json.loads(r.read())["n"]])
conn.close()
print(json.dumps(out))
"""


def test_concurrent_client_processes(server: FakeServer) -> None:
    """The e2e suite runs several CLI processes at once against one server.

    Clients use stdlib http.client (keep-alive, fast start-up) to keep this quick.
    """
    path = shapes.chat_path("a")
    server.route(
        "POST",
        path,
        *(Reply(json={"n": i}) for i in range(100)),
        default=Reply(status=429, json={"n": "default"}),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-I", "-c", _CLIENT_SCRIPT, server.url.rsplit(":", 1)[1], str(w)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(8)
    ]
    answers: list[tuple[int, object]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        answers.extend((status, n) for status, n in json.loads(out))
    assert len(answers) == 200
    assert sorted(n for status, n in answers if status == 200) == list(range(100))
    assert Counter(answers)[(429, "default")] == 100
    assert server.count(path) == 200
    recorded = Counter((r.json()["worker"], r.json()["i"]) for r in server.requests(path))
    assert recorded == Counter({(w, i): 1 for w in range(8) for i in range(25)})


def test_reset_forgets_routes_and_recordings(server: FakeServer, client: httpx.Client) -> None:
    server.route("GET", "/r", default=Reply(json="x"))
    assert client.get("/r").json() == "x"
    server.reset()
    assert server.requests() == []
    assert server.count("/r") == 0
    assert client.get("/r").status_code == 599
    assert server.count("/r") == 1


def test_reply_validation_and_immutability() -> None:
    with pytest.raises(ValueError):
        Reply(json={}, body=b"")
    with pytest.raises(ValueError):
        Reply(delay_s=-1)
    source = {"a": "1"}
    reply = Reply(headers=source)
    source["a"] = "2"
    assert reply.headers["a"] == "1"
    with pytest.raises(TypeError):
        reply.headers["a"] = "3"  # type: ignore[index]


def test_chat_ok_round_trips_exact_json(server: FakeServer, client: httpx.Client) -> None:
    path = shapes.chat_path("b")
    assert path == "/b/v1/chat/completions"
    reply = shapes.chat_ok(
        "Bonjour", model="gpt-x", prompt_tokens=11, completion_tokens=4, headers={"x-req": "r1"}
    )
    server.route("POST", path, reply)
    resp = client.post(path, json={"model": "gpt-x", "messages": []})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-req"] == "r1"
    body = resp.json()
    assert body == reply.json
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert abs(body["created"] - time.time()) < 60
    assert {k: v for k, v in body.items() if k not in ("id", "created")} == {
        "object": "chat.completion",
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Bonjour"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
    }
    assert shapes.chat_ok("a").json["id"] != shapes.chat_ok("a").json["id"]  # type: ignore[index]


def test_openai_sdk_parses_chat_ok(server: FakeServer) -> None:
    openai = pytest.importorskip("openai")
    server.route("POST", shapes.chat_path("a"), shapes.chat_ok("from fake", model="m1"))
    with openai.OpenAI(api_key="sk-test", base_url=server.base_url("a"), max_retries=0) as sdk:
        out = sdk.chat.completions.create(model="m1", messages=[{"role": "user", "content": "q"}])
    assert out.choices[0].message.content == "from fake"
    assert out.usage is not None and out.usage.total_tokens == 12
    (rec,) = server.requests(shapes.chat_path("a"))
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert rec.json()["messages"] == [{"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    ("reply", "status", "expected_headers"),
    [
        (shapes.insufficient_quota(), 429, {}),
        (shapes.invalid_key("sk-pro...1234"), 401, {}),
        (shapes.server_error(), 500, {}),
        (
            shapes.rate_limited("7"),
            429,
            {
                "retry-after": "7",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "20s",
            },
        ),
        (shapes.groq_daily_tokens(), 429, {"retry-after": "578"}),
        (shapes.openrouter_credits(), 402, {}),
        (
            shapes.openrouter_free_daily(1_700_000_000_000),
            429,
            {
                "x-ratelimit-limit": "50",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": "1700000000000",
            },
        ),
        (shapes.gemini_compat_exhausted_array(), 429, {}),
        (shapes.context_too_long(), 400, {}),
        (shapes.overloaded_529(), 529, {}),
    ],
    ids=[
        "insufficient_quota",
        "invalid_key",
        "server_error",
        "rate_limited",
        "groq_daily_tokens",
        "openrouter_credits",
        "openrouter_free_daily",
        "gemini_compat_exhausted_array",
        "context_too_long",
        "overloaded_529",
    ],
)
def test_error_builders_round_trip(
    server: FakeServer,
    client: httpx.Client,
    reply: Reply,
    status: int,
    expected_headers: dict[str, str],
) -> None:
    server.route("POST", "/e", reply)
    resp = client.post("/e")
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == reply.json
    assert {k: resp.headers.get(k) for k in expected_headers} == expected_headers


def test_error_builder_exact_shapes() -> None:
    assert shapes.insufficient_quota().json == {
        "error": {
            "message": (
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors."
            ),
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    assert shapes.invalid_key().json == {
        "error": {
            "message": (
                "Incorrect API key provided: sk-abc...wxyz. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            ),
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    limited = shapes.rate_limited(None, kind="tokens")
    assert "retry-after" not in limited.headers
    assert limited.json == {
        "error": {
            "message": (
                "Rate limit reached for m in organization org-x on requests per min (RPM): "
                "Limit 3, Used 3, Requested 1. Please try again in 20s."
            ),
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert shapes.openrouter_free_daily(123).json == {
        "error": {
            "code": 429,
            "message": (
                "Rate limit exceeded: free-models-per-day. "
                "Add 10 credits to unlock 1000 free model requests per day"
            ),
            "metadata": {
                "limit_source": "openrouter_free_tier_daily",
                "headers": {
                    "X-RateLimit-Limit": "50",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": "123",
                },
            },
        }
    }
    assert shapes.groq_daily_tokens().json == {
        "error": {
            "message": (
                "Rate limit reached for model `llama-3.3-70b-versatile` in organization "
                "`org_01` service tier `on_demand` on tokens per day (TPD): Limit 100000, "
                "Used 97050, Requested 3619. Please try again in 9m38.016s. Need more tokens? "
                "Upgrade to Dev Tier today at https://console.groq.com/settings/billing"
            ),
            "type": "tokens",
            "code": "rate_limit_exceeded",
        }
    }


def test_perplexity_html_401_and_529_reason(server: FakeServer, client: httpx.Client) -> None:
    server.route("POST", "/p", shapes.perplexity_html_401(), shapes.overloaded_529())
    html = client.post("/p")
    assert html.status_code == 401
    assert html.headers["content-type"] == "text/html"
    assert html.text == (
        "<html><head><title>401 Authorization Required</title></head><body>"
        "<center><h1>401 Authorization Required</h1></center><hr>"
        "<center>openresty/1.25.3.1</center></body></html>"
    )
    overloaded = client.post("/p")
    assert (overloaded.status_code, overloaded.reason_phrase) == (529, "Overloaded")
    assert overloaded.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
