"""Issue 11, class 5: keys go only to the provider's own origin, and are shown masked.

Two real servers on 127.0.0.1: the provider's (A) answers every request with a redirect to a
second origin (B, another port), which records what arrives. For every adapter that talks HTTP,
no byte of the key may reach B, in a header, the query, the path or the body. Then the CLI
rows: a redirected call through the real `sched` (still one failed attempt, counted), keys that
cannot be HTTP header values, and credentials in URLs that must be masked where shown.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scheduler import probes
from scheduler.config.schema import ProviderConfig
from scheduler.errors import ProviderError
from scheduler.providers.http import make_client
from scheduler.providers.registry import adapter_class
from scheduler.tasks import ImageTask, SttTask, Task, TextTask, TtsTask
from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes.server import FakeServer, Recorded, Reply

KEY = "sk-redirect-SECRET-0123456789abcdef"
FRAGMENTS = (KEY, KEY[-12:], "SECRET")  # any of these at B is a leak


@dataclass(frozen=True)
class Row:
    adapter: str
    kind: str
    model: str
    follows: bool = True  # False: the SDK's own client does not follow redirects at all
    prefix: str = ""  # appended to A's URL for the base_url


ROWS = [
    Row("openai", "text", "m", prefix="/v1"),
    Row("openai", "image", "dall-e-3", prefix="/v1"),
    Row("openai", "tts", "tts-1", prefix="/v1"),
    Row("openai", "stt", "whisper-1", prefix="/v1"),
    Row("anthropic", "text", "claude-haiku-4-5"),
    Row("gemini", "text", "gemini-2.5-flash"),
    Row("cohere", "text", "command-r"),
    Row("ai21", "text", "jamba-mini"),
    Row("stability", "image", "core"),
    Row("replicate", "image", "owner/model", follows=False),
    Row("huggingface", "image", "owner/model"),
    Row("fireworks", "image", "flux-1-schnell-fp8"),
    Row("assemblyai", "stt", "universal", follows=False),
    Row("gladia", "stt", "solaria-1"),
    Row("elevenlabs", "tts", "eleven_turbo_v2_5"),
    Row("playht", "tts", "Play3.0-mini"),
    Row("local", "text", "llama3", prefix="/v1"),
]


def _task(kind: str, tmp_path: Path) -> Task:
    if kind == "text":
        return TextTask(prompt="hello", max_tokens=8)
    if kind == "image":
        return ImageTask(prompt="a red square")
    if kind == "tts":
        return TtsTask(text="hello")
    audio = tmp_path / "tone.wav"
    audio.write_bytes(probes.tone_wav())
    return SttTask(audio=audio, audio_seconds=1.0, mime_type="audio/wav")


def _leaks(requests: list[Recorded]) -> list[str]:
    found = []
    for request in requests:
        places = {
            "path": request.path,
            "query": repr(request.query),
            "body": request.body.decode("latin-1"),
            **{f"header {name}": value for name, value in request.headers.items()},
        }
        for where, text in places.items():
            found += [f"{where}: {piece!r}" for piece in FRAGMENTS if piece in text]
    return found


def _call(row: Row, base_url: str, task: Task) -> Any:
    cls = adapter_class(row.adapter)
    assert cls is not None

    async def go() -> Any:
        async with make_client(5.0) as http:
            adapter = cls(
                name=f"p-{row.adapter}",
                config=ProviderConfig(
                    adapter=row.adapter,  # type: ignore[arg-type]
                    base_url=base_url,
                    models={row.kind: row.model},  # type: ignore[dict-item]
                ),
                api_key=KEY,
                http=http,
                timeout_s=5.0,
            )
            adapter.poll_interval_s = 0.01  # type: ignore[misc]
            try:
                return await adapter.run(task, model=row.model)
            except ProviderError as exc:
                return exc

    return asyncio.run(go())


@pytest.fixture
def other() -> Any:
    with FakeServer() as server:
        yield server


@pytest.mark.parametrize("status", [307, 302])
@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.adapter}-{r.kind}")
def test_no_key_byte_follows_a_redirect_to_another_origin(
    row: Row,
    status: int,
    fake: FakeServer,
    other: FakeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLAYHT_USER_ID", "user-1")
    # A secret-named query parameter does not travel to another origin either.
    fake.otherwise(Reply(status, headers={"location": f"{other.url}/landing?key=x&keep=1"}))
    outcome = _call(row, fake.url + row.prefix, _task(row.kind, tmp_path))

    assert fake.requests(), "the provider's origin was never called"
    assert _leaks(fake.requests()), "the key did not even reach its own origin"
    arrived = other.requests()
    assert not _leaks(arrived)
    if row.follows:
        assert arrived, "the redirect was not followed: this row tests nothing"
        assert all(r.path == "/landing" and r.query == {"keep": ["1"]} for r in arrived)
    # B answers 599 to everything: a failure of the taxonomy, never a crash or a success.
    assert isinstance(outcome, ProviderError), outcome


def test_a_redirect_within_the_origin_keeps_the_key(fake: FakeServer) -> None:
    """The guard strips only when the origin changes: a provider moving a path still works."""
    fake.route("POST", "/v1/chat/completions", Reply(307, headers={"location": "/v2/chat"}))
    fake.route(
        "POST",
        "/v2/chat",
        Reply(json={"model": "m", "choices": [{"message": {"content": "hi"}}], "usage": {}}),
    )
    result = _call(Row("openai", "text", "m"), f"{fake.url}/v1", TextTask(prompt="hello"))
    assert not isinstance(result, ProviderError), result
    assert result.output == "hi"
    assert fake.requests("/v2/chat")[0].headers["authorization"] == f"Bearer {KEY}"


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("sched: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _calls(db: Path) -> list[tuple[str, str]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT provider, outcome FROM calls").fetchall()


def test_cli_redirected_call_is_one_counted_failure_and_leaks_nothing(
    tmp_path: Path, fake: FakeServer, other: FakeServer
) -> None:
    fake.otherwise(Reply(307, headers={"location": f"{other.url}/steal"}))
    config = write_config(
        tmp_path / "p.yaml",
        {"a": openai_provider(f"{fake.url}/v1", "A_API_KEY")},
        {"text": ["a"]},
        settings="retries: 0",
    )
    result = run_cli("--config", str(config), "run", "text", "hi", env=clean_env(A_API_KEY=KEY))
    assert result.code == 1
    _one_line_error(result.stderr)
    assert other.requests() and not _leaks(other.requests())
    assert KEY not in result.stdout + result.stderr
    assert _calls(tmp_path / "quota.db") == [("a", "transient")]


BAD_KEYS = [
    pytest.param(KEY + "\n", "a newline or control character", id="trailing-newline"),
    pytest.param("sk-\r\nX-Evil: 1", "a newline or control character", id="header-injection"),
    pytest.param("sk-abc\tdef-0123456789", "a newline or control character", id="tab"),
    pytest.param("sk-abc\x1b[2J-0123456789", "a newline or control character", id="escape"),
    pytest.param("sk-“quoted”-0123456789", "a non-ASCII character", id="curly-quotes"),
    pytest.param("sk-0123456789\u00a0", "a non-ASCII character", id="nbsp"),
]


@pytest.mark.parametrize(("key", "what"), BAD_KEYS)
def test_a_key_that_is_no_header_value_is_a_config_error_naming_the_variable(
    tmp_path: Path, fake: FakeServer, key: str, what: str
) -> None:
    config = write_config(
        tmp_path / "p.yaml", {"a": openai_provider(f"{fake.url}/v1", "A_API_KEY")}, {"text": ["a"]}
    )
    result = run_cli("--config", str(config), "run", "text", "hi", env=clean_env(A_API_KEY=key))
    assert result.code == 2, result.stderr
    line = _one_line_error(result.stderr)
    assert "A_API_KEY (from environment)" in line and what in line
    assert key.strip() not in result.stderr
    assert not fake.requests()  # refused before any call: no cooldown, no quota
    assert [row for row in _calls(tmp_path / "quota.db") if row[1] != "ok"] == []


def test_a_bad_key_in_dotenv_names_the_file(tmp_path: Path, fake: FakeServer) -> None:
    (tmp_path / ".env").write_text('A_API_KEY="sk-\u00e9t\u00e9-0123456789"\n', encoding="utf-8")
    config = write_config(
        tmp_path / "p.yaml", {"a": openai_provider(f"{fake.url}/v1", "A_API_KEY")}, {"text": ["a"]}
    )
    result = run_cli("--config", str(config), "providers", "list", cwd=tmp_path)
    assert result.code == 2
    assert "A_API_KEY (from .env) holds a non-ASCII character" in _one_line_error(result.stderr)


PASSWORD = "hunter2-pw"
MASKED: list[tuple[str, Callable[[Path], list[str]], str]] = [
    (
        "postgres-userinfo",
        lambda _: [
            "--db",
            f"postgresql+psycopg://sched:{PASSWORD}@127.0.0.1:1/x",
            "quota",
            "report",
        ],
        "sched:***@127.0.0.1:1/x",
    ),
    (
        "postgres-query-password",
        lambda _: [
            "--db",
            f"postgresql+psycopg://127.0.0.1:1/x?user=sched&password={PASSWORD}",
            "quota",
            "report",
        ],
        "password=***",
    ),
    (
        "base-url-not-http",
        lambda tmp: [
            "--config",
            str(
                write_config(
                    tmp / "p.yaml",
                    {"a": openai_provider(f"ftp://u:{PASSWORD}@h/v1", "A_API_KEY")},
                    {"text": ["a"]},
                )
            ),
            "config",
            "check",
        ],
        "ftp://u:***@h/v1",
    ),
    (
        "local-server-down",
        lambda tmp: [
            "--config",
            str(
                write_config(
                    tmp / "p.yaml",
                    {
                        "local": "adapter: local\n"
                        f"base_url: http://u:{PASSWORD}@127.0.0.1:1/v1\n"
                        "models: {text: llama3}"
                    },
                    {"text": ["local"]},
                )
            ),
            "run",
            "text",
            "hi",
        ],
        "http://u:***@127.0.0.1:1/v1",
    ),
]


@pytest.mark.parametrize(("args", "shown"), [m[1:] for m in MASKED], ids=[m[0] for m in MASKED])
def test_credentials_in_a_url_are_masked_where_it_is_shown(
    tmp_path: Path, args: Callable[[Path], list[str]], shown: str
) -> None:
    result = run_cli(*args(tmp_path))
    assert result.code != 0
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert shown in result.stderr, result.stderr
