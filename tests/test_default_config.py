"""The shipped priority table: it parses, and it says exactly what DESIGN.md and the docs say."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import pytest

from scheduler.config.loader import parse_config
from scheduler.config.schema import Config, LocalOptions
from scheduler.tasks import TASK_KINDS

ROOT = Path(__file__).parents[1]
ENV_EXAMPLE = ROOT / ".env.example"

HOSTED = (
    "groq",
    "mistral",
    "cohere",
    "together",
    "ai21",
    "openrouter",
    "gemini",
    "deepinfra",
    "fireworks",
    "anthropic",
    "openai",
    "perplexity",
    "stability",
    "replicate",
    "huggingface",
    "assemblyai",
    "gladia",
    "playht",
    "elevenlabs",
)

# DESIGN.md's table less the closed APIs (AI21, Perplexity's Sonar, Play.ht: issue 12), which
# stay defined, disabled with a note, but out of every order so no trace starts with them.
DESIGN_TASKS = {
    "text": (
        "groq",
        "mistral",
        "cohere",
        "together",
        "openrouter",
        "gemini",
        "deepinfra",
        "fireworks",
        "anthropic",
        "openai",
        "local",
    ),
    "image": ("stability", "replicate", "deepinfra", "huggingface", "fireworks", "local"),
    "stt": ("assemblyai", "gladia", "huggingface", "local"),
    "tts": ("elevenlabs", "local"),
    "multimodal": ("gemini", "replicate", "gladia", "local"),
}

# The seed's key names (plus Play.ht's, which the seed's .env list left out).
KEY_ENV = {
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "cohere": "COHERE_API_KEY",
    "together": "TOGETHER_API_KEY",
    "ai21": "AI21_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "gemini": "GOOGLE_GEMINI_API_KEY",
    "deepinfra": "DEEPINFRA_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "perplexity": "PERPLEXITY_API_KEY",
    "stability": "STABILITY_API_KEY",
    "replicate": "REPLICATE_API_KEY",
    "huggingface": "HUGGINGFACE_API_KEY",
    "assemblyai": "ASSEMBLYAI_API_KEY",
    "gladia": "GLADIA_API_KEY",
    "playht": "PLAYHT_API_KEY",
    "elevenlabs": "ELEVENLABS_API_KEY",
}

ADAPTERS = {
    "groq": "openai",
    "mistral": "openai",
    "cohere": "cohere",
    "together": "openai",
    "ai21": "ai21",
    "openrouter": "openai",
    "gemini": "gemini",
    "deepinfra": "openai",
    "fireworks": "fireworks",  # OpenAI-compatible chat plus its FLUX image workflow
    "anthropic": "anthropic",
    "openai": "openai",
    "perplexity": "openai",
    "stability": "stability",
    "replicate": "replicate",
    "huggingface": "huggingface",
    "assemblyai": "assemblyai",
    "gladia": "gladia",
    "playht": "playht",
    "elevenlabs": "elevenlabs",
    "local": "local",
}

BASE_URLS = {
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "cohere": "https://api.cohere.com",
    "together": "https://api.together.xyz/v1",
    "ai21": "https://api.ai21.com",
    "openrouter": "https://openrouter.ai/api/v1",
    "gemini": "https://generativelanguage.googleapis.com",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "fireworks": "https://api.fireworks.ai/inference/v1",
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
    "perplexity": "https://api.perplexity.ai",
    "stability": "https://api.stability.ai",
    "replicate": "https://api.replicate.com",
    "huggingface": "https://router.huggingface.co",
    "assemblyai": "https://api.assemblyai.com",
    "gladia": "https://api.gladia.io",
    "playht": "https://api.play.ht",
    "elevenlabs": "https://api.elevenlabs.io",
    "local": "http://localhost:11434/v1",
}

# Every listed provider has a model for each task kind it is listed for.
NO_MODEL: set[tuple[str, str]] = set()

# Providers that never bill: local, the closed Play.ht, OpenRouter's `:free` model.
NEVER_BILL = {"local", "playht", "openrouter"}


@pytest.fixture(scope="module")
def config() -> Config:
    packaged = resources.files("scheduler").joinpath("providers.yaml")
    return parse_config(packaged.read_text(encoding="utf-8"), file="scheduler/providers.yaml")


@pytest.fixture(scope="module")
def env_example_keys() -> set[str]:
    """Variables assigned (not commented out) in .env.example."""
    pattern = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))


def test_root_providers_yaml_is_the_packaged_file() -> None:
    link = ROOT / "providers.yaml"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "scheduler" / "providers.yaml").resolve()


def test_defines_exactly_the_nineteen_hosted_providers_and_local(config: Config) -> None:
    assert len(HOSTED) == 19
    assert set(config.providers) == {*HOSTED, "local"}


def test_tasks_are_designs_table(config: Config) -> None:
    assert dict(config.tasks) == DESIGN_TASKS


def test_every_task_list_names_defined_providers_and_ends_with_local(config: Config) -> None:
    assert set(config.tasks) == set(TASK_KINDS)
    for kind, names in config.tasks.items():
        assert set(names) <= set(config.providers), kind
        assert names[-1] == "local", kind
        assert names.count("local") == 1, kind


def test_settings_are_designs_block(config: Config) -> None:
    settings = config.settings
    assert settings.strategy == "priority"
    assert settings.allow_paid is False
    assert (settings.budget.daily_usd, settings.budget.monthly_usd) == (1.0, 20.0)
    assert settings.prefer_local_below_load == 0.8
    assert settings.timeout_s == 60
    assert settings.retries == 2
    assert settings.max_retry_wait_s == 10
    assert settings.lease_s is None


def test_adapters_and_base_urls(config: Config) -> None:
    assert {name: p.adapter for name, p in config.providers.items()} == ADAPTERS
    assert {name: p.base_url for name, p in config.providers.items()} == BASE_URLS
    for name, provider in config.providers.items():
        assert provider.base_url is not None
        assert not provider.base_url.endswith("/chat/completions"), name
        if provider.adapter not in ("openai", "fireworks", "local"):  # OpenAI-compatible base URLs
            assert urlparse(provider.base_url).path == "", f"{name}: scheme and host only"


def test_key_variables_are_the_seeds(config: Config) -> None:
    keys = {name: p.api_key_env for name, p in config.providers.items() if name != "local"}
    assert keys == KEY_ENV
    assert config.providers["local"].api_key_env is None


def test_every_key_variable_is_in_env_example(config: Config, env_example_keys: set[str]) -> None:
    for name, provider in config.providers.items():
        if name != "local":
            assert provider.api_key_env in env_example_keys, name


def test_env_example_holds_only_provider_keys(config: Config, env_example_keys: set[str]) -> None:
    configured = {p.api_key_env for p in config.providers.values() if p.api_key_env}
    assert env_example_keys == configured
    assert len(env_example_keys) == 19


def test_env_example_values_are_empty() -> None:
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert value == "", name


def test_env_example_documents_sched_variables() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for variable in ("SCHED_ENV", "SCHED_CONFIG", "SCHED_DB"):
        assert re.search(rf"^# {variable}=$", text, re.MULTILINE), variable


@pytest.mark.parametrize(
    ("name", "closed_on"),
    [("playht", "2025-12-31"), ("ai21", "2026-08-09"), ("perplexity", "2026-09-27")],
)
def test_closed_apis_are_disabled_with_a_note_and_in_no_order(
    config: Config, name: str, closed_on: str
) -> None:
    provider = config.providers[name]
    assert provider.enabled is False
    assert provider.note is not None and closed_on in provider.note
    assert all(name not in names for names in config.tasks.values())


def test_only_the_closed_apis_are_disabled(config: Config) -> None:
    enabled = {name for name, p in config.providers.items() if p.enabled}
    assert enabled == set(config.providers) - {"playht", "ai21", "perplexity"}


def test_groq_defaults_to_the_gpt_oss_models_priced_per_model(config: Config) -> None:
    groq = config.providers["groq"]
    assert groq.models_for("text") == ("openai/gpt-oss-120b", "openai/gpt-oss-20b")
    assert groq.pricing_for("openai/gpt-oss-20b").usd_per_mtok_input == 0.10
    assert groq.pricing_for("openai/gpt-oss-120b").usd_per_mtok_input == 0.15


def test_no_default_names_a_model_known_to_be_shut_down(config: Config) -> None:
    gone = {"llama-3.3-70b-versatile", "gemini-2.5-flash", "gpt-image-1", "jamba-mini", "sonar"}
    enabled = [p for p in config.providers.values() if p.enabled]
    named = {model for p in enabled for models in p.models.values() for model in models}
    assert named & gone == set()


def test_groq_has_a_daily_request_rule_at_utc_midnight(config: Config) -> None:
    daily = [
        rule
        for rule in config.providers["groq"].quotas
        if rule.metric == "requests" and rule.per == "day"
    ]
    assert len(daily) == 1
    assert (daily[0].limit, daily[0].reset, daily[0].tz) == (1000, "00:00", "UTC")


def test_gemini_daily_rule_resets_in_los_angeles(config: Config) -> None:
    daily = [rule for rule in config.providers["gemini"].quotas if rule.per == "day"]
    assert daily
    for rule in daily:
        assert (rule.reset, rule.tz) == ("00:00", "America/Los_Angeles")


def test_openrouter_free_models_day_is_the_utc_day(config: Config) -> None:
    openrouter = config.providers["openrouter"]
    # Free models only: `:free` ids, or OpenRouter's router over the free models.
    assert all(m.endswith(":free") or m == "openrouter/free" for m in openrouter.models["text"])
    daily = [rule for rule in openrouter.quotas if rule.per == "day"]
    assert [(r.metric, r.limit, r.tz) for r in daily] == [("requests", 50, "UTC")]


def test_every_listed_provider_has_a_model_for_its_task(config: Config) -> None:
    missing = {
        (name, kind)
        for kind, names in config.tasks.items()
        for name in names
        if kind not in config.providers[name].models
    }
    assert missing == NO_MODEL


def test_local_serves_every_kind_on_this_machine(config: Config) -> None:
    local = config.providers["local"]
    assert dict(local.models) == {
        "text": ("llama3.2",),
        "image": ("x/z-image-turbo",),
        "stt": ("tiny.en",),
        "tts": ("en-us",),
        "multimodal": ("llava",),
    }
    assert local.quotas == ()
    assert local.options == LocalOptions()  # the defaults, shown as comments in the file


def test_only_providers_that_never_bill_have_empty_pricing(config: Config) -> None:
    empty = {
        name
        for name, p in config.providers.items()
        if not p.pricing.model_dump(exclude_defaults=True)
    }
    assert empty == NEVER_BILL


def test_free_allowances_are_never_per_minute(config: Config) -> None:
    for name, provider in config.providers.items():
        for rule in provider.quotas:
            if rule.per in ("minute", "hour"):
                assert not rule.free, f"{name}: {rule.rule_id} is a rate limit, not an allowance"


def test_a_free_allowance_has_a_price_to_continue_at(config: Config) -> None:
    for name, provider in config.providers.items():
        if any(rule.free for rule in provider.quotas):
            assert provider.pricing.model_dump(exclude_defaults=True), name


def test_rule_ids_are_unique_per_provider(config: Config) -> None:
    for name, provider in config.providers.items():
        ids = [rule.rule_id for rule in provider.quotas]
        assert len(ids) == len(set(ids)), name
