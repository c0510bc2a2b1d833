"""Each task kind end to end through the CLI, falling over between two different adapters.

The first provider of each kind answers with its documented out-of-quota (or rate-limit) shape,
the second serves; the output file is checked by its header and measured, and the ledger holds
the kind's own unit (images, audio seconds, characters, tokens).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from scheduler.media import probe_audio, sniff_media_type
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import assemblyai_shapes as assemblyai
from tests.fakes import elevenlabs_shapes as elevenlabs
from tests.fakes import gemini_shapes as gemini
from tests.fakes import gladia_shapes as gladia
from tests.fakes import openai_shapes as openai
from tests.fakes import replicate_shapes as replicate
from tests.fakes import stability_shapes as stability
from tests.fakes.audio import write_wav as _wav
from tests.fakes.server import FakeServer

KEYS = {
    "STABILITY_API_KEY": "sk-stab-test",
    "REPLICATE_API_KEY": "r8_testtoken",
    "GOOGLE_GEMINI_API_KEY": "AIza-test",
    "ASSEMBLYAI_API_KEY": "aai-test",
    "GLADIA_API_KEY": "gladia-test",
    "ELEVENLABS_API_KEY": "xi-test",
    "OPENAI_API_KEY": "sk-openai-test",
}


def _provider(adapter: str, base_url: str, key_env: str, models: str, extra: str = "") -> str:
    lines = [f"adapter: {adapter}", f"base_url: {base_url}", f"api_key_env: {key_env}"]
    return "\n".join([*lines, f"models: {models}", extra])


def _ledger(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "quota.db")


def _calls(tmp_path: Path) -> list[tuple[str, str, dict[str, float]]]:
    rows = _ledger(tmp_path).execute("SELECT provider, outcome, usage FROM calls ORDER BY id")
    return [(provider, outcome, json.loads(usage)) for provider, outcome, usage in rows]


def test_image_stability_out_of_credit_then_replicate(tmp_path: Path, fake: FakeServer) -> None:
    write_config(
        tmp_path / "providers.yaml",
        {
            "stability": _provider(
                "stability", f"{fake.url}/stab", "STABILITY_API_KEY", "{image: core}"
            ),
            "replicate": _provider(
                "replicate",
                f"{fake.url}/rep",
                "REPLICATE_API_KEY",
                "{image: black-forest-labs/flux-schnell}",
                "quotas:\n  - {metric: images, limit: 50, per: day}",
            ),
        },
        {"image": ["stability", "replicate"]},
    )  # fmt: skip
    fake.route("POST", stability.generate_path("core", "stab"), stability.payment_required())
    replicate.mount_replicate_ok(fake, "rep")  # answers WebP

    result = run_cli("run", "image", "a red fox", "-o", "fox.png", "--json", env=clean_env(**KEYS))

    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["path"]) == ("replicate", "fox.png")
    assert [(a["provider"], a["outcome"]) for a in data["attempts"]] == [  # type: ignore[union-attr]
        ("stability", "quota_exhausted"),
        ("replicate", "ok"),
    ]
    png = (tmp_path / "fox.png").read_bytes()
    assert sniff_media_type(png[:16]) == "image/png"  # the WebP was converted to the file's type
    assert _calls(tmp_path)[-1][2]["images"] == 1
    assert _ledger(tmp_path).execute(
        "SELECT used, reserved FROM usage_windows WHERE provider='replicate' AND metric='images'"
    ).fetchone() == (1.0, 0.0)


def test_multimodal_gemini_rate_limited_then_replicate(tmp_path: Path, fake: FakeServer) -> None:
    write_config(
        tmp_path / "providers.yaml",
        {
            "gemini": _provider(
                "gemini",
                f"{fake.url}/gem",
                "GOOGLE_GEMINI_API_KEY",
                "{multimodal: gemini-2.5-flash}",
            ),
            "replicate": _provider(
                "replicate",
                f"{fake.url}/rep",
                "REPLICATE_API_KEY",
                "{multimodal: openai/gpt-4o-mini}",
            ),
        },
        {"multimodal": ["gemini", "replicate"]},
    )  # fmt: skip
    fake.route(
        "POST",
        gemini.generate_path("gemini-2.5-flash", "gem"),
        gemini.per_minute_quota("gemini-2.5-flash"),
    )
    answer = replicate.mount_replicate_multimodal_ok(fake, "rep")
    image = tmp_path / "square.png"
    image.write_bytes(openai.tiny_png())

    result = run_cli(
        "run", "multimodal", "what is this?", "--image", str(image), "--json", env=clean_env(**KEYS)
    )

    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["output"]) == ("replicate", answer)
    assert [a["outcome"] for a in data["attempts"]] == ["rate_limited", "ok"]  # type: ignore[union-attr]
    provider, outcome, usage = _calls(tmp_path)[-1]
    assert (provider, outcome, usage["input_tokens"], usage["output_tokens"]) == (
        "replicate",
        "ok",
        271,
        4,
    )


def test_stt_assemblyai_out_of_balance_then_gladia(tmp_path: Path, fake: FakeServer) -> None:
    write_config(
        tmp_path / "providers.yaml",
        {
            "assemblyai": _provider(
                "assemblyai", f"{fake.url}/aai", "ASSEMBLYAI_API_KEY", "{stt: universal}"
            ),
            "gladia": _provider(
                "gladia", f"{fake.url}/gla", "GLADIA_API_KEY", "{stt: solaria-1}",
                "quotas:\n  - {metric: audio_seconds, limit: 36000, per: month}",
            ),
        },
        {"stt": ["assemblyai", "gladia"]},
    )  # fmt: skip
    fake.route("POST", assemblyai.upload_path("aai"), assemblyai.balance_negative())
    gladia.mount_gladia_ok(fake, "gla", text="Hello from Gladia.", billing_time=2.5)
    audio = _wav(tmp_path / "speech.wav", 2.5)

    result = run_cli("run", "stt", str(audio), "--json", env=clean_env(**KEYS))

    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["output"]) == ("gladia", "Hello from Gladia.")
    assert [a["outcome"] for a in data["attempts"]] == ["quota_exhausted", "ok"]  # type: ignore[union-attr]
    assert _ledger(tmp_path).execute(
        "SELECT used, reserved FROM usage_windows"
        " WHERE provider='gladia' AND metric='audio_seconds'"
    ).fetchone() == (2.5, 0.0)  # measured from the file before the call, then confirmed


def test_tts_elevenlabs_quota_401_then_openai_speech(tmp_path: Path, fake: FakeServer) -> None:
    write_config(
        tmp_path / "providers.yaml",
        {
            "elevenlabs": _provider(
                "elevenlabs", f"{fake.url}/xi", "ELEVENLABS_API_KEY", "{tts: eleven_flash_v2_5}"
            ),
            "openai": _provider(
                "openai", f"{fake.url}/oa/v1", "OPENAI_API_KEY", "{tts: tts-1}",
                "quotas:\n  - {metric: characters, limit: 10000, per: month}",
            ),
        },
        {"tts": ["elevenlabs", "openai"]},
    )  # fmt: skip
    fake.route(
        "POST", elevenlabs.tts_path("JBFqnCBsd6RMkjVDRZzb", "xi"), elevenlabs.quota_exceeded()
    )
    fake.route("POST", openai.speech_path("oa"), openai.speech_ok(openai.tiny_mp3(seconds=0.5)))
    text = "Hello there, this is a test."

    result = run_cli("run", "tts", text, "-o", "hello.wav", "--json", env=clean_env(**KEYS))

    assert result.code == 0, result.stderr
    data = result.json()
    assert data["provider"] == "openai"
    outcomes = [(a["provider"], a["outcome"]) for a in data["attempts"]]  # type: ignore[union-attr]
    assert outcomes == [("elevenlabs", "quota_exhausted"), ("openai", "ok")]  # not auth_failed
    wav = (tmp_path / "hello.wav").read_bytes()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"  # the provider's MP3 was converted
    assert abs(probe_audio(tmp_path / "hello.wav").seconds - 0.5) < 0.1
    assert _ledger(tmp_path).execute(
        "SELECT used FROM usage_windows WHERE provider='openai' AND metric='characters'"
    ).fetchone() == (len(text),)
    assert fake.requests(openai.speech_path("oa"))[0].json()["response_format"] == "wav"
