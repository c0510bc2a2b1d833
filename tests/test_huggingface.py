"""The Hugging Face router adapter (`hf-inference`), driven over real HTTP against the fake server.

What the fake reproduces, and from where (builders in tests/fakes/huggingface_shapes.py):

- `POST {base}/hf-inference/models/{model}` with `Authorization: Bearer hf_...` for both tasks
  (/work/shared/providers/media.md "Hugging Face"; HF Inference Providers docs).
- Text-to-image: JSON `{"inputs": prompt, "parameters": {"width", "height"}}` (the
  @huggingface/tasks text-to-image input spec) answered with raw image bytes, Content-Type
  image/png or image/jpeg.
- ASR: the raw audio as the body with its Content-Type, answered `{"text"}` plus optional
  `chunks[{text, timestamp: [start, end]}]` (@huggingface/tasks ASR output spec).
- Failures: 503 `{"error": "Model X is currently loading", "estimated_time": 20.0}`, 402 monthly
  credits, 401 invalid credentials, 403 `permission_error`, 429 with the IETF `RateLimit` header
  (huggingface/hub-docs rate-limits.md), 400/422 refusals, 410 from the retired serverless
  host, 500 and an HTML 502 (issue threads named in huggingface_shapes.py).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

import pytest

from scheduler.config.schema import ProviderConfig
from scheduler.errors import (
    AuthFailed,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
)
from scheduler.providers.http import make_client
from scheduler.providers.huggingface import HuggingFaceAdapter, rate_limit_reports
from scheduler.tasks import ImageTask, ProviderResult, RateLimitReport, Segment, SttTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import huggingface_shapes as shapes
from tests.fakes.audio import sine_wav
from tests.fakes.server import FakeServer, Reply

KEY = "hf_FAKEtoken0123456789abcdefghijklmn"
IMAGE_MODEL = shapes.DEFAULT_IMAGE_MODEL
STT_MODEL = shapes.DEFAULT_STT_MODEL
IMAGE_PATH = shapes.model_path(IMAGE_MODEL)
STT_PATH = shapes.model_path(STT_MODEL)

Task = ImageTask | SttTask


def call(
    fake: FakeServer,
    task: Task,
    *,
    model: str,
    base_url: str | None = None,
    api_key: str | None = KEY,
    timeout_s: float = 5.0,
) -> ProviderResult | ProviderError:
    async def go() -> ProviderResult:
        async with make_client(timeout_s) as http:
            adapter = HuggingFaceAdapter(
                name="huggingface",
                config=ProviderConfig(adapter="huggingface", base_url=base_url or fake.url),
                api_key=api_key,
                http=http,
                timeout_s=timeout_s,
            )
            return await adapter.run(task, model=model)

    try:
        return asyncio.run(go())
    except ProviderError as exc:
        return exc


def image(fake: FakeServer, reply: Reply, task: ImageTask | None = None) -> ProviderResult:
    fake.route("POST", IMAGE_PATH, reply)
    result = call(fake, task or ImageTask("a red square"), model=IMAGE_MODEL)
    assert isinstance(result, ProviderResult), result
    return result


@pytest.fixture
def wav(tmp_path: Path) -> tuple[SttTask, bytes]:
    data = sine_wav(tmp_path / "speech.wav", seconds=0.5)
    return SttTask(tmp_path / "speech.wav", 0.5, "audio/wav"), data


def fail(fake: FakeServer, reply: Reply, task: Task | None = None) -> ProviderError:
    path = STT_PATH if isinstance(task, SttTask) else IMAGE_PATH
    fake.route("POST", path, reply, default=shapes.image_ok())
    result = call(
        fake, task or ImageTask("x"), model=STT_MODEL if isinstance(task, SttTask) else IMAGE_MODEL
    )
    assert isinstance(result, ProviderError), result
    assert fake.count(path) == 1  # no retry inside the adapter
    return result


# --------------------------------------------------------------------------------------------
# Text to image
# --------------------------------------------------------------------------------------------


def test_image_request_path_auth_and_body_with_size(fake: FakeServer) -> None:
    picture = shapes.png_bytes(4, 3)
    result = image(fake, shapes.image_ok(picture), ImageTask("a red square", size="512x768"))
    [request] = fake.requests(IMAGE_PATH)
    assert request.method == "POST"
    assert request.path == "/hf-inference/models/black-forest-labs/FLUX.1-schnell"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "inputs": "a red square",
        "parameters": {"width": 512, "height": 768},
    }
    assert result == ProviderResult(
        output="",
        model=IMAGE_MODEL,
        usage={"requests": 1, "images": 1},
        data=picture,
        media_type="image/png",
    )


def test_image_without_size_sends_no_parameters(fake: FakeServer) -> None:
    image(fake, shapes.image_ok())
    assert fake.requests(IMAGE_PATH)[0].json() == {"inputs": "a red square"}


def test_image_jpeg_keeps_its_media_type(fake: FakeServer) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 16
    result = image(fake, shapes.image_ok(jpeg, "image/jpeg"))
    assert (result.data, result.media_type) == (jpeg, "image/jpeg")


def test_image_served_as_octet_stream_is_recognised_by_its_bytes(fake: FakeServer) -> None:
    picture = shapes.png_bytes()
    result = image(fake, shapes.image_ok(picture, "application/octet-stream"))
    assert result.media_type == "image/png"


@pytest.mark.parametrize(
    "base_suffix", ["", "/", "/hf-inference"], ids=["host", "slash", "with-provider"]
)
def test_base_url_forms(fake: FakeServer, base_suffix: str) -> None:
    fake.route("POST", IMAGE_PATH, shapes.image_ok())
    result = call(fake, ImageTask("x"), model=IMAGE_MODEL, base_url=fake.url + base_suffix)
    assert isinstance(result, ProviderResult)
    assert fake.count(IMAGE_PATH) == 1


def test_rate_limit_header_is_reported(fake: FakeServer) -> None:
    before = time.time()
    result = image(
        fake,
        shapes.image_ok(
            headers={
                "RateLimit": '"api";r=489;t=189',
                "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
            }
        ),
    )
    [report] = result.rate_limits
    assert (report.metric, report.remaining, report.limit) == ("requests", 489.0, 500.0)
    assert report.resets_at is not None
    assert before + 189 <= report.resets_at <= time.time() + 189


def test_rate_limit_reports_parser() -> None:
    assert rate_limit_reports({}, now=0) == ()
    assert rate_limit_reports({"ratelimit": '"api";r=0;t=12'}, now=100) == (
        RateLimitReport(metric="requests", remaining=0.0, resets_at=112.0, limit=None),
    )
    assert rate_limit_reports({"RateLimit": "garbage"}, now=0) == ()


# --------------------------------------------------------------------------------------------
# Speech to text
# --------------------------------------------------------------------------------------------


def test_stt_posts_raw_audio_with_its_type(fake: FakeServer, wav: tuple[SttTask, bytes]) -> None:
    task, data = wav
    fake.route("POST", STT_PATH, shapes.asr_ok(" Hello there."))
    result = call(fake, task, model=STT_MODEL)
    [request] = fake.requests(STT_PATH)
    assert request.method == "POST"
    assert request.path == "/hf-inference/models/openai/whisper-large-v3-turbo"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "audio/wav"
    assert request.body == data
    assert result == ProviderResult(
        output="Hello there.",
        model=STT_MODEL,
        usage={"requests": 1, "audio_seconds": 0.5},
    )


def test_stt_chunks_become_segments(fake: FakeServer, wav: tuple[SttTask, bytes]) -> None:
    task, _ = wav
    chunks: list[dict[str, Any]] = [
        {"text": " Hello", "timestamp": [0.0, 0.24]},
        {"text": " there.", "timestamp": [0.24, None]},  # Whisper leaves the last end open
        {"text": "broken", "timestamp": "nope"},
    ]
    fake.route("POST", STT_PATH, shapes.asr_ok(" Hello there.", chunks))
    result = call(fake, task, model=STT_MODEL)
    assert isinstance(result, ProviderResult)
    assert result.segments == (Segment(0.0, 0.24, "Hello"), Segment(0.24, 0.5, "there."))


def test_unreadable_audio_is_an_input_error_without_a_call(
    fake: FakeServer, tmp_path: Path
) -> None:
    from scheduler.errors import InputError

    task = SttTask(tmp_path / "missing.wav", 1.0, "audio/wav")
    with pytest.raises(InputError):
        call(fake, task, model=STT_MODEL)
    assert fake.count(STT_PATH) == 0


@pytest.mark.parametrize(
    "reply",
    [
        Reply(json={"transcription": "wrong key"}),
        Reply(json={"text": 42}),
        Reply(body="<html>oops</html>", headers={"content-type": "text/html"}),
        Reply(json=["text"]),
    ],
    ids=["no-text", "text-not-string", "html", "array"],
)
def test_stt_malformed_answer_is_transient(
    fake: FakeServer, wav: tuple[SttTask, bytes], reply: Reply
) -> None:
    error = fail(fake, reply, wav[0])
    assert type(error) is Transient
    assert str(error) == "malformed response: no text in the transcription"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(json={"error": "nope"}),
        Reply(body=b"", headers={"content-type": "image/png"}),
        Reply(body="an image, honest", headers={"content-type": "text/plain"}),
    ],
    ids=["json", "empty", "text"],
)
def test_image_malformed_answer_is_transient(fake: FakeServer, reply: Reply) -> None:
    error = fail(fake, reply)
    assert type(error) is Transient
    assert str(error).startswith("malformed response: expected image bytes")


# --------------------------------------------------------------------------------------------
# Failures, in the provider's documented shapes
# --------------------------------------------------------------------------------------------

ERROR_TABLE = [
    # reply, class, status, retry_after, message start
    (shapes.model_loading(estimated_time=20.0), Transient, 503, 20.0,
     "HTTP 503: Model black-forest-labs/FLUX.1-schnell is currently loading"),
    (shapes.credits_exhausted(), QuotaExhausted, 402, None,
     "HTTP 402: You have exceeded your monthly included credits"),
    (shapes.invalid_credentials(), AuthFailed, 401, None,
     "HTTP 401: Invalid credentials in Authorization header"),
    (shapes.permission_error(), AuthFailed, 403, None,
     "HTTP 403: This authentication method does not have sufficient permissions"),
    (shapes.rate_limited(89), RateLimited, 429, 89.0, "HTTP 429: Too Many Requests"),
    (shapes.rate_limited(89, retry_after="7"), RateLimited, 429, 7.0, "HTTP 429"),
    (shapes.bad_request(), RejectedInput, 400, None,
     "HTTP 400: Model not supported by provider hf-inference"),
    (shapes.unprocessable(), RejectedInput, 422, None,
     "HTTP 422: Error in `parameters.width`"),
    (Reply(status=404, json={"error": "Not Found"}), RejectedInput, 404, None, "HTTP 404"),
    (shapes.gone(), RejectedInput, 410, None,
     "HTTP 410: https://api-inference.huggingface.co is no longer supported"),
    (shapes.server_error(), Transient, 500, None, "HTTP 500: Internal Server Error"),
    (shapes.bad_gateway_html(), Transient, 502, None, "HTTP 502: 502 Bad Gateway"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "cls", "status", "retry_after", "starts"),
    ERROR_TABLE,
    ids=[
        "503-loading",
        "402-credits",
        "401-bad-token",
        "403-permission",
        "429-ratelimit-header",
        "429-retry-after",
        "400",
        "422",
        "404",
        "410-legacy",
        "500",
        "502-html",
    ],
)
@pytest.mark.parametrize("kind", ["image", "stt"])
def test_error_classification(
    fake: FakeServer,
    wav: tuple[SttTask, bytes],
    kind: str,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    retry_after: float | None,
    starts: str,
) -> None:
    error = fail(fake, reply, wav[0] if kind == "stt" else None)
    assert type(error) is cls
    assert (error.provider, error.status, error.retry_after) == ("huggingface", status, retry_after)
    assert error.resets_at is None
    assert str(error).startswith(starts), str(error)
    assert KEY not in str(error)


def test_legacy_endpoint_message_names_the_router(fake: FakeServer) -> None:
    error = fail(fake, shapes.gone())
    assert "set the provider's base_url to https://router.huggingface.co" in str(error)


def test_token_echoed_in_an_error_is_redacted(fake: FakeServer) -> None:
    error = fail(fake, Reply(status=400, json={"error": f"bad token {KEY} in request"}))
    assert KEY not in str(error) and "***" in str(error)


def test_dropped_connection_is_transient(fake: FakeServer) -> None:
    error = fail(fake, Reply(close=True))
    assert type(error) is Transient and str(error).startswith("connection to 127.0.0.1:")


def test_timeout_is_transient(fake: FakeServer) -> None:
    fake.route("POST", IMAGE_PATH, Reply(body=shapes.png_bytes(), delay_s=2.0))
    started = time.monotonic()
    result = call(fake, ImageTask("x"), model=IMAGE_MODEL, timeout_s=0.3)
    assert time.monotonic() - started < 1.8
    assert type(result) is Transient and str(result) == "timed out after 0.3 s"


def test_missing_token_is_auth_failed_without_a_request(fake: FakeServer) -> None:
    result = call(fake, ImageTask("x"), model=IMAGE_MODEL, api_key=None)
    assert type(result) is AuthFailed
    assert fake.count(IMAGE_PATH) == 0


def test_module_import_does_not_import_an_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, scheduler.providers.huggingface;"
        "sys.exit(1 if 'huggingface_hub' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------------------------
# The real CLI, end to end
# --------------------------------------------------------------------------------------------


def _config(tmp_path: Path, fake: FakeServer) -> Path:
    return write_config(
        tmp_path / "providers.yaml",
        {
            "huggingface": (
                f"adapter: huggingface\nbase_url: {fake.url}/hf\napi_key_env: HF_TEST_TOKEN\n"
                f"models: {{image: {IMAGE_MODEL}, stt: {STT_MODEL}}}"
            )
        },
        {"image": ["huggingface"], "stt": ["huggingface"]},
    )


def test_cli_image(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    picture = shapes.png_bytes(5, 4)
    paths = shapes.mount_huggingface_ok(fake, "hf", image=picture)
    out = tmp_path / "out.png"
    result = run_cli(
        "--config", str(config), "run", "image", "a red square", "-o", str(out),
        "--size", "256x128", "--json", env=clean_env(HF_TEST_TOKEN=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"]) == ("huggingface", IMAGE_MODEL)
    assert data["usage"] == {"requests": 1, "images": 1}
    assert Path(str(data["path"])).resolve() == out.resolve()
    assert out.read_bytes() == picture
    [request] = fake.requests(paths["image"])
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {"inputs": "a red square", "parameters": {"width": 256, "height": 128}}


def test_cli_stt(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    audio = sine_wav(tmp_path / "speech.wav", seconds=1.0)
    paths = shapes.mount_huggingface_ok(fake, "hf", text="testing one two")
    result = run_cli(
        "--config", str(config), "run", "stt", str(tmp_path / "speech.wav"), "--json",
        env=clean_env(HF_TEST_TOKEN=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["output"]) == (
        "huggingface",
        STT_MODEL,
        "testing one two",
    )
    usage = data["usage"]
    assert isinstance(usage, dict)
    assert usage["requests"] == 1
    assert usage["audio_seconds"] == pytest.approx(1.0, abs=0.01)
    [request] = fake.requests(paths["stt"])
    assert request.body == audio
    assert request.headers["content-type"] == "audio/wav"


def test_cli_stt_falls_over_when_the_model_is_loading(tmp_path: Path, fake: FakeServer) -> None:
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "huggingface": (
                f"adapter: huggingface\nbase_url: {fake.url}\napi_key_env: HF_TEST_TOKEN\n"
                f"models: {{stt: {STT_MODEL}}}"
            )
        },
        {"stt": ["huggingface"]},
        settings="retries: 1\nmax_retry_wait_s: 0.5",
    )
    sine_wav(tmp_path / "speech.wav", seconds=0.3)
    fake.route("POST", STT_PATH, default=shapes.model_loading(STT_MODEL, estimated_time=20.0))
    result = run_cli(
        "--config", str(config), "run", "stt", str(tmp_path / "speech.wav"), "--json",
        env=clean_env(HF_TEST_TOKEN=KEY),
    )  # fmt: skip
    assert result.code == 1, result.stderr
    [attempt] = cast(list[dict[str, Any]], result.json()["attempts"])
    assert attempt["outcome"] == "transient"
    assert "is currently loading" in attempt["error"]
    # A 20 s warm-up is longer than the dispatcher will wait (max_retry_wait_s), so it moved on
    # after one call instead of hammering a model that is still loading.
    assert fake.count(STT_PATH) == 1
