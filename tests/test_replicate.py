"""The Replicate adapter (through the `replicate` SDK) against a local fake of its predictions API.

What the fake reproduces, and from where (details in tests/fakes/replicate_shapes.py and
/work/shared/providers/media.md, "Replicate"):

* HTTP API reference and "Create a prediction" [doc]: official-model create
  `POST /v1/models/{owner}/{name}/predictions` with `{"input"}`, version create
  `POST /v1/predictions` with `{"version", "input"}`, `Prefer: wait=N` (N in 1..60), answered
  201 with the full prediction object; `GET /v1/predictions/{id}` until `succeeded`, `failed`,
  `canceled` or `aborted`; `Authorization: Bearer r8_...`.
* "Output files" [doc]: flux-schnell outputs a list of file URLs (webp), fetched from another
  host without our token, deleted after an hour.
* openai/gpt-4o-mini input schema [doc]: `prompt`, `image_input` (list), and its text output as
  a list of chunks; `metrics.input_token_count`/`output_token_count` [obs].
* Errors as RFC 7807 problems [doc]: 401 Unauthenticated and 402 Insufficient credit [obs,
  real bodies], 429 "Request was throttled. Your rate limit resets in ~30s." [doc] with
  `"retry_after": 5` on low-balance accounts [obs 2026-08], 422 input validation (wording
  schematic), 404, 500. Failed predictions carry free-text `error`, with Replicate's E-codes
  [doc, error-codes page] or model messages such as "NSFW content detected".
* SDK behaviour (replicate-python 1.0.7 source): `RetryTransport` retries GET on 429/503/504 up
  to 10 times; the adapter must turn that off, which the poll tests below check by count.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from scheduler.providers.replicate import ReplicateAdapter, parse_model
from scheduler.tasks import ImageTask, MultimodalTask, ProviderResult, Task, estimate_tokens
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import replicate_shapes as shapes
from tests.fakes import stability_shapes
from tests.fakes.server import FakeServer, Reply

KEY = "r8_Test0123456789abcdefghijklmn"
PREFIX = "rep"
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
CREATE = shapes.create_path(shapes.FLUX, PREFIX)
GET = shapes.get_path("q7x2k9", PREFIX)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ReplicateAdapter, "poll_interval_s", 0.01)
    yield


@dataclass
class Outcome:
    result: ProviderResult | None
    error: ProviderError | None


def call(
    base_url: str,
    task: Task | None = None,
    *,
    model: str = shapes.FLUX,
    key: str | None = KEY,
    timeout_s: float = 10,
) -> Outcome:
    """One task through the adapter over real HTTP; taxonomy errors are caught."""

    async def go() -> ProviderResult:
        async with make_client(timeout_s) as http:
            adapter = ReplicateAdapter(
                name="replicate",
                config=ProviderConfig(adapter="replicate", base_url=base_url),
                api_key=key,
                http=http,
                timeout_s=timeout_s,
            )
            return await adapter.run(task or ImageTask("a red fox"), model=model)

    try:
        return Outcome(asyncio.run(go()), None)
    except ProviderError as exc:
        return Outcome(None, exc)


def base(fake: FakeServer) -> str:
    return f"{fake.url}/{PREFIX}"


def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "square.png"
    path.write_bytes(stability_shapes.png_bytes(4, 4))
    return path


def pred(status: str, fake: FakeServer, **fields: Any) -> Reply:
    body = shapes.prediction("q7x2k9", status, base_url=base(fake), **fields)
    return Reply(status=201 if status == "starting" else 200, json=body)


# --------------------------------------------------------------------------------------------
# Requests and the job flow
# --------------------------------------------------------------------------------------------


def test_image_job_creates_polls_and_downloads(fake: FakeServer) -> None:
    data = shapes.mount_replicate_ok(fake, PREFIX)
    outcome = call(base(fake), ImageTask("a red fox", size="1920x1080"))
    assert outcome.result == ProviderResult(
        output="",
        model=shapes.FLUX,
        usage={"requests": 1, "images": 1},
        data=data,
        media_type="image/webp",
    )
    create, poll1, poll2, download = fake.requests()
    assert (create.method, create.path) == ("POST", CREATE)
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert create.headers["prefer"] == "wait=10"  # bounded by our 10 s timeout
    assert create.headers["content-type"] == "application/json"
    assert create.json() == {"input": {"prompt": "a red fox", "aspect_ratio": "16:9"}}
    for poll in (poll1, poll2):
        assert (poll.method, poll.path, poll.body) == ("GET", GET, b"")
        assert poll.headers["authorization"] == f"Bearer {KEY}"
    assert (download.method, download.path) == ("GET", shapes.delivery_path("out-0.webp", PREFIX))
    assert "authorization" not in download.headers  # the token stays with the API host


def test_prefer_wait_is_capped_at_sixty_seconds(fake: FakeServer) -> None:
    shapes.mount_replicate_ok(fake, PREFIX)
    assert call(base(fake), timeout_s=300).error is None
    assert fake.requests(CREATE)[0].headers["prefer"] == "wait=60"


@pytest.mark.parametrize(
    ("size", "ratio"),
    [("1024x768", "4:3"), ("768x1024", "3:4"), ("1024x1024", "1:1"), ("1080x1920", "9:16")],
)
def test_size_maps_to_a_flux_aspect_ratio(fake: FakeServer, size: str, ratio: str) -> None:
    shapes.mount_replicate_ok(fake, PREFIX)
    assert call(base(fake), ImageTask("x", size=size)).error is None
    assert fake.requests(CREATE)[0].json() == {"input": {"prompt": "x", "aspect_ratio": ratio}}


def test_no_size_sends_only_the_prompt(fake: FakeServer) -> None:
    shapes.mount_replicate_ok(fake, PREFIX)
    assert call(base(fake), ImageTask("x")).error is None
    assert fake.requests(CREATE)[0].json() == {"input": {"prompt": "x"}}


def test_versioned_model_uses_the_predictions_endpoint(fake: FakeServer) -> None:
    url = f"{fake.url}/files/out.png"
    fake.route(
        "POST",
        f"/{PREFIX}/v1/predictions",
        pred("succeeded", fake, model="stability-ai/sdxl", version=VERSION, output=[url]),
    )
    fake.route("GET", "/files/out.png", shapes.file_reply(b"\x89PNG....", "image/png"))
    outcome = call(base(fake), ImageTask("x"), model=f"stability-ai/sdxl:{VERSION}")
    assert outcome.result is not None, outcome.error
    assert (outcome.result.data, outcome.result.media_type) == (b"\x89PNG....", "image/png")
    assert outcome.result.model == f"stability-ai/sdxl:{VERSION}"
    [create, _download] = fake.requests()
    assert create.path == f"/{PREFIX}/v1/predictions"
    assert create.json() == {"version": VERSION, "input": {"prompt": "x"}}


def test_sync_answer_needs_no_poll(fake: FakeServer) -> None:
    url = f"{fake.url}/files/out-0.webp"
    fake.route("POST", CREATE, pred("succeeded", fake, output=[url]))
    fake.route("GET", "/files/out-0.webp", shapes.file_reply(b"RIFF"))
    assert call(base(fake)).error is None
    assert [r.path for r in fake.requests()] == [CREATE, "/files/out-0.webp"]


def test_single_url_output_and_media_type_from_the_extension(fake: FakeServer) -> None:
    url = f"{fake.url}/files/out-0.jpg"
    fake.route("POST", CREATE, pred("succeeded", fake, output=url))
    fake.route("GET", "/files/out-0.jpg", Reply(body=b"\xff\xd8\xff\xe0"))  # octet-stream
    outcome = call(base(fake))
    assert outcome.result is not None, outcome.error
    assert outcome.result.media_type == "image/jpeg"


def test_data_url_output_is_decoded_without_a_download(fake: FakeServer) -> None:
    encoded = base64.b64encode(b"\x89PNGdata").decode()
    fake.route("POST", CREATE, pred("succeeded", fake, output=[f"data:image/png;base64,{encoded}"]))
    outcome = call(base(fake))
    assert outcome.result is not None, outcome.error
    assert (outcome.result.data, outcome.result.media_type) == (b"\x89PNGdata", "image/png")
    assert len(fake.requests()) == 1


@pytest.mark.parametrize(
    ("model", "key", "kind", "message"),
    [
        ("flux-schnell", KEY, RejectedInput, "owner/name"),
        ("a/b:not-hex", KEY, RejectedInput, "owner/name"),
        (shapes.FLUX, None, AuthFailed, "no Replicate API token"),
    ],
)
def test_bad_model_or_missing_token_fails_without_a_call(
    fake: FakeServer, model: str, key: str | None, kind: type[ProviderError], message: str
) -> None:
    outcome = call(base(fake), model=model, key=key)
    assert type(outcome.error) is kind
    assert message in str(outcome.error)
    assert fake.requests() == []


def test_parse_model() -> None:
    assert parse_model("black-forest-labs/flux-schnell") == (
        "black-forest-labs",
        "flux-schnell",
        None,
    )
    assert parse_model(f"stability-ai/sdxl:{VERSION}") == ("stability-ai", "sdxl", VERSION)


# --------------------------------------------------------------------------------------------
# Multimodal
# --------------------------------------------------------------------------------------------


def test_multimodal_image_on_gpt4o_mini(fake: FakeServer, tmp_path: Path) -> None:
    text = shapes.mount_replicate_multimodal_ok(fake, PREFIX)
    picture = image_file(tmp_path)
    task = MultimodalTask("What is this?", picture, "image/png", max_tokens=50)
    outcome = call(base(fake), task, model=shapes.GPT4O_MINI)
    assert outcome.result == ProviderResult(
        output=text,
        model=shapes.GPT4O_MINI,
        usage={"requests": 1, "input_tokens": 271, "output_tokens": 4, "tokens": 275},
    )
    create = fake.requests(shapes.create_path(shapes.GPT4O_MINI, PREFIX))[0]
    encoded = base64.b64encode(picture.read_bytes()).decode()
    assert create.json() == {
        "input": {
            "prompt": "What is this?",
            "image_input": [f"data:image/png;base64,{encoded}"],
            "max_completion_tokens": 50,
        }
    }


def test_multimodal_other_models_take_image_and_usage_falls_back_to_estimates(
    fake: FakeServer, tmp_path: Path
) -> None:
    picture = image_file(tmp_path)
    fake.route(
        "POST",
        f"/{PREFIX}/v1/predictions",
        pred("succeeded", fake, model="yorickvp/llava-13b", output="A small red square.",
             metrics={"predict_time": 0.4}),
    )  # fmt: skip
    task = MultimodalTask("Describe it", picture, "image/png")
    outcome = call(base(fake), task, model=f"yorickvp/llava-13b:{VERSION}")
    assert outcome.result is not None, outcome.error
    assert outcome.result.output == "A small red square."
    estimate = task.estimate()["input_tokens"]
    output_tokens = estimate_tokens("A small red square.")
    assert outcome.result.usage == {
        "requests": 1,
        "input_tokens": estimate,
        "output_tokens": output_tokens,
        "tokens": estimate + output_tokens,
    }
    body = fake.requests()[0].json()
    assert body["version"] == VERSION
    assert set(body["input"]) == {"prompt", "image"}
    assert body["input"]["image"].startswith("data:image/png;base64,iVBORw0KGgo")


def test_multimodal_audio_is_refused_without_a_call(fake: FakeServer, tmp_path: Path) -> None:
    sound = tmp_path / "a.wav"
    sound.write_bytes(b"RIFF")
    task = MultimodalTask("What is said?", sound, "audio/wav", audio_seconds=1.0)
    outcome = call(base(fake), task, model=shapes.GPT4O_MINI)
    assert isinstance(outcome.error, RejectedInput)
    assert "audio" in str(outcome.error)
    assert fake.requests() == []


def test_multimodal_without_text_output_is_malformed(fake: FakeServer, tmp_path: Path) -> None:
    path = shapes.create_path(shapes.GPT4O_MINI, PREFIX)
    fake.route("POST", path, pred("succeeded", fake, model=shapes.GPT4O_MINI, output=None))
    task = MultimodalTask("?", image_file(tmp_path), "image/png")
    error = call(base(fake), task, model=shapes.GPT4O_MINI).error
    assert isinstance(error, Transient)
    assert str(error) == "malformed response: no text output in a succeeded prediction"


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------

CREATE_ERRORS = [
    pytest.param(shapes.insufficient_credit(), QuotaExhausted, 402, None, id="402-credit"),
    pytest.param(shapes.unauthenticated(), AuthFailed, 401, None, id="401"),
    pytest.param(shapes.throttled(retry_after=5), RateLimited, 429, 5.0, id="429-retry_after"),
    pytest.param(shapes.throttled(retry_after=None), RateLimited, 429, 30.0, id="429-detail-30s"),
    pytest.param(
        shapes.throttled(retry_after=None, headers={"retry-after": "12"}),
        RateLimited,
        429,
        12.0,
        id="429-header",
    ),
    pytest.param(shapes.invalid_input(), RejectedInput, 422, None, id="422-invalid-input"),
    pytest.param(shapes.not_found(), RejectedInput, 404, None, id="404-no-such-model"),
    pytest.param(shapes.server_error(), Transient, 500, None, id="500"),
    pytest.param(stability_shapes.html_bad_gateway(), Transient, 502, None, id="502-html"),
    pytest.param(Reply(status=201, body=b"<html>ok</html>"), Transient, 200, None, id="not-json"),
    pytest.param(Reply(status=201, json={"status": "starting"}), Transient, 200, None, id="no-id"),
    pytest.param(Reply(status=201, json=["q7x2k9"]), Transient, 200, None, id="json-list"),
]


@pytest.mark.parametrize(("reply", "kind", "status", "retry_after"), CREATE_ERRORS)
def test_create_errors(
    fake: FakeServer,
    reply: Reply,
    kind: type[ProviderError],
    status: int,
    retry_after: float | None,
) -> None:
    fake.route("POST", CREATE, reply)
    outcome = call(base(fake))
    assert type(outcome.error) is kind, outcome.error
    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.retry_after) == (status, retry_after)
    assert outcome.error.provider == "replicate"
    assert len(fake.requests()) == 1


def test_quota_message_is_the_problem_text(fake: FakeServer) -> None:
    fake.route("POST", CREATE, shapes.insufficient_credit())
    error = call(base(fake)).error
    assert isinstance(error, QuotaExhausted)
    assert str(error).startswith(
        "HTTP 402: Insufficient credit: You have insufficient credit to run this model."
    )


@pytest.mark.parametrize(
    ("reply", "kind", "status"),
    [
        (shapes.server_error(), Transient, 500),
        (Reply(status=503, json={"detail": "Service Unavailable"}), Transient, 503),
        (Reply(status=504, body=b"gateway timeout"), Transient, 504),
        (shapes.throttled(retry_after=5), RateLimited, 429),
    ],
    ids=["500", "503", "504", "429"],
)
def test_poll_errors_are_not_retried_by_the_sdk(
    fake: FakeServer, reply: Reply, kind: type[ProviderError], status: int
) -> None:
    fake.route("POST", CREATE, pred("starting", fake))
    fake.route("GET", GET, reply, default=pred("succeeded", fake, output=[]))
    outcome = call(base(fake))
    assert type(outcome.error) is kind, outcome.error
    assert outcome.error is not None and outcome.error.status == status
    assert fake.count(GET) == 1  # the SDK's RetryTransport would have tried up to 10 times


FAILED_JOBS = [
    pytest.param("failed", "NSFW content detected. Try a different prompt.", RejectedInput,
                 id="nsfw"),
    pytest.param("failed", "E005: The input or output was flagged as sensitive.", RejectedInput,
                 id="flagged"),
    pytest.param("failed", "Input validation error: could not fetch https://x/y.png",
                 RejectedInput, id="input-validation"),
    pytest.param("failed", "E1001: Model out of memory (OOM killed)", RejectedInput, id="E1001"),
    pytest.param("failed", "E6716: Timeout starting prediction", Transient, id="E6716"),
    pytest.param("failed", "E1000: Unknown error", Transient, id="E1000"),
    pytest.param("failed", "CUDA error: an illegal memory access was encountered", Transient,
                 id="crash"),
    pytest.param("failed", None, Transient, id="no-message"),
    pytest.param("canceled", None, Transient, id="canceled"),
    pytest.param("aborted", None, Transient, id="aborted"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "error", "kind"), FAILED_JOBS)
def test_jobs_that_end_without_output(
    fake: FakeServer, status: str, error: str | None, kind: type[ProviderError]
) -> None:
    fake.route("POST", CREATE, pred("starting", fake))
    fake.route("GET", GET, pred("processing", fake), pred(status, fake, error=error))
    outcome = call(base(fake))
    assert type(outcome.error) is kind, outcome.error
    expected = f"prediction q7x2k9 {status}: {error or 'no error message'}"
    assert str(outcome.error) == expected
    assert fake.count(GET) == 2  # polled to the end, no extra request


def test_succeeded_without_output_is_malformed(fake: FakeServer) -> None:
    fake.route("POST", CREATE, pred("succeeded", fake, output=None))
    error = call(base(fake)).error
    assert isinstance(error, Transient)
    assert str(error) == "malformed response: no output file URL in a succeeded prediction"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(status=404, body=b"Not Found"), "output download failed: HTTP 404"),
        (Reply(status=200, body=b""), "output download failed: HTTP 200"),
        (Reply(close=True), "output download failed: RemoteProtocolError"),
    ],
)
def test_failed_download_is_transient(fake: FakeServer, reply: Reply, message: str) -> None:
    url = f"{fake.url}/files/gone.webp"
    fake.route("POST", CREATE, pred("succeeded", fake, output=[url]))
    fake.route("GET", "/files/gone.webp", reply)
    error = call(base(fake)).error
    assert isinstance(error, Transient)
    assert str(error) == message


def test_running_past_the_timeout_is_transient(fake: FakeServer) -> None:
    fake.route("POST", CREATE, pred("starting", fake))
    fake.route("GET", GET, default=pred("processing", fake))
    error = call(base(fake), timeout_s=0.5).error
    assert isinstance(error, Transient)
    assert str(error) == "timed out after 0.5 s (prediction q7x2k9 processing)"
    assert fake.count(GET) >= 5  # it kept polling until then


def test_create_that_never_answers_is_transient(fake: FakeServer) -> None:
    fake.route("POST", CREATE, Reply(delay_s=5, json={}))
    error = call(base(fake), timeout_s=0.5).error
    assert isinstance(error, Transient)
    assert str(error).startswith("timed out after 0.5 s")


def test_refused_connection_is_transient() -> None:
    with FakeServer() as gone:
        url = gone.url
    error = call(url).error
    assert isinstance(error, Transient)
    assert re.fullmatch(r"connection to 127\.0\.0\.1:\d+ failed: ConnectError", str(error))


def test_messages_never_contain_the_key(fake: FakeServer) -> None:
    fake.route("POST", CREATE, shapes.problem(401, "Unauthenticated", f"Token {KEY} is not valid"))
    error = call(base(fake)).error
    assert isinstance(error, AuthFailed)
    assert KEY not in str(error)
    assert str(error) == "HTTP 401: Unauthenticated: Token *** is not valid"


# --------------------------------------------------------------------------------------------
# The real CLI
# --------------------------------------------------------------------------------------------


def _config(tmp_path: Path, fake: FakeServer) -> Path:
    return write_config(
        tmp_path / "providers.yaml",
        {
            "replicate": (
                f"adapter: replicate\nbase_url: {base(fake)}\napi_key_env: REPLICATE_API_KEY\n"
                f"models: {{image: {shapes.FLUX}, multimodal: {shapes.GPT4O_MINI}}}\n"
                "quotas:\n  - {metric: requests, limit: 600, per: minute}"
            )
        },
        {"image": ["replicate"], "multimodal": ["replicate"]},
    )


def test_cli_run_image_on_replicate(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    shapes.mount_replicate_ok(fake, PREFIX)
    out = tmp_path / "fox.png"
    result = run_cli(
        "--config", str(config), "run", "image", "a red fox", "-o", str(out), "--size",
        "1024x768", "--json", env=clean_env(REPLICATE_API_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    payload = result.json()
    assert (payload["provider"], payload["model"]) == ("replicate", shapes.FLUX)
    assert payload["usage"] == {"requests": 1, "images": 1}
    assert Path(str(payload["path"])).resolve() == out.resolve()
    with Image.open(out) as image:  # flux's webp, converted to what -o asked for
        assert (image.format, image.size) == ("PNG", (16, 9))
    create = fake.requests(CREATE)[0]
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert create.json() == {"input": {"prompt": "a red fox", "aspect_ratio": "4:3"}}
    assert fake.count(GET) == 2


def test_cli_run_multimodal_image_on_replicate(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    text = shapes.mount_replicate_multimodal_ok(fake, PREFIX)
    picture = image_file(tmp_path)
    result = run_cli(
        "--config", str(config), "run", "multimodal", "What is this?", "--image", str(picture),
        "--json", env=clean_env(REPLICATE_API_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    payload = result.json()
    assert (payload["provider"], payload["model"], payload["output"]) == (
        "replicate",
        shapes.GPT4O_MINI,
        text,
    )
    assert payload["usage"] == {
        "requests": 1,
        "input_tokens": 271,
        "output_tokens": 4,
        "tokens": 275,
    }
    create = fake.requests(shapes.create_path(shapes.GPT4O_MINI, PREFIX))[0]
    encoded = base64.b64encode(picture.read_bytes()).decode()
    assert create.json() == {
        "input": {"prompt": "What is this?", "image_input": [f"data:image/png;base64,{encoded}"]}
    }
    assert json.loads(create.body)["input"]["image_input"][0].startswith("data:image/png;")
