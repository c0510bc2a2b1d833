"""`sched history` reads the calls table back (filters, --json, fits 80 columns); `sched
--version` and shell completion work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine

from tests.cli_inprocess import sched
from tests.conftest import clean_env, openai_provider, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply


@pytest.fixture
def two_runs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fake: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three hours ago `a` failed auth and `b` answered; now `b` answers again."""
    providers = {
        name: openai_provider(fake.base_url(name), f"{name.upper()}_KEY", model=f"model-{name}")
        for name in ("a", "b")
    }
    write_config(tmp_path / "providers.yaml", providers, {"text": ["a", "b"]})
    monkeypatch.setenv("A_KEY", "sk-a-test-key-history")
    monkeypatch.setenv("B_KEY", "sk-b-test-key-history")
    fake.route("POST", shapes.chat_path("a"), Reply(401, json={"error": "bad key"}))
    fake.route("POST", shapes.chat_path("b"), default=shapes.chat_ok("fine"))
    with time_machine.travel(-3 * 3600, tick=True):
        assert sched(capsys, "run", "text", "first").code == 0
    assert sched(capsys, "run", "text", "second").code == 0


def test_history_lists_the_calls_oldest_first(
    capsys: pytest.CaptureFixture[str], two_runs: None
) -> None:
    result = sched(capsys, "history", "--json")
    assert result.code == 0
    calls = result.json()["calls"]
    assert isinstance(calls, list)
    assert [(c["provider"], c["outcome"], c["model"]) for c in calls] == [
        ("a", "auth_failed", "model-a"),
        ("b", "ok", "m"),  # the model the answer names
        ("b", "ok", "m"),
    ]  # `a` was disabled after its auth failure, so the second run went straight to `b`
    assert calls[0]["ts"] < calls[1]["ts"] < calls[2]["ts"]
    assert calls[1]["usage"]["tokens"] > 0 and calls[1]["task"] == "text"
    assert "sk-a" not in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--failed",), [("a", "auth_failed")]),
        (("--outcome", "ok"), [("b", "ok"), ("b", "ok")]),
        (("--provider", "a"), [("a", "auth_failed")]),
        (("--since", "1h"), [("b", "ok")]),
        (("--since", "1d", "-n", "1"), [("b", "ok")]),
        (("--task", "image"), []),
    ],
)
def test_history_filters(
    capsys: pytest.CaptureFixture[str],
    two_runs: None,
    args: tuple[str, ...],
    expected: list[tuple[str, str]],
) -> None:
    result = sched(capsys, "history", *args, "--json")
    assert result.code == 0, result.stderr
    calls = result.json()["calls"]
    assert [(c["provider"], c["outcome"]) for c in calls] == expected  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since 'yesterday': expected a duration"),
        (("--outcome", "fine"), "--outcome 'fine': expected one of ok, quota_exhausted"),
        (("--provider", "zz"), "unknown provider 'zz' for --provider; known: a, b"),
    ],
)
def test_history_bad_filters_are_input_errors(
    capsys: pytest.CaptureFixture[str], two_runs: None, args: tuple[str, ...], message: str
) -> None:
    result = sched(capsys, "history", *args)
    assert result.code == 2
    assert result.stderr.startswith(f"sched: error: {message}")


def test_history_table_fits_80_columns(
    capsys: pytest.CaptureFixture[str], two_runs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = sched(capsys, "history")
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if line.startswith("┃"))
    for column in ("time (UTC)", "provider", "outcome", "cost"):
        assert column in header
    assert sum(line.startswith("│") for line in lines) == 3  # one line per call


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    result = sched(capsys, "--version")
    assert (result.code, result.stdout) == (0, f"sched {version('api-scheduler')}\n")


def test_shell_completion_completes_commands(tmp_path: Path) -> None:
    env = clean_env(_SCHED_COMPLETE="complete_bash", COMP_WORDS="sched run st", COMP_CWORD="2")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "scheduler"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.split() == ["stt"]


def test_install_completion_writes_the_shell_script(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHELL", "/bin/bash")
    result = sched(capsys, "--install-completion")
    assert result.code == 0, result.stderr
    assert "_SCHED_COMPLETE" in (tmp_path / ".bash_completions" / "sched.sh").read_text()
    assert ".bash_completions/sched.sh" in (tmp_path / ".bashrc").read_text()
