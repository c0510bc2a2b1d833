"""`sched providers check`: one small call of each provider's own kind, through the ledger."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import clean_env, openai_provider, run_cli, write_config
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
