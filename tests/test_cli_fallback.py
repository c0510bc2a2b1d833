"""Fallback end to end: the real CLI against a local OpenAI-compatible fake of four providers."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer

KEYS = {
    "A_KEY": "sk-a-000000000001",
    "B_KEY": "sk-b-000000000002",
    "C_KEY": "sk-c-03",
    "D_KEY": "sk-d",
}


def _config(tmp_path: Path, fake: FakeServer) -> Path:
    daily = '{metric: requests, limit: 1000, per: day, reset: "00:00", tz: America/Los_Angeles}'
    return write_config(
        tmp_path / "providers.yaml",
        {
            "a": openai_provider(fake.base_url("a"), "A_KEY", quotas=daily),
            "b": openai_provider(fake.base_url("b"), "B_KEY"),
            "c": openai_provider(fake.base_url("c"), "C_KEY"),
            "d": openai_provider(fake.base_url("d"), "D_KEY"),
        },
        {"text": ["a", "b", "c", "d"]},
        settings="retries: 2\ntimeout_s: 10",
    )


def test_falls_over_a_quota_b_auth_c_server_error_to_d(tmp_path: Path, fake: FakeServer) -> None:
    _config(tmp_path, fake)
    fake.route("POST", shapes.chat_path("a"), default=shapes.insufficient_quota())
    fake.route("POST", shapes.chat_path("b"), default=shapes.invalid_key())
    fake.route("POST", shapes.chat_path("c"), *[shapes.server_error()] * 3)
    fake.route("POST", shapes.chat_path("d"), shapes.chat_ok("hello from d", model="d-model"))
    env = clean_env(**KEYS)

    result = run_cli("run", "text", "hi", "--json", env=env)

    assert result.code == 0, result.stderr
    data = result.json()
    assert data["provider"] == "d"
    assert data["output"] == "hello from d"
    assert data["model"] == "d-model"
    assert data["usage"] == {"requests": 1, "input_tokens": 5, "output_tokens": 7, "tokens": 12}
    outcomes = [(a["provider"], a["outcome"]) for a in data["attempts"]]  # type: ignore[index, union-attr]
    assert outcomes == [
        ("a", "quota_exhausted"),
        ("b", "auth_failed"),
        ("c", "transient"),
        ("d", "ok"),
    ]
    # A and B fail over at once; C is retried twice (retries: 2) and then never called again.
    assert fake.count(shapes.chat_path("a")) == 1
    assert fake.count(shapes.chat_path("b")) == 1
    assert fake.count(shapes.chat_path("c")) == 3
    assert fake.count(shapes.chat_path("d")) == 1
    assert fake.requests(shapes.chat_path("d"))[0].headers["authorization"] == "Bearer sk-d"
    assert "a: quota exhausted" in result.stderr and "d: ok" in result.stderr

    report = run_cli("quota", "report", "--json", env=env).json()
    by_name = {p["provider"]: p for p in report["providers"]}  # type: ignore[union-attr]
    a, b, c, d = (by_name[name] for name in "abcd")
    assert a["status"] == "exhausted"
    # Exhausted until its own window's next reset: midnight in Los Angeles, shown in UTC.
    window = a["windows"][0]
    assert window["resets_at"] > time.time()
    assert a["until"] == time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(window["resets_at"]))
    assert b["status"] == "disabled" and "HTTP 401" in b["detail"]
    assert c["status"] == "cooling_down"
    assert (c["calls_24h"], c["failures_24h"]) == (1, 1)
    assert (d["status"], d["calls_24h"], d["failures_24h"]) == ("ok", 1, 0)

    # A second run skips A, B and C without calling them and goes straight to D.
    fake.route("POST", shapes.chat_path("d"), shapes.chat_ok("again"))
    again = run_cli("run", "text", "hi", "--json", env=env).json()
    assert [(x["provider"], x["outcome"]) for x in again["attempts"]] == [  # type: ignore[union-attr]
        ("a", "skipped"),
        ("b", "skipped"),
        ("c", "skipped"),
        ("d", "ok"),
    ]
    assert (fake.count(shapes.chat_path("a")), fake.count(shapes.chat_path("b"))) == (1, 1)
    assert fake.count(shapes.chat_path("c")) == 3


def test_disabled_provider_comes_back_when_its_key_changes(
    tmp_path: Path, fake: FakeServer
) -> None:
    _config(tmp_path, fake)
    fake.route("POST", shapes.chat_path("b"), shapes.invalid_key(), shapes.chat_ok("b works"))
    bad = run_cli("run", "text", "hi", "--provider", "b", env=clean_env(B_KEY="sk-old"))
    assert bad.code == 1
    still_bad = run_cli("run", "text", "hi", "--provider", "b", env=clean_env(B_KEY="sk-old"))
    assert still_bad.code == 3 and "disabled" in still_bad.stderr
    fixed = run_cli("run", "text", "hi", "--provider", "b", env=clean_env(B_KEY="sk-new"))
    assert (fixed.code, fixed.stdout.strip()) == (0, "b works")
    assert fake.count(shapes.chat_path("b")) == 2


def test_all_skipped_exits_3_and_all_failed_exits_1(tmp_path: Path, fake: FakeServer) -> None:
    _config(tmp_path, fake)
    nothing = run_cli("run", "text", "hi", "--json")
    assert nothing.code == 3
    assert [a["outcome"] for a in nothing.json()["attempts"]] == ["skipped"] * 4  # type: ignore[union-attr]
    assert "a: no A_KEY" in nothing.stderr

    for prefix in "abcd":
        fake.route("POST", shapes.chat_path(prefix), default=shapes.context_too_long())
    failed = run_cli("run", "text", "hi", env=clean_env(**KEYS))
    assert failed.code == 1
    assert "every provider failed" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_prompt_from_stdin_and_system_prompt(tmp_path: Path, fake: FakeServer) -> None:
    _config(tmp_path, fake)
    fake.route("POST", shapes.chat_path("a"), shapes.chat_ok("piped"))
    result = run_cli(
        "run", "text", "-", "--system", "be brief", "--max-tokens", "50",
        env=clean_env(**KEYS), input="from stdin\n",
    )  # fmt: skip
    assert (result.code, result.stdout) == (0, "piped\n")
    body = fake.requests(shapes.chat_path("a"))[0].json()
    assert body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "from stdin"},
        ],
        "max_tokens": 50,
    }
