"""With --json every failure is one JSON object on stdout (ok false, error, error_type,
exit_code, the attempts when there were any) besides its one `sched: error:` line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_inprocess import sched
from tests.conftest import openai_provider, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply


def _one_object(stdout: str) -> dict[str, object]:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout  # one object, nothing else on stdout
    data: dict[str, object] = json.loads(lines[0])
    return data


def _check(result_stdout: str, stderr: str, code: int, error_type: str) -> dict[str, object]:
    data = _one_object(result_stdout)
    assert data["ok"] is False
    assert data["exit_code"] == code
    assert data["error_type"] == error_type
    assert stderr.strip().splitlines()[-1] == f"sched: error: {data['error']}"
    return data


def test_input_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_config(
        tmp_path / "providers.yaml", {"a": openai_provider("http://x", "A_KEY")}, {"text": ["a"]}
    )
    result = sched(capsys, "run", "text", "   ", "--json")
    assert result.code == 2
    data = _check(result.stdout, result.stderr, 2, "input")
    assert data["error"] == "the prompt is empty"


def test_config_error_names_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  a: [unclosed\n", encoding="utf-8")
    result = sched(capsys, "--config", str(bad), "cost", "report", "--json")
    assert result.code == 2
    data = _check(result.stdout, result.stderr, 2, "config")
    assert data["file"] == str(bad) and data["line"] == 3
    assert "invalid YAML" in str(data["error"])


def test_ledger_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_config(
        tmp_path / "providers.yaml", {"a": openai_provider("http://x", "A_KEY")}, {"text": ["a"]}
    )
    (tmp_path / "quota.db").write_bytes(b"this is not a SQLite database at all" * 100)
    result = sched(capsys, "quota", "report", "--json")
    assert result.code == 2
    data = _check(result.stdout, result.stderr, 2, "ledger")
    assert "quota.db" in str(data["error"])


def test_usage_error_is_one_line_and_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = sched(capsys, "run", "text", "hi", "--json", "--temperature", "9")
    assert result.code == 2
    data = _check(result.stdout, result.stderr, 2, "usage")
    assert "--temperature" in str(data["error"]) and "sched run text --help" in str(data["error"])
    assert "╭" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    # an unknown option stops parsing before --json is read: the words still ask for JSON
    result = sched(capsys, "run", "text", "--json", "--no-such-option", "hi")
    assert _check(result.stdout, result.stderr, 2, "usage")["error"] == (
        "No such option: --no-such-option (see 'sched run text --help')"
    )


def test_no_provider_available_keeps_the_attempts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_config(
        tmp_path / "providers.yaml",
        {"a": openai_provider("http://127.0.0.1:9/v1", "A_KEY")},
        {"text": ["a"]},
    )
    result = sched(capsys, "run", "text", "hi", "--json")
    assert result.code == 3
    data = _check(result.stdout, result.stderr, 3, "no_provider")
    assert data["attempts"] == [
        {"provider": "a", "outcome": "skipped", "error": "no A_KEY", "latency_ms": 0.0,
         "cost_usd": 0.0}
    ]  # fmt: skip


def test_every_provider_failed_keeps_the_attempts(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fake: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(
        tmp_path / "providers.yaml",
        {"a": openai_provider(fake.base_url("a"), "A_KEY")},
        {"text": ["a"]},
    )
    fake.route("POST", shapes.chat_path("a"), default=Reply(401, json={"error": "bad key"}))
    monkeypatch.setenv("A_KEY", "sk-wrong-key-for-this-test")
    result = sched(capsys, "run", "text", "hi", "--json")
    assert result.code == 1
    data = _check(result.stdout, result.stderr, 1, "all_failed")
    attempts = data["attempts"]
    assert isinstance(attempts, list) and [a["outcome"] for a in attempts] == ["auth_failed"]
    assert "sk-wrong" not in result.stdout + result.stderr


def test_without_json_an_error_prints_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = sched(capsys, "run", "text", "   ")
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == "sched: error: the prompt is empty\n"
