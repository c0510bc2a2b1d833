"""Bad input: one line naming the problem, exit code 2, no traceback, the ledger untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer

GOOD_RULE = "{metric: requests, limit: 10, per: day}"


def _snapshot(db: Path) -> str:
    """Every byte of the ledger, its WAL included."""
    digest = hashlib.sha256()
    for path in sorted(db.parent.glob(db.name + "*")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def ledger_in_use(tmp_path: Path, fake: FakeServer) -> Path:
    write_config(
        tmp_path / "providers.yaml",
        {"a": openai_provider(fake.base_url("a"), "A_KEY", quotas=GOOD_RULE)},
        {"text": ["a"]},
    )
    fake.route("POST", shapes.chat_path("a"), shapes.chat_ok("fine"))
    assert run_cli("run", "text", "hello", env=clean_env(A_KEY="sk-a")).code == 0
    return tmp_path / "quota.db"


def _bad_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


VALID_PROVIDER = "  a:\n    adapter: openai\n    api_key_env: A_KEY\n    models: {text: m}\n"
QUOTAS = "    quotas:\n      - "


@pytest.mark.parametrize(
    ("args", "config_text", "expected"),
    [
        (["run", "text", ""], None, "sched: error: the prompt is empty"),
        (["run", "text", "   \n"], None, "sched: error: the prompt is empty"),
        (
            ["run", "text", "hi", "--provider", "nosuch"],
            None,
            "sched: error: unknown provider 'nosuch' for --provider; known: a",
        ),
        (
            ["run", "text", "hi"],
            "providers:\n  a: [unclosed\n",
            "sched: error: {bad}:3: invalid YAML: did not find expected ',' or ']'",
        ),
        (
            ["run", "text", "hi"],
            f"providers:\n{VALID_PROVIDER}tasks:\n  text: [a, ghost]\n",
            "sched: error: {bad}:7: tasks.text[1]: unknown provider 'ghost'; defined providers: a",
        ),
        (
            ["run", "text", "hi"],
            f"providers:\n{VALID_PROVIDER}{QUOTAS}{{metric: requests, limit: -5, per: day}}\n"
            "tasks:\n  text: [a]\n",
            "sched: error: {bad}:7: providers.a.quotas[0].limit: "
            "input should be greater than 0, got -5",
        ),
        (
            ["quota", "report"],
            f"providers:\n{VALID_PROVIDER}{QUOTAS}{{metric: requests, limit: 5, per: weekly}}\n",
            "sched: error: {bad}:7: providers.a.quotas[0].per: expected one of minute, hour, day, "
            "month, total, got 'weekly'",
        ),
    ],
    ids=[
        "empty-prompt",
        "blank-prompt",
        "unknown-provider",
        "malformed-yaml",
        "unknown-provider-in-tasks",
        "negative-limit",
        "unknown-period",
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(
    ledger_in_use: Path, tmp_path: Path, args: list[str], config_text: str | None, expected: str
) -> None:
    before = _snapshot(ledger_in_use)
    prefix: list[str] = []
    bad = ""
    if config_text is not None:
        bad = _bad_config(tmp_path, config_text)
        prefix = ["--config", bad]

    result = run_cli(*prefix, *args, env=clean_env(A_KEY="sk-a"))

    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [expected.format(bad=bad)]
    assert _snapshot(ledger_in_use) == before


def test_missing_config_file_says_how_to_fix_it(tmp_path: Path) -> None:
    result = run_cli("--config", "nope.yaml", "config", "check")
    assert result.code == 2
    assert result.stderr == (
        "sched: error: nope.yaml: config file not found (from --config); "
        "pass --config PATH or set SCHED_CONFIG\n"
    )


def test_a_directory_as_ledger_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    result = run_cli("--db", "dir.db", "quota", "report")
    assert result.code == 2
    assert "dir.db: is a directory, expected a ledger file" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_ledger_is_a_clear_error_and_left_alone(tmp_path: Path) -> None:
    corrupt = tmp_path / "quota.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    before = corrupt.read_bytes()
    result = run_cli("quota", "report")
    assert result.code == 2
    assert result.stderr.startswith("sched: error: quota.db: the ledger file is corrupt")
    assert "move it aside" in result.stderr
    assert corrupt.read_bytes() == before


def test_a_billable_provider_without_a_price_fails_config_check(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "providers:\n"
        "  gemini:\n"
        "    adapter: gemini\n"
        "    api_key_env: GOOGLE_GEMINI_API_KEY\n"
        "    quotas:\n"
        "      - {metric: requests, limit: 20, per: day, tz: America/Los_Angeles, free: true}\n"
        "    pricing: {}\n",
        encoding="utf-8",
    )
    result = run_cli("--config", str(path), "config", "check")
    assert result.code == 2
    assert result.stderr == (
        f"sched: error: {path}:7: providers.gemini.pricing: gemini has a free allowance "
        "(quotas[0] is free: true) but no price: usage past it would be billed at an unknown "
        "price; add its list prices, or drop `free: true` to make the limit a hard stop\n"
    )
