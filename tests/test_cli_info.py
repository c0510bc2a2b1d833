"""The informational commands: providers list (masked keys), config check, fast --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.config import load_config
from scheduler.providers.registry import adapter_class
from tests.conftest import REPO, clean_env, run_cli

SECRET = "gsk_live_RECOGNISABLE_0123456789abcdef"


def test_providers_list_masks_keys_and_says_where_they_came_from(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MISTRAL_API_KEY=mist_FROM_DOTENV_0123456789xyzw\n")
    env = clean_env(GROQ_API_KEY=SECRET)

    table = run_cli("providers", "list", env=env)
    as_json = run_cli("providers", "list", "--json", env=env)

    assert table.code == as_json.code == 0
    for output in (table.stdout, as_json.stdout):
        assert SECRET not in output and "RECOGNISABLE" not in output
        assert "FROM_DOTENV" not in output
    rows = {row["provider"]: row for row in as_json.json()["providers"]}  # type: ignore[union-attr]
    assert len(rows) == 20
    assert (rows["groq"]["key"], rows["groq"]["key_source"], rows["groq"]["status"]) == (
        "…cdef",
        "environment",
        "configured",
    )
    assert (rows["mistral"]["key"], rows["mistral"]["key_source"]) == ("…xyzw", ".env")
    assert (rows["cohere"]["status"], rows["cohere"]["key"]) == ("no key", None)
    assert rows["playht"]["status"] == "off"
    assert rows["local"]["status"] == "configured"  # needs no key
    assert rows["deepinfra"]["tasks"] == ["text", "image"]
    assert "…cdef" in table.stdout and "COHERE_API_KEY not set" in table.stdout


def test_config_check_reports_the_source_and_the_table() -> None:
    result = run_cli("config", "check", "--json", cwd=REPO)
    data = result.json()
    assert result.code == 0
    assert data["source"] == "./providers.yaml"
    assert data["providers"] == 20
    assert data["tasks"]["text"][0] == "groq" and data["tasks"]["text"][-1] == "local"  # type: ignore[index]
    missing = {
        name
        for name, provider in load_config(REPO / "providers.yaml")[0].providers.items()
        if adapter_class(provider.adapter) is None
    }
    assert set(data["adapters_not_available"]) == missing  # type: ignore[arg-type]

    plain = run_cli("config", "check")  # an empty directory: falls back to the packaged table
    assert plain.code == 0
    assert "(packaged default)" in plain.stdout.splitlines()[0]
    assert "text: groq > mistral > cohere" in plain.stdout


# pydantic is not listed: typer 0.29 itself imports it (typer._adapters) to convert annotated
# parameters when a sub-command's help is built.
HEAVY = (
    "openai",
    "httpx",
    "sqlite3",
    "sqlmodel",
    "sqlalchemy",
    "tenacity",
    "google",
    "cohere",
    "replicate",
    "assemblyai",
    "av",
    "PIL",
    "apscheduler",
)


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["run", "stt", "--help"], ["run", "image", "--help"]]
)
def test_help_imports_no_provider_sdk_database_or_http_client(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 0 and "Usage: sched" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    top_level = {name.split(".")[0] for name in imported}
    assert not top_level & set(HEAVY), f"{sorted(top_level & set(HEAVY))} imported by {args}"
