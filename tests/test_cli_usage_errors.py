"""One error style: typer's usage errors are one `sched: error:` line (exit 2) like every other
error, a misspelt config key gets a did-you-mean, and `sched config check FILE` works."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.config.loader import parse_config
from scheduler.errors import ConfigError
from tests.cli_inprocess import sched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("run", "text", "hi", "--temperature", "9"),
            "Invalid value for '--temperature' / '-t': Input should be less than or equal to 2",
        ),
        (("run", "stt"), "Missing argument 'FILE' (see"),
        (("run", "image", "a cat"), "Missing option '--output' / '-o'"),
        (("quota", "report", "--bogus"), "No such option: --bogus"),
        (("nosuchcommand",), "No such command 'nosuchcommand'"),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    result = sched(capsys, *args)
    assert result.code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()  # no usage block, no boxed panel
    assert line.startswith(f"sched: error: {message}"), line
    assert line.endswith("--help')")


def test_a_group_without_a_command_still_shows_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = sched(capsys, "run")
    assert result.code == 2 and "sched run" in result.stdout + result.stderr


_TYPO = "providers:\n  a:\n    adaptr: openai\n    api_key_env: A_KEY\ntasks:\n  text: [a]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_TYPO, "providers.yaml:3: providers.a.adaptr: unknown key; did you mean 'adapter'?"),
        (
            "settings:\n  alow_paid: true\nproviders: {}\ntasks: {}\n",
            "providers.yaml:2: settings.alow_paid: unknown key; did you mean 'allow_paid'?",
        ),
        (
            "providers:\n  a:\n    adapter: openai\n    quotas:\n"
            "      - {metric: requests, limt: 5, per: day}\n",
            "providers.yaml:5: providers.a.quotas[0].limt: unknown key; did you mean 'limit'?",
        ),
        (
            "providers:\n  a:\n    adapter: openai\n    zzzzzz: 1\n",
            "providers.yaml:4: providers.a.zzzzzz: unknown key (check its spelling)",
        ),
    ],
)
def test_unknown_keys_get_a_did_you_mean(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value) == expected


def test_config_check_takes_the_file_as_an_argument(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "mine.yaml").write_text(_TYPO, encoding="utf-8")
    result = sched(capsys, "config", "check", "mine.yaml")
    assert result.code == 2
    assert result.stderr == (
        "sched: error: mine.yaml:3: providers.a.adaptr: unknown key; did you mean 'adapter'?\n"
    )
    (tmp_path / "good.yaml").write_text(_TYPO.replace("adaptr", "adapter"), encoding="utf-8")
    result = sched(capsys, "config", "check", "good.yaml", "--json")
    assert result.code == 0
    assert result.json()["config"] == "good.yaml" and result.json()["providers"] == 1


def test_help_placeholders_read_like_words(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (("run", "stt"), ("run", "text"), ("run", "image"), ("tokens", "create")):
        result = sched(capsys, *args, "--help")
        assert result.code == 0
        for typer_word in ("<str>", "<bool>", "<int", "<float", "<list", "<path>"):
            assert typer_word not in result.stdout, result.stdout
    stt = sched(capsys, "run", "stt", "--help").stdout
    assert "{FILE}..." in stt and "--jobs" in stt and " N " in stt
    text = sched(capsys, "run", "text", "--help").stdout
    assert "PROMPT" in text and "USD" in text and "TEXT" in text
