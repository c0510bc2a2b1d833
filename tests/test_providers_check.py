"""`sched providers check`: one small call of each provider's own kind, through the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_inprocess import sched
from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes import local_shapes
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer


def test_check_calls_each_configured_provider_once_and_reports_remaining(
    tmp_path: Path, fake: FakeServer
) -> None:
    write_config(
        tmp_path / "providers.yaml",
        {
            "a": openai_provider(fake.base_url("a"), "A_KEY"),
            "b": openai_provider(fake.base_url("b"), "B_KEY"),
            "c": openai_provider(fake.base_url("c"), "C_KEY"),
        },
        {"text": ["a", "b", "c"]},
    )
    remaining = {"x-ratelimit-remaining-requests": "999", "x-ratelimit-reset-requests": "1m0s"}
    fake.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("OK", headers=remaining))
    fake.route("POST", shapes.chat_path("b"), shapes.invalid_key())
    env = clean_env(A_KEY="sk-a", B_KEY="sk-b")  # c has no key: not checked by default

    result = run_cli("providers", "check", "--json", env=env)

    assert result.code == 1  # one provider failed its check
    rows = {row["provider"]: row for row in result.json()["providers"]}  # type: ignore[union-attr]
    assert set(rows) == {"a", "b"}
    assert (rows["a"]["kind"], rows["a"]["outcome"]) == ("text", "ok")
    assert rows["a"]["reported_remaining"] == {"requests": 999.0}
    assert (rows["b"]["outcome"], rows["b"]["error"]) == (
        "auth_failed",
        "HTTP 401: Incorrect API key provided: sk-abc...wxyz. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    )
    body = fake.requests(shapes.chat_path("a"))[0].json()
    assert body["max_tokens"] == 5 and body["messages"][0]["content"] == "Reply with the word OK."
    assert fake.count(shapes.chat_path("c")) == 0

    named = run_cli("providers", "check", "a", env=env)
    assert named.code == 0 and "ok" in named.stdout and "requests left" in named.stdout
    unknown = run_cli("providers", "check", "zzz", env=env)
    assert (unknown.code, unknown.stderr.splitlines()[0]) == (
        2,
        "sched: error: unknown provider 'zzz'; known: a, b, c",
    )


def test_local_is_checked_for_each_kind_it_serves_one_row_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Local's text server is not running; its speech engines are in-process and work: the
    check says so per kind instead of calling local skipped after its text path alone."""
    port = local_shapes.closed_port()
    local = (
        f"adapter: local\nbase_url: http://127.0.0.1:{port}/v1\n"
        "models: {text: llama3.2, stt: tiny.en, tts: en-us}\n"
        # VAD drops the probe's tone at once; without it tiny.en works through every temperature
        # fallback on a second of 440 Hz (11 s on an idle 2-core machine).
        "options: {device: cpu, vad_filter: true}"
    )
    write_config(
        tmp_path / "providers.yaml",
        {"local": local},
        {"text": ["local"], "stt": ["local"], "tts": ["local"]},
    )

    result = sched(capsys, "providers", "check", "--json")

    assert result.code == 1  # one kind of local is not available
    rows = [(r["provider"], r["kind"], r["outcome"]) for r in result.json()["providers"]]  # type: ignore[union-attr]
    assert rows == [("local", "text", "skipped"), ("local", "stt", "ok"), ("local", "tts", "ok")]
    text_row = result.json()["providers"][0]  # type: ignore[index]
    assert f"not reachable at http://127.0.0.1:{port}/v1" in text_row["error"]

    table = sched(capsys, "providers", "check", "local")
    lines = [line for line in table.stdout.splitlines() if "│ local " in line]
    assert len(lines) == 3, table.stdout
