"""`sched serve` as its clients see it: the official openai SDK (sync, async, streaming) and plain
HTTP against a real `sched serve` process in front of wire-level fake upstreams.

Each test starts the real command (uvicorn, its workers, the durable ledger) on a free port and
waits for `/health`; the upstreams are `FakeServer`s answering in OpenAI's documented shapes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import openai
import pytest

from scheduler.ledger import Ledger
from tests.conftest import openai_provider, run_cli, write_config
from tests.conftest import serving as _serving
from tests.fakes import openai_shapes
from tests.fakes.server import FakeServer, Reply

KEYS = {"A_KEY": "sk-a-000000000001", "B_KEY": "sk-b-000000000002", "C_KEY": "sk-c-000000000003"}
PATIENCE_S = 60  # bounds a failing wait; a passing run does not wait for it


def serving(
    tmp_path: Path, config: Path, *args: str, db: str | None = None
) -> AbstractContextManager[str]:
    return _serving(tmp_path, config, *args, db=db, keys=KEYS)


def _provider(fake: FakeServer, name: str, quotas: str = "") -> str:
    body = openai_provider(fake.base_url(name), f"{name.upper()}_KEY", quotas)
    models = "{text: m, image: dall-e-3, stt: whisper-1, tts: tts-1}"
    return body.replace("models: {text: m}", f"models: {models}")


def _config(tmp_path: Path, fake: FakeServer, names: tuple[str, ...] = ("a",)) -> Path:
    order = list(names)
    return write_config(
        tmp_path / "providers.yaml",
        {name: _provider(fake, name) for name in names},
        {"text": order, "image": order, "stt": order, "tts": order},
    )


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(str(tmp_path / "quota.db"))


def _count(tmp_path: Path, sql: str) -> object:
    with _ledger(tmp_path) as ledger:
        return ledger.read(sql)[0][0]


# -- the openai SDK as the client ------------------------------------------------------------


def test_the_openai_sdk_talks_to_the_gateway_on_every_endpoint(
    tmp_path: Path, fake: FakeServer
) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("Hi there!"))
    png = openai_shapes.tiny_png()
    fake.route("POST", "/a/v1/images/generations", default=openai_shapes.images_b64(png))
    fake.route(
        "POST",
        "/a/v1/audio/transcriptions",
        default=openai_shapes.transcription_verbose(
            "hello world", [(0.0, 0.2, "hello world")], duration=0.25
        ),
    )
    mp3 = openai_shapes.tiny_mp3()
    fake.route("POST", "/a/v1/audio/speech", default=openai_shapes.speech_ok(mp3))
    with serving(tmp_path, _config(tmp_path, fake)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        chat = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hello"}]
        )
        assert chat.headers["x-sched-provider"] == "a"
        completion = chat.parse()
        assert completion.choices[0].message.content == "Hi there!"
        assert completion.usage is not None and completion.usage.prompt_tokens == 5

        image = client.images.generate(model="auto", prompt="a red dot")
        assert image.data is not None and image.data[0].b64_json
        audio = tmp_path / "clip.mp3"
        audio.write_bytes(mp3)
        with audio.open("rb") as handle:
            transcript = client.audio.transcriptions.create(
                model="a/whisper-1", file=handle, response_format="verbose_json"
            )
        assert transcript.text == "hello world"
        speech = client.audio.speech.create(model="auto", voice="alloy", input="Hello")
        assert speech.content[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3") or speech.content[0] == 0xFF
        ids = [model.id for model in client.models.list()]
        assert ids[:4] == ["auto", "free", "cheapest", "fastest"] and "a/m" in ids

        async def async_chat() -> str | None:
            async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x") as aclient:
                answer = await aclient.chat.completions.create(
                    model="a/m", messages=[{"role": "user", "content": "Again"}]
                )
                return answer.choices[0].message.content

        assert asyncio.run(async_chat()) == "Hi there!"
    sent = fake.requests("/a/v1/audio/transcriptions")
    assert len(sent) == 1  # reserved on the measured seconds, then called once
    with _ledger(tmp_path) as ledger:
        rows = ledger.read("SELECT task, outcome FROM calls ORDER BY id")
    assert rows == [("text", "ok"), ("image", "ok"), ("stt", "ok"), ("tts", "ok"), ("text", "ok")]


def test_a_stream_reaches_the_client_chunk_by_chunk_with_usage_last(
    tmp_path: Path, fake: FakeServer
) -> None:
    gate = threading.Event()
    chunks = openai_shapes.chat_stream_chunks(["Once ", "upon ", "a time."], prompt_tokens=9)
    fake.route("POST", "/a/v1/chat/completions", Reply(chunks=(*chunks[:3], gate, *chunks[3:])))
    with serving(tmp_path, _config(tmp_path, fake)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "Tell me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage = None
        try:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                    if pieces == ["Once ", "upon "]:
                        assert not gate.is_set()  # read before the upstream finished
                        gate.set()
                if chunk.usage is not None:
                    usage = chunk.usage
        finally:
            gate.set()
    assert "".join(pieces) == "Once upon a time."
    assert usage is not None and usage.prompt_tokens == 9
    assert _count(tmp_path, "SELECT COUNT(*) FROM reservations") == 0


def test_curl_gets_the_same_answers(tmp_path: Path, fake: FakeServer) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("From curl."))
    with serving(tmp_path, _config(tmp_path, fake)) as url:
        body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "Hi"}]})
        out = subprocess.run(
            [
                "curl",
                "-sS",
                "-H",
                "content-type: application/json",
                "-d",
                body,
                f"{url}/v1/chat/completions",
            ],
            capture_output=True,
            text=True,
            timeout=PATIENCE_S,
            check=True,
        )
    assert json.loads(out.stdout)["choices"][0]["message"]["content"] == "From curl."


# -- fallback --------------------------------------------------------------------------------


def test_fallback_quota_then_bad_key_then_served_and_the_next_request_skips_both(
    tmp_path: Path, fake: FakeServer
) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.insufficient_quota())
    fake.route("POST", "/b/v1/chat/completions", default=openai_shapes.invalid_key())
    fake.route("POST", "/c/v1/chat/completions", default=openai_shapes.chat_ok("from c"))
    with serving(tmp_path, _config(tmp_path, fake, ("a", "b", "c"))) as url:
        for _ in range(2):
            response = httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": "Hi"}]},
                timeout=PATIENCE_S,
            )
            assert response.status_code == 200
            assert response.headers["x-sched-provider"] == "c"
            assert response.json()["choices"][0]["message"]["content"] == "from c"
    assert fake.count("/a/v1/chat/completions") == 1
    assert fake.count("/b/v1/chat/completions") == 1
    assert fake.count("/c/v1/chat/completions") == 2


def test_every_provider_out_of_quota_is_a_429_with_the_earliest_reset(
    tmp_path: Path, fake: FakeServer
) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("one"))
    providers = {
        "a": openai_provider(fake.base_url("a"), "A_KEY", "{metric: requests, limit: 1, per: day}")
    }
    config = write_config(tmp_path / "providers.yaml", providers, {"text": ["a"]})
    with serving(tmp_path, config) as url:
        request = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}
        first = httpx.post(f"{url}/v1/chat/completions", json=request, timeout=PATIENCE_S)
        second = httpx.post(f"{url}/v1/chat/completions", json=request, timeout=PATIENCE_S)
    assert first.status_code == 200
    assert second.status_code == 429
    error = second.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "quota" in error["message"]
    seconds_to_midnight = 86400 - int(time.time()) % 86400
    assert abs(int(second.headers["retry-after"]) - seconds_to_midnight) <= 5
    assert fake.count("/a/v1/chat/completions") == 1


# -- bad requests and tokens -------------------------------------------------------------------


def test_bad_requests_get_the_documented_status_and_reserve_nothing(
    tmp_path: Path, fake: FakeServer
) -> None:
    config = _config(tmp_path, fake)
    with serving(tmp_path, config) as url:
        chat = f"{url}/v1/chat/completions"
        results = {
            "malformed JSON": httpx.post(chat, content=b"{not json", timeout=PATIENCE_S),
            "not an object": httpx.post(chat, json=[1, 2], timeout=PATIENCE_S),
            "no messages": httpx.post(chat, json={"model": "auto"}, timeout=PATIENCE_S),
            "bad temperature": httpx.post(
                chat,
                json={"messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
                timeout=PATIENCE_S,
            ),
            "remote image": httpx.post(
                chat,
                json={
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "image_url",
                                    "image_url": {"url": "http://169.254.169.254/x"},
                                }
                            ],
                        }
                    ]
                },
                timeout=PATIENCE_S,
            ),
            "unknown route": httpx.post(
                chat,
                json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]},
                timeout=PATIENCE_S,
            ),
            "huge upload": _claims_two_gigabytes(f"{url}/v1/audio/transcriptions"),
            "not audio": httpx.post(
                f"{url}/v1/audio/transcriptions",
                files={"file": ("x.wav", b"not audio at all", "audio/wav")},
                data={"model": "auto"},
                timeout=PATIENCE_S,
            ),
        }
    expected = {
        "malformed JSON": (400, "invalid_json"),
        "not an object": (400, "invalid_json"),
        "no messages": (400, None),
        "bad temperature": (400, None),
        "remote image": (400, None),
        "unknown route": (404, "model_not_found"),
        "huge upload": (413, "too_large"),
        "not audio": (400, None),
    }
    for name, response in results.items():
        status, code = expected[name]
        assert response.status_code == status, (name, response.text)
        error = response.json()["error"]
        assert error["message"] and error["type"], name
        if code is not None:
            assert error["code"] == code, name
    assert fake.requests() == []
    assert _count(tmp_path, "SELECT COUNT(*) FROM calls") == 0
    assert _count(tmp_path, "SELECT COUNT(*) FROM usage_windows") == 0


def _claims_two_gigabytes(url: str) -> httpx.Response:
    """A request whose headers announce 2 GB: refused before the body is read."""
    with socket.create_connection(("127.0.0.1", int(url.split(":")[2].split("/")[0]))) as sock:
        head = (
            "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {2 * 1024**3}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + b"--b\r\n")
        raw = b""
        sock.settimeout(PATIENCE_S)
        while chunk := sock.recv(65536):
            raw += chunk
    status = int(raw.split(b" ", 2)[1])
    body = raw.split(b"\r\n\r\n", 1)[1]
    if b"\r\n" in body and body[:1].isalnum() and not body.startswith(b"{"):  # chunked
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return httpx.Response(status, content=body)


def test_tokens_guard_the_gateway_and_their_limits_hold(tmp_path: Path, fake: FakeServer) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("ok"))
    config = _config(tmp_path, fake)
    db = str(tmp_path / "quota.db")
    created = run_cli(
        "--config",
        str(config),
        "--db",
        db,
        "tokens",
        "create",
        "bot",
        "--requests-per-day",
        "2",
        "--json",
    )
    assert created.code == 0, created.stderr
    secret = str(json.loads(created.stdout)["token"])
    revoked = run_cli("--config", str(config), "--db", db, "tokens", "create", "old", "--json")
    old_secret = str(json.loads(revoked.stdout)["token"])
    assert run_cli("--config", str(config), "--db", db, "tokens", "revoke", "old").code == 0
    request = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}
    with serving(tmp_path, config) as url:
        chat = f"{url}/v1/chat/completions"

        def post(token: str | None) -> httpx.Response:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            return httpx.post(chat, json=request, headers=headers, timeout=PATIENCE_S)

        assert post(None).status_code == 401
        assert post("sk-sched-wrong").status_code == 401
        assert post(old_secret).json()["error"]["code"] == "token_not_usable"
        assert [post(secret).status_code for _ in range(3)] == [200, 200, 429]
    assert fake.count("/a/v1/chat/completions") == 2
    listed = run_cli("--config", str(config), "--db", db, "tokens", "list", "--json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)["tokens"]}
    assert rows["bot"]["requests_today"] == 2 and rows["old"]["state"].endswith("revoked")
    with _ledger(tmp_path) as ledger:
        hashes = ledger.read("SELECT secret_hash FROM gateway_tokens")
    assert all(secret not in str(row) for row in hashes)  # only hashes are stored


def test_a_public_address_without_a_token_is_refused(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    out = run_cli(
        "--config", str(config), "--db", str(tmp_path / "q.db"), "serve", "--host", "0.0.0.0"
    )
    assert out.code == 2
    assert "without a gateway token" in out.stderr


# -- disconnects --------------------------------------------------------------------------------


def test_a_client_gone_mid_stream_settles_the_hold_by_what_was_streamed(
    tmp_path: Path, fake: FakeServer
) -> None:
    gate = threading.Event()
    chunks = openai_shapes.chat_stream_chunks(["Partial ", "answer"])
    fake.route("POST", "/a/v1/chat/completions", Reply(chunks=(*chunks[:2], gate, *chunks[2:])))
    try:
        with serving(tmp_path, _config(tmp_path, fake)) as url:
            body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "x"}]}
            with httpx.stream(
                "POST", f"{url}/v1/chat/completions", json=body, timeout=PATIENCE_S
            ) as response:
                for line in response.iter_lines():
                    if "Partial" in line:
                        break  # hang up while the upstream is still writing
            deadline = time.monotonic() + PATIENCE_S
            while _count(tmp_path, "SELECT COUNT(*) FROM calls") == 0:
                assert time.monotonic() < deadline, "the abandoned stream was never settled"
                time.sleep(0.05)
    finally:
        gate.set()
    with _ledger(tmp_path) as ledger:
        ((outcome, usage),) = ledger.read("SELECT outcome, usage FROM calls")
        assert ledger.read("SELECT COUNT(*) FROM reservations") == [(0,)]
    assert outcome == "interrupted"
    assert json.loads(str(usage))["output_tokens"] >= 1  # what was streamed is counted


def test_health_and_metrics(tmp_path: Path, fake: FakeServer) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("ok"))
    providers = {
        "a": openai_provider(fake.base_url("a"), "A_KEY", "{metric: requests, limit: 10, per: day}")
    }
    config = write_config(tmp_path / "providers.yaml", providers, {"text": ["a"]})
    with serving(tmp_path, config) as url:
        request = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=request).status_code == 200
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics").text
    assert health["status"] == "ok" and health["providers"]["text"] == ["a"]
    assert 'sched_quota_remaining{provider="a",metric="requests",per="day"} 9' in metrics
    assert 'sched_attempts_total{provider="a",outcome="ok"' in metrics
    assert "sched_spend_usd" in metrics


# -- exactness under load ------------------------------------------------------------------------


@pytest.mark.slow
def test_four_workers_and_64_clients_never_pass_a_limit_or_a_token_budget(
    tmp_path: Path, fake: FakeServer, db_target: str
) -> None:
    """2000 requests from 64 concurrent clients through 4 workers: the upstream allows 500 a day
    and costs $0.004 a call; half the clients use a token with $1.00 a day (250 calls), half an
    unlimited one. Every answer is a 200 or a documented 429, the upstream sees exactly 500, and
    the budgeted token's spend never passes $1.00."""
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("ok"))
    providers = {
        "a": openai_provider(
            fake.base_url("a"), "A_KEY", "{metric: requests, limit: 500, per: day}"
        )
        + "\npricing: {usd_per_request: 0.004}"
    }
    config = write_config(
        tmp_path / "providers.yaml", providers, {"text": ["a"]}, settings="allow_paid: true"
    )
    base = ["--config", str(config), "--db", db_target, "tokens", "create"]
    budgeted = json.loads(run_cli(*base, "budgeted", "--daily-usd", "1.00", "--json").stdout)
    unlimited = json.loads(run_cli(*base, "unlimited", "--json").stdout)
    secrets = [str(budgeted["token"]), str(unlimited["token"])]
    request = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}

    async def load(url: str) -> list[tuple[int, int]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=PATIENCE_S) as client:
            gate = asyncio.Semaphore(64)

            async def one(i: int) -> tuple[int, int]:
                which = i % 2
                async with gate:
                    response = await client.post(
                        f"{url}/v1/chat/completions",
                        json=request,
                        headers={"authorization": f"Bearer {secrets[which]}"},
                    )
                if response.status_code == 429:
                    assert int(response.headers["retry-after"]) >= 1
                return which, response.status_code

            return list(await asyncio.gather(*(one(i) for i in range(2000))))

    with serving(tmp_path, config, "--workers", "4", db=db_target) as url:
        results = asyncio.run(load(url))
    statuses = [status for _, status in results]
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) == 500
    assert fake.count("/a/v1/chat/completions") == 500
    assert sum(1 for which, s in results if which == 0 and s == 200) <= 250
    listed = run_cli("--config", str(config), "--db", db_target, "tokens", "list", "--json")
    use = {row["name"]: row for row in json.loads(listed.stdout)["tokens"]}
    assert use["budgeted"]["usd_today"] <= 1.00 + 1e-9
    with Ledger.open(db_target) as ledger:
        assert ledger.read("SELECT COUNT(*) FROM reservations") == [(0,)]
        assert ledger.read("SELECT COUNT(*) FROM calls WHERE outcome = 'ok'") == [(500,)]
