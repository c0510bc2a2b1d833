"""The Stability adapter against a local fake of the v2beta Stable Image API.

What the fake reproduces, and from where (details in tests/fakes/stability_shapes.py and
/work/shared/providers/media.md, "Stability AI"):

* v2beta reference [doc]: `POST /v2beta/stable-image/generate/{core,ultra,sd3}`, a
  `multipart/form-data` body even for text only (`prompt`, `output_format`, `aspect_ratio` from
  16:9 1:1 21:9 2:3 3:2 4:5 5:4 9:16 9:21, `model` for SD 3.5), `Authorization: Bearer`,
  `Accept: image/*` answered with the raw image plus `finish-reason` (`SUCCESS` or
  `CONTENT_FILTERED`, the latter still HTTP 200) and `seed` headers.
* Errors `{"id", "name", "errors": [...]}` [doc]: 400, 403 `content_moderation` (the spec's own
  example body), 413, 422, 500; 401 `unauthorized` and 402 `payment_required` as observed in
  real answers [obs]; 429 after 150 requests / 10 s with a 60 s time-out [doc].
* Credits per image [doc]: Ultra 8, Core 3, SD 3.5 Large 6.5, Large Turbo 4, Medium 3.5, Flash 2.5.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

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
from scheduler.providers.stability import StabilityAdapter, nearest_aspect_ratio
from scheduler.tasks import ImageTask, ProviderResult
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import stability_shapes as shapes
from tests.fakes.server import FakeServer, Reply

KEY = "sk-stab-0123456789abcdefghij"
PREFIX = "stab"


@dataclass
class Outcome:
    result: ProviderResult | None
    error: ProviderError | None


def call(
    base_url: str,
    task: ImageTask | None = None,
    *,
    model: str = "core",
    key: str | None = KEY,
    timeout_s: float = 10,
) -> Outcome:
    """One image task through the adapter over real HTTP; taxonomy errors are caught."""

    async def go() -> ProviderResult:
        async with make_client(timeout_s) as http:
            adapter = StabilityAdapter(
                name="stability",
                config=ProviderConfig(adapter="stability", base_url=base_url),
                api_key=key,
                http=http,
                timeout_s=timeout_s,
            )
            return await adapter.run(task or ImageTask("a lighthouse on a cliff"), model=model)

    try:
        return Outcome(asyncio.run(go()), None)
    except ProviderError as exc:
        return Outcome(None, exc)


def base(fake: FakeServer) -> str:
    return f"{fake.url}/{PREFIX}"


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def test_core_request_is_multipart_with_bearer_and_image_accept(fake: FakeServer) -> None:
    data = shapes.mount_stability_ok(fake, PREFIX)
    outcome = call(base(fake))
    assert outcome.error is None
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", "/stab/v2beta/stable-image/generate/core")
    assert request.query == {}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "image/*"
    assert shapes.multipart_fields(request) == {
        "prompt": "a lighthouse on a cliff",
        "output_format": "png",
    }
    assert outcome.result == ProviderResult(
        output="",
        model="core",
        usage={"requests": 1, "images": 1, "credits": 3.0},
        data=data,
        media_type="image/png",
    )


@pytest.mark.parametrize(
    ("model", "endpoint", "form_model", "credits"),
    [
        ("ultra", "ultra", None, 8.0),
        ("core", "core", None, 3.0),
        ("sd3.5-large", "sd3", "sd3.5-large", 6.5),
        ("sd3.5-large-turbo", "sd3", "sd3.5-large-turbo", 4.0),
        ("sd3.5-medium", "sd3", "sd3.5-medium", 3.5),
        ("sd3.5-flash", "sd3", "sd3.5-flash", 2.5),
        ("sd3-large", "sd3", "sd3-large", 6.5),  # re-routed to 3.5 Large at its price
    ],
)
def test_each_model_goes_to_its_endpoint_and_reports_its_credits(
    fake: FakeServer, model: str, endpoint: str, form_model: str | None, credits: float
) -> None:
    shapes.mount_stability_ok(fake, PREFIX, endpoint=endpoint)
    outcome = call(base(fake), ImageTask("x", size="1024x1024"), model=model)
    assert outcome.result is not None, outcome.error
    assert outcome.result.usage == {"requests": 1, "images": 1, "credits": credits}
    assert outcome.result.model == model
    [request] = fake.requests()
    assert request.path == f"/stab/v2beta/stable-image/generate/{endpoint}"
    expected = {"prompt": "x", "output_format": "png", "aspect_ratio": "1:1"}
    if form_model is not None:
        expected["model"] = form_model
    assert shapes.multipart_fields(request) == expected


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ("1024x1024", "1:1"),
        ("1920x1080", "16:9"),
        ("1080x1920", "9:16"),
        ("2560x1080", "21:9"),
        ("1080x2560", "9:21"),
        ("1024x1536", "2:3"),
        ("1536x1024", "3:2"),
        ("1024x1280", "4:5"),
        ("1280x1024", "5:4"),
        ("1024x768", "5:4"),  # 4:3 is not offered: 5:4 is nearer than 3:2
        ("768x1024", "4:5"),
        ("4000x1000", "21:9"),  # wider than any: the widest
        ("1000X1001", "1:1"),
    ],
)
def test_size_maps_to_the_nearest_documented_ratio(fake: FakeServer, size: str, ratio: str) -> None:
    shapes.mount_stability_ok(fake, PREFIX)
    assert call(base(fake), ImageTask("x", size=size)).error is None
    assert shapes.multipart_fields(fake.requests()[0])["aspect_ratio"] == ratio


def test_nearest_ratio_rejects_garbage() -> None:
    for size in ("big", "0x10", "10x0", "10x", "x10", "-5x10"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            nearest_aspect_ratio(size, ("1:1",))


@pytest.mark.parametrize(
    ("task", "model", "message"),
    [
        (ImageTask("x", size="wide"), "core", "WIDTHxHEIGHT"),
        (ImageTask("x"), "stable-diffusion-xl-1024-v1-0", "unknown Stability image model"),
    ],
)
def test_unusable_size_or_model_is_refused_without_a_call(
    fake: FakeServer, task: ImageTask, model: str, message: str
) -> None:
    outcome = call(base(fake), task, model=model)
    assert isinstance(outcome.error, RejectedInput)
    assert message in str(outcome.error)
    assert fake.requests() == []


def test_base_url_without_prefix_and_trailing_slash(fake: FakeServer) -> None:
    shapes.mount_stability_ok(fake)
    assert call(f"{fake.url}/").error is None
    assert fake.requests()[0].path == "/v2beta/stable-image/generate/core"


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------


def test_webp_answer_keeps_its_media_type(fake: FakeServer) -> None:
    fake.route("POST", shapes.generate_path("core", PREFIX), shapes.image_ok(b"RIFF....WEBPVP8 ",
               media_type="image/webp"))  # fmt: skip
    outcome = call(base(fake))
    assert outcome.result is not None
    assert (outcome.result.data, outcome.result.media_type) == (b"RIFF....WEBPVP8 ", "image/webp")


def test_content_filtered_is_refused_input(fake: FakeServer) -> None:
    fake.route("POST", shapes.generate_path("core", PREFIX), shapes.content_filtered(b"blur"))
    outcome = call(base(fake))
    assert isinstance(outcome.error, RejectedInput)
    assert "CONTENT_FILTERED" in str(outcome.error)


CLASSIFICATION = [
    pytest.param(shapes.payment_required(), QuotaExhausted, 402, None, id="402-payment_required"),
    pytest.param(shapes.unauthorized(), AuthFailed, 401, None, id="401-unauthorized"),
    pytest.param(shapes.content_moderation(), RejectedInput, 403, None, id="403-moderation"),
    pytest.param(
        shapes.error(403, "forbidden", "Your account is suspended."),
        AuthFailed,
        403,
        None,
        id="403-other",
    ),
    pytest.param(shapes.bad_request(), RejectedInput, 400, None, id="400-bad_request"),
    pytest.param(shapes.payload_too_large(), RejectedInput, 413, None, id="413-too-large"),
    pytest.param(shapes.unprocessable(), RejectedInput, 422, None, id="422-rejected"),
    pytest.param(shapes.rate_limited(), RateLimited, 429, 60.0, id="429-default-60s"),
    pytest.param(
        shapes.rate_limited({"retry-after": "7"}), RateLimited, 429, 7.0, id="429-retry-after"
    ),
    pytest.param(shapes.server_error(), Transient, 500, None, id="500"),
    pytest.param(shapes.html_bad_gateway(), Transient, 502, None, id="502-html"),
    pytest.param(
        Reply(status=503, body=b"upstream connect error"), Transient, 503, None, id="503-text"
    ),
    pytest.param(
        Reply(status=200, json={"image": "aGk=", "finish_reason": "SUCCESS"}),
        Transient,
        200,
        None,
        id="200-json-not-image",
    ),
    pytest.param(
        Reply(status=200, body=b"", headers={"content-type": "image/png"}),
        Transient,
        200,
        None,
        id="200-empty-image",
    ),
    pytest.param(
        shapes.image_ok(b"png", finish_reason="ERROR"), Transient, 200, None, id="200-odd-reason"
    ),
]


@pytest.mark.parametrize(("reply", "kind", "status", "retry_after"), CLASSIFICATION)
def test_classification(
    fake: FakeServer,
    reply: Reply,
    kind: type[ProviderError],
    status: int,
    retry_after: float | None,
) -> None:
    fake.route("POST", shapes.generate_path("core", PREFIX), reply)
    outcome = call(base(fake))
    assert type(outcome.error) is kind, outcome.error
    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.retry_after) == (status, retry_after)
    assert outcome.error.provider == "stability"
    assert len(fake.requests()) == 1  # no retry inside the adapter


def test_error_message_names_the_error_and_never_the_key(fake: FakeServer) -> None:
    echo = shapes.error(401, "unauthorized", f"authorization: bad key {KEY}")
    fake.route("POST", shapes.generate_path("core", PREFIX), echo)
    error = call(base(fake)).error
    assert isinstance(error, AuthFailed)
    assert KEY not in str(error)
    assert str(error) == "HTTP 401: unauthorized: authorization: bad key ***"


def test_quota_message_keeps_the_provider_text(fake: FakeServer) -> None:
    fake.route("POST", shapes.generate_path("core", PREFIX), shapes.payment_required())
    error = call(base(fake)).error
    assert isinstance(error, QuotaExhausted)
    assert str(error).startswith("HTTP 402: payment_required: You lack sufficient credits")
    assert error.resets_at is None  # bought credits never come back by themselves


def test_timeout_is_transient(fake: FakeServer) -> None:
    fake.route("POST", shapes.generate_path("core", PREFIX), Reply(delay_s=5, body=b"late"))
    error = call(base(fake), timeout_s=0.3).error
    assert isinstance(error, Transient)
    assert str(error) == "timed out after 0.3 s"


def test_refused_connection_is_transient() -> None:
    with FakeServer() as gone:
        url = gone.url
    error = call(url).error
    assert isinstance(error, Transient)
    assert re.fullmatch(r"connection to 127\.0\.0\.1:\d+ failed: ConnectError", str(error))


def test_dropped_connection_is_transient(fake: FakeServer) -> None:
    fake.route("POST", shapes.generate_path("core", PREFIX), Reply(close=True))
    error = call(base(fake)).error
    assert isinstance(error, Transient)
    assert str(error).startswith("connection to 127.0.0.1:")


# --------------------------------------------------------------------------------------------
# The real CLI
# --------------------------------------------------------------------------------------------


def test_cli_run_image_on_stability(tmp_path: Path, fake: FakeServer) -> None:
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "stability": (
                f"adapter: stability\nbase_url: {base(fake)}\napi_key_env: STABILITY_API_KEY\n"
                "models: {image: core}\n"
                "quotas:\n  - {metric: credits, limit: 25, per: total}"
            )
        },
        {"image": ["stability"]},
    )
    data = shapes.mount_stability_ok(fake, PREFIX)
    out = tmp_path / "fox.png"
    result = run_cli(
        "--config", str(config), "run", "image", "a red fox", "-o", str(out), "--size",
        "1920x1080", "--json", env=clean_env(STABILITY_API_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    payload = result.json()
    assert (payload["ok"], payload["task"], payload["provider"]) == (True, "image", "stability")
    assert payload["model"] == "core"
    assert payload["usage"] == {"requests": 1, "images": 1, "credits": 3}
    assert Path(str(payload["path"])).resolve() == out.resolve()
    assert out.read_bytes() == data
    with Image.open(out) as image:
        assert (image.format, image.size) == ("PNG", (16, 9))
    [request] = fake.requests()
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert shapes.multipart_fields(request) == {
        "prompt": "a red fox",
        "output_format": "png",
        "aspect_ratio": "16:9",
    }


def test_cli_counts_stability_credits_in_the_ledger(tmp_path: Path, fake: FakeServer) -> None:
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "stability": (
                f"adapter: stability\nbase_url: {base(fake)}\napi_key_env: STABILITY_API_KEY\n"
                "models: {image: ultra}\n"
                "quotas:\n  - {metric: credits, limit: 25, per: total}"
            )
        },
        {"image": ["stability"]},
    )
    shapes.mount_stability_ok(fake, PREFIX, endpoint="ultra")
    env = clean_env(STABILITY_API_KEY=KEY)
    out = tmp_path / "a.png"
    run = run_cli("--config", str(config), "run", "image", "x", "-o", str(out), env=env)
    assert run.code == 0, run.stderr
    report = json.loads(run_cli("--config", str(config), "quota", "report", "--json").stdout)
    [row] = report["providers"]
    assert row["windows"][0]["used"] == 8
