"""`sched config check` against OpenRouter's published prices: a table price below the one the
catalog published at the last listing (OpenRouter `GET /api/v1/models`, USD per token, in the
shape of tests/fakes/model_lists.py) is a warning that names the model and the key to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.catalog import underpriced
from scheduler.config.loader import parse_config
from scheduler.ledger import Ledger
from scheduler.ledger.models import Listed, record_listing
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import model_lists
from tests.fakes.server import FakeServer

MINI = "openai/gpt-4o-mini"  # published at $0.15 in, $0.60 out per Mtok by the fake
FREE = "meta-llama/llama-3.3-70b-instruct:free"  # published at $0


def test_config_check_warns_after_a_listing_and_creates_no_ledger_before(
    tmp_path: Path, fake: FakeServer
) -> None:
    openrouter = (
        f"adapter: openai\nbase_url: {fake.base_url('or')}\napi_key_env: OPENROUTER_API_KEY\n"
        f'models: {{text: ["{FREE}", "{MINI}"]}}\n'
        "pricing: {usd_per_mtok_input: 0.10, usd_per_mtok_output: 0.60}"
    )
    write_config(tmp_path / "providers.yaml", {"openrouter": openrouter}, {"text": ["openrouter"]})
    fake.route("GET", "/or/v1/models", default=model_lists.openrouter_models())
    env = clean_env(OPENROUTER_API_KEY="sk-or-v1-price-check-0001")

    before = run_cli("config", "check", "--json", env=env)
    assert before.code == 0, before.stderr
    assert before.json()["price_warnings"] == []
    assert not (tmp_path / "quota.db").exists()  # a config check does not create the ledger

    listed = run_cli("models", "openrouter", "--json", env=env)
    assert listed.code == 0, listed.stderr
    after = run_cli("config", "check", "--json", env=env)
    assert after.code == 0, after.stderr
    [warning] = after.json()["price_warnings"]  # type: ignore[misc]
    assert warning.startswith(
        f"openrouter: {MINI} input is priced $0.1 per Mtok in the table, $0.15 in openrouter's"
        " catalog (listed "
    )
    assert warning.endswith(f"set providers.openrouter.pricing.models.{MINI}")
    plain = run_cli("config", "check", env=env)
    assert plain.code == 0
    assert f"warning: openrouter: {MINI} input is priced $0.1" in plain.stderr
    assert "sk-or-v1-price-check-0001" not in plain.stdout + plain.stderr + after.stdout


def _config(pricing: str) -> str:
    return (
        "providers:\n"
        f"  openrouter: {{adapter: openai, models: {{text: [{FREE}, {MINI}]}},"
        f" pricing: {pricing}}}\n"
        "  groq: {adapter: openai, models: {text: m}, pricing: {usd_per_mtok_input: 0.01}}\n"
        "tasks: {text: [openrouter, groq]}\n"
    )


@pytest.mark.parametrize(
    ("pricing", "gaps"),
    [
        # the model's own prices at or above the published ones: nothing to say
        (f"{{models: {{{MINI}: {{usd_per_mtok_input: 0.15, usd_per_mtok_output: 0.7}}}}}}", []),
        # no price at all: the calls would be counted free, both units are under
        ("{}", [(MINI, "input", 0.0, 0.15), (MINI, "output", 0.0, 0.6)]),
        # the provider's output price covers it, the model's input price does not
        (
            f"{{usd_per_mtok_output: 1.0, models: {{{MINI}: {{usd_per_mtok_input: 0.149}}}}}}",
            [(MINI, "input", 0.149, 0.15)],
        ),
    ],
    ids=["covered", "unpriced", "one-unit"],
)
def test_underpriced_compares_each_unit_of_each_named_model(
    db_target: str, pricing: str, gaps: list[tuple[str, str, float, float]]
) -> None:
    config = parse_config(_config(pricing))
    ledger = Ledger.open(db_target)
    record_listing(
        ledger,
        "openrouter",
        [Listed(FREE, 0.0, 0.0), Listed(MINI, 0.15, 0.6), Listed("x/other", 9.0, 9.0)],
    )
    record_listing(ledger, "groq", [Listed("m")])  # Groq publishes no prices
    found = [
        (g.provider, g.model, g.unit, g.table_usd_per_mtok, g.published_usd_per_mtok)
        for g in underpriced(config, ledger)
    ]
    assert found == [("openrouter", *gap) for gap in gaps]
    ledger.close()
