"""The Fireworks adapter: FLUX text-to-image workflows on the real wire, chat inherited.

Driven through the openai SDK against the local `FakeServer` (builders in
`tests/fakes/fireworks_shapes.py`). Documented facts the fake reproduces:

- docs.fireworks.ai/api-reference/generate-a-new-image-from-a-text-prompt: `POST
  https://api.fireworks.ai/inference/v1/workflows/accounts/fireworks/models/flux-1-schnell-fp8/
  text_to_image`, Bearer key, JSON `{"prompt", "aspect_ratio"?, ...}`; `aspect_ratio` options
  1:1, 21:9, 16:9, 3:2, 5:4, 4:5, 2:3, 9:16, 9:21, 4:3, 3:4; `Accept: image/png` -> the PNG
  itself with `Finish-Reason` (SUCCESS | CONTENT_FILTERED) and `Seed` headers; `Accept:
  application/json` -> `{"id", "base64": [...], "finishReason", "seed"}`.
- docs.fireworks.ai/guides/inference-error-codes: 401 bad key, 402 not on a paid plan or over
  its usage limits, 404 unknown model, 412 account suspended, 429 rate limited, 500, 503.
- Observed bodies: 412 PRECONDITION_FAILED "Account ... is suspended, possibly due to reaching
  the monthly spending limit ..." on this endpoint (2026-07, pollinations/pollinations#12136);
  429 `{"error": "Too Many Requests", "message": "You have exceeded your usage limits..."}`
  (2025-11, GordeyZuev/LEAP#6). 401/402/503 bodies are unpublished; the fake reuses the 412
  envelope (an assumption).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scheduler.config.schema import ProviderConfig
from scheduler.errors import (
    AuthFailed,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
)
from scheduler.providers.fireworks import (
    ASPECT_RATIOS,
    FireworksAdapter,
    aspect_ratio,
    workflow_path,
)
from scheduler.providers.registry import adapter_class
from scheduler.tasks import ImageTask, ProviderResult, Task, TextTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import fireworks_shapes as fw
from tests.fakes.openai_shapes import chat_ok, tiny_png
from tests.fakes.server import FakeServer, Reply

KEY = "fw_test_0123456789abcdef"
SCHNELL_PATH = fw.text_to_image_path("fw")


def call(
    task: Task, *, base_url: str, model: str = fw.FLUX_SCHNELL
) -> ProviderResult | ProviderError:
    async def go() -> ProviderResult:
        from scheduler.providers.http import make_client

        async with make_client(5) as http:
            adapter = FireworksAdapter(
                name="fireworks",
                config=ProviderConfig(adapter="fireworks", base_url=base_url),
                api_key=KEY,
                http=http,
                timeout_s=5,
            )
            return await adapter.run(task, model=model)

    try:
        return asyncio.run(go())
    except ProviderError as exc:
        return exc


def base(fake: FakeServer) -> str:
    """The base_url of the fake Fireworks mounted at /fw/inference/v1."""
    return f"{fake.url}{fw.base_path('fw')}"


def ok(task: Task, **kwargs: str) -> ProviderResult:
    result = call(task, **kwargs)
    assert isinstance(result, ProviderResult), result
    return result


def failed(task: Task, **kwargs: str) -> ProviderError:
    error = call(task, **kwargs)
    assert isinstance(error, ProviderError), error
    return error


def test_registered_as_fireworks_with_text_and_image() -> None:
    assert adapter_class("fireworks") is FireworksAdapter
    assert FireworksAdapter.kinds == frozenset({"text", "image"})
    assert FireworksAdapter.default_base_url == "https://api.fireworks.ai/inference/v1"


# --------------------------------------------------------------------------------------------
# Image
# --------------------------------------------------------------------------------------------


def test_flux_request_and_png_result(fake: FakeServer) -> None:
    png = tiny_png((1, 2, 3))
    fake.route("POST", SCHNELL_PATH, fw.flux_png(png))
    result = ok(ImageTask("a lighthouse", size="1024x768"), base_url=base(fake))
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", SCHNELL_PATH)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "image/png"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"prompt": "a lighthouse", "aspect_ratio": "4:3"}
    assert result == ProviderResult(
        output="",
        model=fw.FLUX_SCHNELL,
        usage={"requests": 1, "images": 1},
        data=png,
        media_type="image/png",
    )


@pytest.mark.parametrize(
    "model",
    [
        "flux-1-schnell-fp8",
        "accounts/fireworks/models/flux-1-schnell-fp8",
        "/accounts/fireworks/models/flux-1-schnell-fp8/",
    ],
)
def test_full_id_and_short_name_reach_the_same_path(fake: FakeServer, model: str) -> None:
    fake.route("POST", SCHNELL_PATH, fw.flux_png(tiny_png()))
    result = ok(ImageTask("x"), base_url=base(fake), model=model)
    assert [r.path for r in fake.requests()] == [SCHNELL_PATH]
    assert fake.requests()[0].json() == {"prompt": "x"}  # no size, no aspect_ratio
    assert result.model == model


def test_workflow_path_keeps_other_accounts() -> None:
    assert workflow_path("accounts/acme/models/my-flux") == (
        "/workflows/accounts/acme/models/my-flux/text_to_image"
    )
    assert workflow_path("flux-1-dev-fp8") == (
        "/workflows/accounts/fireworks/models/flux-1-dev-fp8/text_to_image"
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("1024x1024", "1:1"),
        ("1920x1080", "16:9"),
        ("1080x1920", "9:16"),
        ("1536x1024", "3:2"),
        ("1024x1536", "2:3"),
        ("1024x768", "4:3"),
        ("768x1024", "3:4"),
        ("1280x1024", "5:4"),
        ("1024x1280", "4:5"),
        ("2560x1080", "21:9"),
        ("1080x2560", "9:21"),
        ("4000x1000", "21:9"),  # wider than anything documented: the widest
        ("1000x990", "1:1"),
        ("1792x1024", "16:9"),  # DALL-E 3 landscape
        ("512 X 512", "1:1"),
    ],
)
def test_size_maps_to_the_nearest_documented_aspect_ratio(size: str, expected: str) -> None:
    assert aspect_ratio(size) == expected
    assert expected in ASPECT_RATIOS


@pytest.mark.parametrize("size", ["big", "1024", "0x512", "-5x5", "1024x"])
def test_unusable_size_is_rejected_before_the_call(fake: FakeServer, size: str) -> None:
    error = failed(ImageTask("x", size=size), base_url=base(fake))
    assert type(error) is RejectedInput
    assert str(error) == f"size must be WIDTHxHEIGHT in pixels, got {size!r}"
    assert fake.requests() == []


def test_json_answer_is_decoded_too(fake: FakeServer) -> None:
    png = tiny_png((9, 9, 9))
    fake.route("POST", SCHNELL_PATH, fw.flux_json(png))
    result = ok(ImageTask("x"), base_url=base(fake))
    assert (result.data, result.media_type) == (png, "image/png")


def test_jpeg_bytes_are_labelled_by_their_magic(fake: FakeServer) -> None:
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 16
    fake.route("POST", SCHNELL_PATH, Reply(body=jpeg, headers={"content-type": "image/jpeg"}))
    assert ok(ImageTask("x"), base_url=base(fake)).media_type == "image/jpeg"


@pytest.mark.parametrize(
    "reply", [fw.flux_filtered(), fw.flux_json(tiny_png(), finish="CONTENT_FILTERED")]
)
def test_content_filtered_is_rejected_input(fake: FakeServer, reply: Reply) -> None:
    fake.route("POST", SCHNELL_PATH, reply)
    error = failed(ImageTask("x"), base_url=base(fake))
    assert type(error) is RejectedInput
    assert (error.provider, error.status) == ("fireworks", 200)
    assert "CONTENT_FILTERED" in str(error)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

ERRORS = [
    pytest.param(fw.payment_required_402(), QuotaExhausted, 402, None, id="402"),
    pytest.param(fw.suspended_412(), QuotaExhausted, 412, None, id="412-suspended"),
    pytest.param(fw.unauthorized_401(), AuthFailed, 401, None, id="401"),
    pytest.param(fw.rate_limited_429("3"), RateLimited, 429, 3.0, id="429-retry-after"),
    pytest.param(fw.rate_limited_429(None), RateLimited, 429, None, id="429-bare"),
    pytest.param(fw.overloaded_503(), Transient, 503, None, id="503"),
    pytest.param(fw.server_error_500(), Transient, 500, None, id="500"),
    pytest.param(fw.not_found_404(), ModelUnavailable, 404, None, id="404-model"),
    pytest.param(
        Reply(
            status=412,
            json={
                "error": {
                    "message": "LoRA addon accounts/acme/models/x failed to load",
                    "code": "PRECONDITION_FAILED",
                    "type": "error",
                }
            },
        ),
        RejectedInput,
        412,
        None,
        id="412-lora",
    ),
    pytest.param(
        Reply(
            status=400,
            json={"error": {"message": "prompt is required", "code": "INVALID_ARGUMENT"}},
        ),
        RejectedInput,
        400,
        None,
        id="400",
    ),
]


@pytest.mark.parametrize(("reply", "cls", "status", "retry_after"), ERRORS)
def test_image_error_classification(
    fake: FakeServer,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    retry_after: float | None,
) -> None:
    fake.route("POST", SCHNELL_PATH, reply)
    error = failed(ImageTask("x"), base_url=base(fake))
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert (error.provider, error.status, error.retry_after) == ("fireworks", status, retry_after)
    assert fake.count(SCHNELL_PATH) == 1


def test_suspension_message_is_kept(fake: FakeServer) -> None:
    fake.route("POST", SCHNELL_PATH, fw.suspended_412())
    error = failed(ImageTask("x"), base_url=base(fake))
    assert str(error) == f"HTTP 412: {fw.SUSPENDED_MESSAGE}"


def test_412_on_chat_is_quota_too(fake: FakeServer) -> None:
    fake.route("POST", "/fw/inference/v1/chat/completions", fw.suspended_412())
    error = failed(TextTask("hi"), base_url=base(fake), model="accounts/x/models/y")
    assert (type(error), error.status) == (QuotaExhausted, 412)


MALFORMED = [
    pytest.param(Reply(body=b"", headers={"content-type": "image/png"}), "no image", id="empty"),
    pytest.param(
        Reply(body="<html>oops</html>", headers={"content-type": "text/html"}),
        "not a PNG, JPEG or WEBP image",
        id="html",
    ),
    pytest.param(
        Reply(body="{truncated", headers={"content-type": "application/json"}),
        "not JSON",
        id="bad-json",
    ),
    pytest.param(Reply(json={"id": "1", "base64": []}), "no base64[0]", id="no-images"),
]


@pytest.mark.parametrize(("reply", "problem"), MALFORMED)
def test_malformed_success_is_transient(fake: FakeServer, reply: Reply, problem: str) -> None:
    fake.route("POST", SCHNELL_PATH, reply)
    error = failed(ImageTask("x"), base_url=base(fake))
    assert type(error) is Transient
    assert str(error) == f"malformed response: {problem}"


# --------------------------------------------------------------------------------------------
# Text is the inherited OpenAI-compatible chat
# --------------------------------------------------------------------------------------------


def test_text_is_openai_chat_with_the_full_model_id(fake: FakeServer) -> None:
    model = "accounts/fireworks/models/llama-v3p1-8b-instruct"
    fake.route("POST", "/fw/inference/v1/chat/completions", chat_ok("hey", model=model))
    result = ok(TextTask("hi"), base_url=base(fake), model=model)
    assert result.output == "hey"
    assert fake.requests()[0].json() == {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_mount_fireworks_ok_serves_both_kinds(fake: FakeServer) -> None:
    base_url = fw.mount_fireworks_ok(fake, "m")
    assert ok(TextTask("hi"), base_url=base_url).output == "ok"
    assert ok(ImageTask("x"), base_url=base_url).media_type == "image/png"


# --------------------------------------------------------------------------------------------
# The real CLI end to end
# --------------------------------------------------------------------------------------------


def _cli_has(kind: str) -> bool:
    from scheduler.cli.run_cmd import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    return kind in names


@pytest.mark.skipif(not _cli_has("image"), reason="`sched run image` is not written yet")
def test_cli_image_on_fireworks_writes_the_png(tmp_path: Path, fake: FakeServer) -> None:
    png = tiny_png((200, 100, 0))
    fake.route("POST", SCHNELL_PATH, fw.flux_png(png, seed=42))
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "fireworks": (
                f"adapter: fireworks\nbase_url: {fake.url}{fw.base_path('fw')}\n"
                f"api_key_env: FIREWORKS_API_KEY\nmodels: {{image: {fw.FLUX_SCHNELL}}}"
            )
        },
        {"image": ["fireworks"]},
    )
    out = tmp_path / "wide.png"
    result = run_cli(
        "--config", str(config), "run", "image", "a wide beach", "-o", str(out),
        "--size", "1920x1080", "--json",
        env=clean_env(FIREWORKS_API_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"]) == ("fireworks", fw.FLUX_SCHNELL)
    assert data["usage"] == {"requests": 1, "images": 1}
    assert Path(str(data["path"])).resolve() == out.resolve()
    assert out.read_bytes() == png
    [request] = fake.requests()
    assert request.path == SCHNELL_PATH
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "image/png"
    assert request.json() == {"prompt": "a wide beach", "aspect_ratio": "16:9"}
