"""The configuration layer: providers.yaml parsing and errors, file resolution, API keys."""

from __future__ import annotations

import hashlib
import re
from datetime import time
from importlib import resources
from pathlib import Path

import pytest

from scheduler.config.keys import KeySource, KeyStore, fingerprint, mask
from scheduler.config.loader import load_config, parse_config, resolve_config_path
from scheduler.config.schema import Config, Pricing, ProviderConfig, QuotaRule, Settings
from scheduler.errors import ConfigError
from scheduler.windows import WindowSpec

VALID = """\
providers:
  groq:
    adapter: openai
    base_url: https://api.groq.com/openai/v1/
    api_key_env: GROQ_API_KEY
    models: {text: llama-3.3-70b-versatile, stt: whisper-large-v3-turbo}
    quotas:
      - {metric: requests, limit: 30, per: minute}
      - {metric: tokens, limit: 6000, per: hour, tz: Asia/Kolkata}
      - {metric: requests, limit: 1000, per: day, reset: "08:00", tz: America/Los_Angeles}
      - {metric: usd, limit: 5, per: month, day: 15, free: true}
      - {metric: credits, limit: 25, per: total}
    pricing: {usd_per_mtok_input: 0.59, usd_per_mtok_output: 0.79}
  local:
    adapter: local
tasks:
  text: [groq, local]
  stt: [local]
"""


# --- parse_config: a valid table ------------------------------------------------------------


def test_valid_config_parses_into_objects() -> None:
    config = parse_config(VALID, file="p.yaml")

    assert isinstance(config, Config)
    assert list(config.providers) == ["groq", "local"]
    groq = config.providers["groq"]
    assert isinstance(groq, ProviderConfig)
    assert groq.adapter == "openai"
    assert groq.base_url == "https://api.groq.com/openai/v1"  # trailing slash stripped
    assert groq.api_key_env == "GROQ_API_KEY"
    assert groq.enabled is True
    # A single name (the older form) is a list of one.
    assert groq.models == {"text": ("llama-3.3-70b-versatile",), "stt": ("whisper-large-v3-turbo",)}
    assert groq.models_for("text") == ("llama-3.3-70b-versatile",)
    assert groq.models_for("image") == ()
    assert groq.pricing == Pricing(usd_per_mtok_input=0.59, usd_per_mtok_output=0.79)

    local = config.providers["local"]
    assert (local.adapter, local.base_url, local.api_key_env) == ("local", None, None)
    assert local.quotas == () and local.models == {}

    assert config.tasks == {"text": ("groq", "local"), "stt": ("local",)}


def test_valid_config_quota_rules() -> None:
    quotas = parse_config(VALID).providers["groq"].quotas

    assert all(isinstance(rule, QuotaRule) for rule in quotas)
    assert [rule.per for rule in quotas] == ["minute", "hour", "day", "month", "total"]
    assert [rule.limit for rule in quotas] == [30, 6000, 1000, 5, 25]
    assert [rule.free for rule in quotas] == [False, False, False, True, False]
    assert [rule.rule_id for rule in quotas] == [
        "requests/minute",
        "tokens/hour@Asia/Kolkata",
        "requests/day@08:00 America/Los_Angeles",
        "usd/month@d15 00:00 UTC",
        "credits/total",
    ]
    assert [rule.window for rule in quotas] == [
        WindowSpec("minute"),
        WindowSpec("hour", tz="Asia/Kolkata"),
        WindowSpec("day", time(8, 0), "America/Los_Angeles"),
        WindowSpec("month", time(0, 0), "UTC", 15),
        WindowSpec("total"),
    ]
    # one WindowSpec per rule, so its bounds cache is reused
    assert quotas[2].window is quotas[2].window


def test_settings_defaults() -> None:
    settings = parse_config(VALID).settings

    assert settings == Settings()
    assert settings.strategy == "priority"
    assert settings.allow_paid is False
    assert settings.timeout_s == 60
    assert settings.retries == 2
    assert settings.prefer_local_below_load == 0.8
    assert (settings.budget.daily_usd, settings.budget.monthly_usd) == (None, None)
    assert settings.lease_s is None
    assert settings.reservation_lease_s == 90


def test_reservation_lease_follows_timeout_unless_set() -> None:
    settings = parse_config("settings: {timeout_s: 120}\n" + VALID).settings
    assert settings.reservation_lease_s == 150

    settings = parse_config("settings: {timeout_s: 20, lease_s: 45}\n" + VALID).settings
    assert settings.reservation_lease_s == 45
    with pytest.raises(ConfigError, match=r"lease_s \(45\) must be longer than timeout_s \(120\)"):
        parse_config("settings: {timeout_s: 120, lease_s: 45}\n" + VALID)


# --- parse_config: errors ----------------------------------------------------------------------

BASE = """\
providers:
  groq:
    adapter: openai
    base_url: https://api.groq.com/openai/v1
    api_key_env: GROQ_API_KEY
    quotas:
      - {metric: requests, limit: 30, per: minute}
      - {metric: requests, limit: 1000, per: day}
  local:
    adapter: local
tasks:
  text: [groq, local]
"""


def _edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


ERRORS = [
    pytest.param(
        "bogus: 1\n" + BASE,
        "p.yaml:1: bogus: unknown key (check its spelling)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        _edit("    quotas:", "    quota:"),
        "p.yaml:6: providers.groq.quota: unknown key; did you mean 'quotas'?",
        id="unknown-provider-key",
    ),
    pytest.param(
        _edit("per: day}", "per: weekly}"),
        "p.yaml:8: providers.groq.quotas[1].per: "
        "expected one of minute, hour, day, month, total, got 'weekly'",
        id="unknown-period",
    ),
    pytest.param(
        _edit("limit: 30,", "limit: -5,"),
        "p.yaml:7: providers.groq.quotas[0].limit: input should be greater than 0, got -5",
        id="negative-limit",
    ),
    pytest.param(
        _edit("limit: 30,", "limit: 0,"),
        "p.yaml:7: providers.groq.quotas[0].limit: input should be greater than 0, got 0",
        id="zero-limit",
    ),
    pytest.param(
        _edit("per: day}", 'per: day, reset: "25:00"}'),
        "p.yaml:8: providers.groq.quotas[1].reset: "
        "expected a time of day as HH:MM (24 h), got '25:00'",
        id="bad-reset",
    ),
    pytest.param(
        _edit("per: day}", "per: day, tz: Mars/Olympus}"),
        "p.yaml:8: providers.groq.quotas[1].tz: unknown time zone 'Mars/Olympus'",
        id="unknown-tz",
    ),
    pytest.param(
        _edit("per: day}", "per: month, day: 32}"),
        "p.yaml:8: providers.groq.quotas[1].day: input should be less than or equal to 31, got 32",
        id="day-32",
    ),
    pytest.param(
        _edit("adapter: local", "adapter: ollama"),
        "p.yaml:10: providers.local.adapter: expected one of openai, anthropic, gemini, cohere, "
        "ai21, stability, replicate, huggingface, fireworks, assemblyai, gladia, elevenlabs, "
        "playht, local, got 'ollama'",
        id="unknown-adapter",
    ),
    pytest.param(
        _edit("https://api.groq.com/openai/v1", "ftp://x"),
        "p.yaml:4: providers.groq.base_url: expected an http:// or https:// URL, got 'ftp://x'",
        id="ftp-base-url",
    ),
    pytest.param(
        _edit("GROQ_API_KEY", "GROQ-API-KEY"),
        "p.yaml:5: providers.groq.api_key_env: "
        "expected an environment variable name, got 'GROQ-API-KEY'",
        id="bad-api-key-env",
    ),
    pytest.param(
        _edit("    adapter: local\n", "    adapter: local\n  groq:\n    adapter: openai\n"),
        "p.yaml:11: providers.groq: duplicate key 'groq' (first defined on line 2)",
        id="duplicate-provider",
    ),
    pytest.param(
        _edit("[groq, local]", "[groq, nope]"),
        "p.yaml:12: tasks.text[1]: unknown provider 'nope'; defined providers: groq, local",
        id="undefined-provider-in-tasks",
    ),
    pytest.param(
        _edit("[groq, local]", "[groq, local, groq]"),
        "p.yaml:12: tasks.text[2]: provider 'groq' is listed twice",
        id="provider-listed-twice",
    ),
    pytest.param(
        BASE + "  video: [groq]\n",
        "p.yaml:13: tasks.video: expected one of text, image, stt, tts, multimodal, got 'video'",
        id="unknown-task-kind",
    ),
    pytest.param(
        _edit("GROQ_API_KEY\n", "GROQ_API_KEY\n    models: {text: []}\n"),
        "p.yaml:6: providers.groq.models: text: expected a model name or a non-empty list of names",
        id="empty-model-list",
    ),
    pytest.param(
        _edit("GROQ_API_KEY\n", "GROQ_API_KEY\n    models: {text: [a, b, a]}\n"),
        "p.yaml:6: providers.groq.models: text: a model is named twice in ['a', 'b', 'a']",
        id="model-listed-twice",
    ),
    pytest.param(
        "settings:\n  strategy: random\n" + BASE,
        "p.yaml:2: settings.strategy: expected one of priority, cheapest, fastest, got 'random'",
        id="unknown-strategy",
    ),
    pytest.param(
        "settings:\n  prefer_local_below_load: 1.5\n" + BASE,
        "p.yaml:2: settings.prefer_local_below_load: "
        "input should be less than or equal to 1, got 1.5",
        id="load-above-one",
    ),
    pytest.param(
        _edit("[groq, local]", "[groq, local\n  image: [local]"),
        "p.yaml:13: invalid YAML: did not find expected ',' or ']'",
        id="unclosed-bracket",
    ),
    pytest.param(
        "",
        "p.yaml: expected a mapping with 'providers' and 'tasks' at the top",
        id="empty-file",
    ),
    pytest.param(
        "- groq\n- local\n",
        "p.yaml: expected a mapping with 'providers' and 'tasks' at the top",
        id="top-level-list",
    ),
    pytest.param(
        _edit("  local:", "  Local:"),
        "p.yaml:1: providers: provider name 'Local' must be lower-case letters, digits, '-' or '_'",
        id="upper-case-provider-name",
    ),
    pytest.param(
        "tasks:\n  text: []\n",
        "p.yaml:1: providers: required key is missing",
        id="no-providers",
    ),
    pytest.param(
        "a: &x [*x]\n" + BASE,
        "p.yaml:1: a: unknown key (check its spelling)",
        id="cyclic-alias",
    ),
]


def test_base_is_valid() -> None:
    assert list(parse_config(BASE).providers) == ["groq", "local"]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_config_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file="p.yaml")
    assert str(caught.value) == expected
    assert caught.value.file == "p.yaml"


def test_error_attributes_name_path_and_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_edit("per: day}", "per: weekly}"), file="p.yaml")
    assert (caught.value.file, caught.value.path, caught.value.line) == (
        "p.yaml",
        "providers.groq.quotas[1].per",
        8,
    )


def test_shared_alias_is_accepted() -> None:
    text = _edit("tasks:\n  text: [groq, local]\n", "tasks:\n  text: &t [groq, local]\n  stt: *t\n")
    assert parse_config(text).tasks == {"text": ("groq", "local"), "stt": ("groq", "local")}


# --- load_config: where the file comes from ----------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCHED_CONFIG", raising=False)
    return tmp_path


def _write(path: Path, strategy: str) -> Path:
    path.write_text(f"settings: {{strategy: {strategy}}}\n" + BASE, encoding="utf-8")
    return path


def test_cli_path_wins_over_env_and_cwd(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = _write(workdir / "cli.yaml", "fastest")
    env = _write(workdir / "env.yaml", "cheapest")
    _write(workdir / "providers.yaml", "priority")
    monkeypatch.setenv("SCHED_CONFIG", str(env))

    config, source = load_config(cli)

    assert (source.path, source.origin) == (cli, "--config")
    assert config.settings.strategy == "fastest"


def test_env_wins_over_cwd(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _write(workdir / "env.yaml", "cheapest")
    _write(workdir / "providers.yaml", "fastest")
    monkeypatch.setenv("SCHED_CONFIG", str(env))

    config, source = load_config()

    assert (source.path, source.origin) == (env, "SCHED_CONFIG")
    assert config.settings.strategy == "cheapest"


def test_cwd_file_wins_over_packaged_default(workdir: Path) -> None:
    _write(workdir / "providers.yaml", "fastest")

    config, source = load_config()

    assert (source.path, source.origin) == (Path("providers.yaml"), "./providers.yaml")
    assert source.path.resolve() == (workdir / "providers.yaml").resolve()
    assert config.settings.strategy == "fastest"


def test_empty_env_var_counts_as_unset(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(workdir / "providers.yaml", "fastest")
    monkeypatch.setenv("SCHED_CONFIG", "")
    assert resolve_config_path().origin == "./providers.yaml"


def test_packaged_default_is_last(workdir: Path) -> None:
    source = resolve_config_path()

    assert source.origin == "packaged default"
    assert source.path.name == "providers.yaml"
    assert source.path == Path(str(resources.files("scheduler").joinpath("providers.yaml")))


def test_missing_file_names_path_and_fix(workdir: Path) -> None:
    missing = workdir / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(caught.value) == (
        f"{missing}: config file not found (from --config); pass --config PATH or set SCHED_CONFIG"
    )


def test_missing_env_file_names_its_origin(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = workdir / "gone.yaml"
    monkeypatch.setenv("SCHED_CONFIG", str(missing))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == (
        f"{missing}: config file not found (from SCHED_CONFIG); "
        "pass --config PATH or set SCHED_CONFIG"
    )


def test_directory_is_rejected(workdir: Path) -> None:
    folder = workdir / "conf"
    folder.mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config(folder)
    assert str(caught.value) == f"{folder}: is a directory, expected a YAML file"


def test_non_utf8_is_rejected(workdir: Path) -> None:
    binary = workdir / "latin1.yaml"
    binary.write_bytes(b"providers:\n  caf\xe9: {adapter: local}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(binary)
    assert str(caught.value) == f"{binary}: is not UTF-8 text"


def test_errors_in_loaded_file_name_that_file(workdir: Path) -> None:
    path = workdir / "bad.yaml"
    path.write_text(_edit("per: day}", "per: weekly}"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:8: providers.groq.quotas[1].per: "
        "expected one of minute, hour, day, month, total, got 'weekly'"
    )


# --- KeyStore: the environment, then .env files --------------------------------------------


def _dotenv(directory: Path, name: str, **values: str) -> None:
    lines = [f"{key}={value}" for key, value in values.items()]
    (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_environment_beats_dotenv(tmp_path: Path) -> None:
    _dotenv(tmp_path, ".env", GROQ_API_KEY="from-dotenv", MISTRAL_API_KEY="m-dotenv")
    store = KeyStore(directory=tmp_path, environ={"GROQ_API_KEY": "from-env"})

    assert store.lookup("GROQ_API_KEY") == KeySource("from-env", "environment")
    assert store.lookup("MISTRAL_API_KEY") == KeySource("m-dotenv", ".env")
    assert store.get("GROQ_API_KEY") == "from-env"
    assert store.get("MISTRAL_API_KEY") == "m-dotenv"


def test_sched_env_file_beats_dotenv_and_environment_beats_both(tmp_path: Path) -> None:
    _dotenv(tmp_path, ".env", A="a-dotenv", B="b-dotenv", C="c-dotenv")
    _dotenv(tmp_path, ".env.production", A="a-prod", B="b-prod")
    _dotenv(tmp_path, ".env.development", A="a-dev", B="b-dev", C="c-dev")
    store = KeyStore(directory=tmp_path, environ={"SCHED_ENV": "production", "A": "a-env"})

    assert store.lookup("A") == KeySource("a-env", "environment")
    assert store.lookup("B") == KeySource("b-prod", ".env.production")
    assert store.lookup("C") == KeySource("c-dotenv", ".env")


def test_without_sched_env_the_selected_files_are_ignored(tmp_path: Path) -> None:
    _dotenv(tmp_path, ".env", A="a-dotenv")
    _dotenv(tmp_path, ".env.production", A="a-prod", B="b-prod")
    store = KeyStore(directory=tmp_path, environ={})

    assert store.lookup("A") == KeySource("a-dotenv", ".env")
    assert store.lookup("B") is None


def test_development_selects_its_own_file(tmp_path: Path) -> None:
    _dotenv(tmp_path, ".env", A="a-dotenv")
    _dotenv(tmp_path, ".env.production", A="a-prod")
    _dotenv(tmp_path, ".env.development", A="a-dev")
    store = KeyStore(directory=tmp_path, environ={"SCHED_ENV": "development"})

    assert store.lookup("A") == KeySource("a-dev", ".env.development")


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=a-dotenv\nB=\nC=c-dotenv\nD\n", encoding="utf-8")
    _dotenv(tmp_path, ".env.production", A="", C="")
    store = KeyStore(directory=tmp_path, environ={"SCHED_ENV": "production", "A": "", "B": ""})

    assert store.lookup("A") == KeySource("a-dotenv", ".env")
    assert store.lookup("B") is None
    assert store.lookup("C") == KeySource("c-dotenv", ".env")
    assert store.lookup("D") is None
    assert store.get("B") is None


def test_no_files_and_no_variable(tmp_path: Path) -> None:
    store = KeyStore(directory=tmp_path, environ={"SCHED_ENV": "production"})

    assert store.lookup("GROQ_API_KEY") is None
    assert store.lookup(None) is None
    assert store.lookup("") is None
    assert store.get(None) is None


def test_keystore_reads_files_once(tmp_path: Path) -> None:
    _dotenv(tmp_path, ".env", A="first")
    store = KeyStore(directory=tmp_path, environ={})
    _dotenv(tmp_path, ".env", A="second")

    assert store.get("A") == "first"


# --- mask and fingerprint --------------------------------------------------------------------

LONG_KEY = "gsk_" + "Ab3dEf7hIj1lMn5pQr9tUv2xYz4bCd6fGh8j"  # 40 characters, all distinct runs


def test_mask_long_key_shows_at_most_last_four() -> None:
    assert len(LONG_KEY) == 40
    masked = mask(LONG_KEY)

    assert masked == "…Gh8j"
    assert masked.endswith(LONG_KEY[-4:])
    assert LONG_KEY[-5:] not in masked
    # no run of five or more key characters anywhere in the mask
    assert not any(LONG_KEY[i : i + 5] in masked for i in range(len(LONG_KEY) - 4))
    assert LONG_KEY not in masked


@pytest.mark.parametrize("length", range(0, 17))
def test_mask_never_shows_a_whole_short_key(length: int) -> None:
    key = "abcdefghijklmnopq"[:length]
    masked = mask(key)

    if key:
        assert key not in masked
    shown = masked.replace("…", "")
    assert len(shown) <= (4 if length >= 16 else 0)


def test_fingerprint_is_stable_short_hex_and_distinct() -> None:
    first = fingerprint(LONG_KEY)

    assert first == fingerprint(LONG_KEY)
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert first == hashlib.sha256(LONG_KEY.encode()).hexdigest()[:12]
    assert fingerprint("abc") == "ba7816bf8f01"
    assert fingerprint(LONG_KEY[:-1] + "k") != first
    assert fingerprint("other-key") != first
    assert LONG_KEY[-4:] not in first


def test_model_lists_keep_their_order() -> None:
    models = "    models: {text: [primary, fallback], stt: w}\n"
    text = _edit("GROQ_API_KEY\n", "GROQ_API_KEY\n" + models)
    groq = parse_config(text).providers["groq"]
    assert groq.models_for("text") == ("primary", "fallback")
    assert groq.models_for("stt") == ("w",)


def test_pricing_per_model_overrides_only_the_units_it_names() -> None:
    pricing = Pricing.model_validate(
        {
            "usd_per_mtok_input": 0.5,
            "usd_per_mtok_output": 0.8,
            "models": {"big": {"usd_per_mtok_output": 2.0}},
        }
    )
    big = pricing.for_model("big")
    assert (big.usd_per_mtok_input, big.usd_per_mtok_output) == (0.5, 2.0)
    other = pricing.for_model("small")  # a model without its own prices pays the provider's
    assert (other.usd_per_mtok_input, other.usd_per_mtok_output) == (0.5, 0.8)
    assert big.models == {} and other.models == {}
    with pytest.raises(ValueError, match="usd_per_image"):
        Pricing.model_validate({"models": {"big": {"usd_per_image": -1}}})


def test_unquoted_reset_time_read_as_sexagesimal_is_taken_back() -> None:
    # YAML 1.1 reads `reset: 10:30` as 630; the schema turns it back into the time meant.
    config = parse_config(
        "providers:\n  p:\n    adapter: openai\n    quotas:\n"
        "      - {metric: requests, limit: 5, per: day, reset: 10:30}\n"
    )
    assert config.providers["p"].quotas[0].reset == "10:30"


def test_two_rules_in_the_same_window_are_an_error() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(
            "providers:\n  p:\n    adapter: openai\n    quotas:\n"
            "      - {metric: requests, limit: 5, per: day}\n"
            "      - {metric: requests, limit: 9, per: day}\n",
            file="p.yaml",
        )
    assert str(raised.value) == (
        "p.yaml:4: providers.p.quotas: two rules count requests/day@00:00 UTC; keep only one"
    )


def test_an_unquoted_boolean_provider_name_says_to_quote_it() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("providers:\n  off:\n    adapter: openai\n", file="p.yaml")
    assert str(raised.value) == (
        "p.yaml:2: providers.off: the key 'off' reads as a boolean in YAML (yes/no/on/off); "
        "quote it"
    )
