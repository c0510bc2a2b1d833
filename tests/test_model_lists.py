"""Each list endpoint through a wire-level fake in the provider's documented shape
(tests/fakes/model_lists.py names the page each shape is from), and `sched models` end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from scheduler.config import parse_config
from scheduler.config.schema import ProviderConfig
from scheduler.ledger import Ledger
from scheduler.ledger.models import mark_retired, published_prices
from scheduler.providers.listing import ModelInfo, NoListing
from scheduler.providers.registry import adapter_class
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import model_lists
from tests.fakes.server import FakeServer


def _list(fake_url: str, adapter: str, key: str | None = "k-000000000001") -> list[ModelInfo]:
    config = ProviderConfig.model_validate({"adapter": adapter, "base_url": fake_url})
    cls = adapter_class(adapter)
    assert cls is not None

    async def go() -> list[ModelInfo]:
        async with httpx.AsyncClient() as http:
            adapter_ = cls(name="p", config=config, api_key=key, http=http, timeout_s=5)
            return await adapter_.list_models()

    return asyncio.run(go())


def test_openai_compatible_models(fake: FakeServer) -> None:
    fake.route("GET", "/groq/v1/models", model_lists.openai_models(["openai/gpt-oss-120b", "w"]))
    models = _list(fake.base_url("groq"), "openai")
    assert [m.id for m in models] == ["openai/gpt-oss-120b", "w"]
    (request,) = fake.requests("/groq/v1/models")
    assert request.headers["authorization"] == "Bearer k-000000000001"


def test_openrouter_models_with_prices_and_free_ids(fake: FakeServer) -> None:
    fake.route("GET", "/or/v1/models", model_lists.openrouter_models())
    free, paid = _list(fake.base_url("or"), "openai")
    assert (free.id, free.free, free.usd_per_mtok_input) == (
        "meta-llama/llama-3.3-70b-instruct:free",
        True,
        0.0,
    )
    assert paid.free is False and paid.kinds == {"text"}
    assert paid.usd_per_mtok_input == pytest.approx(0.15)
    assert paid.usd_per_mtok_output == pytest.approx(0.6)


def test_together_bare_list_with_types(fake: FakeServer) -> None:
    fake.route("GET", "/t/v1/models", model_lists.together_models())
    chat, image = _list(fake.base_url("t"), "openai")
    assert (chat.kinds, chat.usd_per_mtok_input) == ({"text"}, 0.88)
    assert image.kinds == {"image"}


def test_anthropic_pages_through_after_id(fake: FakeServer) -> None:
    fake.route(
        "GET",
        "/v1/models",
        model_lists.anthropic_models_page(["claude-haiku-4-5", "claude-sonnet-4-5"], has_more=True),
        model_lists.anthropic_models_page(["claude-opus-4-1"], has_more=False),
    )
    models = _list(fake.url, "anthropic")
    assert [m.id for m in models] == ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1"]
    first, second = fake.requests("/v1/models")
    assert first.headers["x-api-key"] == "k-000000000001"
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert second.query["after_id"] == ["claude-sonnet-4-5"]


def test_gemini_models_list_pages_and_strips_the_prefix(fake: FakeServer) -> None:
    fake.route(
        "GET",
        "/v1beta/models",
        model_lists.gemini_models_page(["gemini-3.5-flash"], next_page="p2"),
        model_lists.gemini_models_page(["gemini-3-flash"]),
    )
    models = _list(fake.url, "gemini")
    assert [(m.id, "text" in m.kinds) for m in models] == [
        ("gemini-3.5-flash", True),
        ("gemini-3-flash", True),
    ]
    first, second = fake.requests("/v1beta/models")
    assert first.headers["x-goog-api-key"] == "k-000000000001"
    assert second.query["pageToken"] == ["p2"]


def test_cohere_models(fake: FakeServer) -> None:
    fake.route("GET", "/v1/models", model_lists.cohere_models(["command-a-03-2025"]))
    (model,) = _list(fake.url, "cohere")
    assert (model.id, model.kinds) == ("command-a-03-2025", {"text"})
    assert fake.requests("/v1/models")[0].headers["authorization"] == "Bearer k-000000000001"


def test_a_failed_list_is_classified_like_a_call(fake: FakeServer) -> None:
    fake.route("GET", "/x/v1/models", model_lists.groq_model_not_found("x").__class__(status=401))
    from scheduler.errors import AuthFailed

    with pytest.raises(AuthFailed):
        _list(fake.base_url("x"), "openai")


def test_an_adapter_without_a_list_endpoint_says_so() -> None:
    with pytest.raises(NoListing, match="stability"):
        _list("http://unused.test", "stability")


# -- sched models, end to end -----------------------------------------------------------------


def test_sched_models_marks_present_missing_retired_and_skips_without_key(
    tmp_path: Path, fake: FakeServer
) -> None:
    groq = (
        f"adapter: openai\nbase_url: {fake.base_url('groq')}\napi_key_env: GROQ_API_KEY\n"
        "models: {text: [llama-3.3-70b-versatile, openai/gpt-oss-120b, openai/gpt-oss-20b]}"
    )
    openrouter = (
        f"adapter: openai\nbase_url: {fake.base_url('or')}\napi_key_env: OPENROUTER_API_KEY\n"
        'models: {text: ["meta-llama/llama-3.3-70b-instruct:free"]}\npricing: {}'
    )
    nokey = "adapter: anthropic\napi_key_env: ANTHROPIC_API_KEY\nmodels: {text: claude-haiku-4-5}"
    write_config(
        tmp_path / "providers.yaml",
        {"groq": groq, "openrouter": openrouter, "anthropic": nokey},
        {"text": ["groq", "openrouter", "anthropic"]},
    )
    listed = model_lists.openai_models(["openai/gpt-oss-120b"])
    fake.route("GET", "/groq/v1/models", default=listed)
    fake.route("GET", "/or/v1/models", default=model_lists.openrouter_models())
    ledger = Ledger.open(str(tmp_path / "quota.db"))
    mark_retired(ledger, "groq", "llama-3.3-70b-versatile", "HTTP 404: The model does not exist")
    env = clean_env(GROQ_API_KEY="gsk_000000000000000001", OPENROUTER_API_KEY="sk-or-0000001")

    result = run_cli("models", "--json", env=env)
    assert result.code == 0, result.stderr
    by_name = {p["provider"]: p for p in result.json()["providers"]}  # type: ignore[union-attr]
    states = {c["model"]: c["state"] for c in by_name["groq"]["configured"]}
    assert states == {
        "llama-3.3-70b-versatile": "retired",
        "openai/gpt-oss-120b": "present",
        "openai/gpt-oss-20b": "missing",
    }
    assert (by_name["anthropic"]["status"], by_name["anthropic"]["reason"]) == (
        "skipped",
        "no ANTHROPIC_API_KEY",
    )
    assert "gsk_000000000000000001" not in result.stdout
    # The listing is stored, with OpenRouter's published prices.
    prices = published_prices(ledger, "openrouter")
    assert prices["openai/gpt-4o-mini"].usd_per_mtok_input == pytest.approx(0.15)

    table = run_cli("models", "groq", "--prices", env=env)
    assert table.code == 0, table.stderr
    assert "retired" in table.stdout and "missing" in table.stdout and "present" in table.stdout
    unknown = run_cli("models", "nope", env=env)
    assert unknown.code == 2 and "unknown provider 'nope'" in unknown.stderr


def test_the_default_table_parses_model_lists() -> None:
    config = parse_config(
        "providers:\n  g: {adapter: openai, models: {text: [a, b]}}\ntasks: {text: [g]}\n"
    )
    assert config.providers["g"].models_for("text") == ("a", "b")
