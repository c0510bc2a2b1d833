"""Keys never reach output, logs, reports or the ledger, even when a provider echoes them back."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.config import load_config
from tests.cli_inprocess import sched
from tests.conftest import REPO, clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply


def _fake_keys() -> dict[str, str]:
    """A recognisable fake key for every provider of the default table."""
    config, _ = load_config(REPO / "scheduler" / "providers.yaml")
    return {
        provider.api_key_env: f"sk-LEAKCHECK{index:02d}{name.upper()}0123456789abcdef"
        for index, (name, provider) in enumerate(config.providers.items())
        if provider.api_key_env
    }


def test_no_command_output_or_ledger_byte_contains_a_key(
    tmp_path: Path,
    fake: FakeServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = _fake_keys()
    echo_key = keys["GROQ_API_KEY"]
    write_config(
        tmp_path / "providers.yaml",
        {
            "groq": openai_provider(fake.base_url("groq"), "GROQ_API_KEY"),
            "mistral": openai_provider(fake.base_url("mistral"), "MISTRAL_API_KEY"),
            "cohere": openai_provider(fake.base_url("cohere"), "COHERE_API_KEY"),
        },
        {"text": ["groq", "mistral", "cohere"]},
    )
    # groq echoes the key in its 401 (as OpenAI's "Incorrect API key provided: sk-..." does),
    # mistral echoes it in a 500 body, cohere answers.
    fake.route("POST", shapes.chat_path("groq"), shapes.invalid_key(echo_key))
    fake.route(
        "POST",
        shapes.chat_path("mistral"),
        *[
            Reply(
                500,
                json={"error": {"message": f"upstream failed for key {keys['MISTRAL_API_KEY']}"}},
            )
        ]
        * 3,
    )
    fake.route("POST", shapes.chat_path("cohere"), default=shapes.chat_ok("fine"))
    # The first command is a real process (its logging set up as a user's is); the others run
    # through the same entry point in this process, with the same keys in the environment.
    outputs = [run_cli("run", "text", "hello", "-v", env=clean_env(**keys))]
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    outputs += [
        sched(capsys, *args)
        for args in (
            ("run", "text", "hello", "--json", "-v"),
            ("run", "text", "hello", "-p", "groq"),
            ("quota", "report"),
            ("quota", "report", "--json"),
            ("providers", "list"),
            ("providers", "list", "--json"),
            ("cost", "report", "--json"),
            ("config", "check"),
            ("--config", "missing.yaml", "run", "text", "x"),
            ("cron", "run", "failure-report"),
            ("cron", "run", "quota-check"),
            ("cron", "run", "daily-reset"),
            ("cron", "list", "--json"),
        )
    ]
    assert outputs[1].code == 0 and outputs[3].code == 0  # the in-process runs really ran
    assert outputs[0].code == 0 and "cohere: ok" in outputs[0].stderr  # the runs really ran
    texts = [out.stdout + out.stderr for out in outputs]
    ledger_bytes = b"".join(path.read_bytes() for path in tmp_path.glob("quota.db*"))
    assert ledger_bytes  # the ledger exists and holds the failed calls' errors
    reports = list((tmp_path / "reports").glob("*.json"))
    assert reports, "the failure report wrote no file"
    texts += [path.read_text() for path in reports]
    assert all(path.stat().st_mode & 0o077 == 0 for path in reports)  # owner only
    for variable, key in keys.items():
        fragment = key[:20]  # even a prefix of a key is a leak
        for text in texts:
            assert fragment not in text, f"{variable} shown in output"
        assert fragment.encode() not in ledger_bytes, f"{variable} stored in quota.db"
    assert "HTTP 401: Incorrect API key provided: ***" in outputs[0].stderr


def test_ledger_and_its_wal_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    assert run_cli("quota", "report").code == 0
    files = sorted(tmp_path.glob("quota.db*"))
    assert files and all(path.stat().st_mode & 0o077 == 0 for path in files), [
        (path.name, oct(path.stat().st_mode)) for path in files
    ]
