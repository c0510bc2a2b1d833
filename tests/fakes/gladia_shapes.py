"""Replies shaped like Gladia's v2 pre-recorded API answers.

Sources: Gladia API reference v2 (`POST /v2/upload` -> `{"audio_url", "audio_metadata"}`, `POST
/v2/pre-recorded` -> `{"id", "result_url"}`, `GET /v2/pre-recorded/{id}` -> the job with `status`
queued|processing|done|error, `error_code`, `result.metadata`, `result.transcription`), the
"Audio-to-LLM" guide and the generated SDK models (AudioToLlmListDTO: `{success, is_empty,
exec_time, error, results: [{success, is_empty, exec_time, error, results: {prompt, response}}]}`),
and the error DTOs (`{timestamp, path, request_id, statusCode, message, validation_errors?}`).
Gladia does not document its out-of-credit answer; `out_of_credit()` is our assumption (a 402
with the error DTO), as is every error `message` text here.
"""

from __future__ import annotations

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "AUDIO_URL",
    "JOB_ID",
    "bad_key",
    "create_ok",
    "create_path",
    "done",
    "error_dto",
    "failed",
    "llm_done",
    "mount_gladia_ok",
    "out_of_credit",
    "poll_path",
    "processing",
    "queued",
    "rate_limited",
    "server_error",
    "upload_ok",
    "upload_path",
    "validation_error",
]

JOB_ID = "45463597-20b7-4af7-b3b3-f5fb778203ab"
FILE_ID = "6c09400e-23d2-4bd2-be55-96a5ececfa3b"
AUDIO_URL = f"https://api.gladia.io/file/{FILE_ID}"


def _root(prefix: str) -> str:
    """Where a fake provider is mounted: "aai", "/aai" and "/aai/" all mean /aai; "" the root."""
    prefix = prefix.strip("/")
    return f"/{prefix}" if prefix else ""


def upload_path(prefix: str = "") -> str:
    return f"{_root(prefix)}/v2/upload"


def create_path(prefix: str = "") -> str:
    return f"{_root(prefix)}/v2/pre-recorded"


def poll_path(prefix: str = "", job_id: str = JOB_ID) -> str:
    return f"{_root(prefix)}/v2/pre-recorded/{job_id}"


def upload_ok(duration: float = 1.0, filename: str = "hello.wav") -> Reply:
    return Reply(
        json={
            "audio_url": AUDIO_URL,
            "audio_metadata": {
                "id": FILE_ID,
                "filename": filename,
                "extension": filename.rsplit(".", 1)[-1],
                "size": 16044,
                "audio_duration": duration,
                "number_of_channels": 1,
            },
        }
    )


def create_ok(job_id: str = JOB_ID) -> Reply:
    """201 Created with the job id and where its result will be."""
    return Reply(
        status=201,
        json={"id": job_id, "result_url": f"https://api.gladia.io/v2/pre-recorded/{job_id}"},
    )


def _job(status: str, job_id: str, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": job_id,
        "request_id": f"G-{job_id[:8]}",
        "version": 2,
        "status": status,
        "created_at": "2026-11-21T09:04:17.210Z",
        "completed_at": None,
        "custom_metadata": None,
        "error_code": None,
        "kind": "pre-recorded",
        "file": {
            "id": FILE_ID,
            "filename": "hello.wav",
            "source": None,
            "audio_duration": 1.0,
            "number_of_channels": 1,
        },
        "request_params": {"audio_url": AUDIO_URL},
        "result": None,
    }
    body.update(fields)
    return body


def queued(job_id: str = JOB_ID) -> Reply:
    return Reply(json=_job("queued", job_id))


def processing(job_id: str = JOB_ID) -> Reply:
    return Reply(json=_job("processing", job_id))


def _result(
    text: str,
    utterances: list[tuple[str, float, float]],
    audio_duration: float | None,
    billing_time: float | None,
) -> dict[str, object]:
    metadata: dict[str, object] = {"number_of_distinct_channels": 1, "transcription_time": 1.7}
    if audio_duration is not None:
        metadata["audio_duration"] = audio_duration
    if billing_time is not None:
        metadata["billing_time"] = billing_time
    return {
        "metadata": metadata,
        "transcription": {
            "full_transcript": text,
            "languages": ["en"],
            "utterances": [
                {
                    "text": t,
                    "start": s,
                    "end": e,
                    "confidence": 0.93,
                    "channel": 0,
                    "language": "en",
                    "words": [{"word": t, "start": s, "end": e, "confidence": 0.93}],
                }
                for t, s, e in utterances
            ],
        },
    }


def done(
    text: str = "Hello world.",
    *,
    job_id: str = JOB_ID,
    utterances: list[tuple[str, float, float]] | None = None,
    audio_duration: float | None = 1.0,
    billing_time: float | None = 1.0,
) -> Reply:
    utterances = [("Hello world.", 0.12, 1.01)] if utterances is None else utterances
    return Reply(
        json=_job(
            "done",
            job_id,
            completed_at="2026-11-21T09:04:37.210Z",
            result=_result(text, utterances, audio_duration, billing_time),
        )
    )


def llm_done(
    prompt: str,
    response: str | None,
    *,
    job_id: str = JOB_ID,
    success: bool = True,
    error: dict[str, object] | None = None,
    billing_time: float | None = 1.0,
) -> Reply:
    """A done job whose result carries the Audio-to-LLM answer to one prompt."""
    item = {
        "success": success,
        "is_empty": response is None and success,
        "exec_time": 1.1,
        "error": error,
        "results": {"prompt": prompt, "response": response} if success else None,
    }
    result = _result("Hello world.", [("Hello world.", 0.12, 1.01)], 1.0, billing_time)
    result["audio_to_llm"] = {
        "success": success,
        "is_empty": False,
        "exec_time": 1.2,
        "error": error,
        "results": [item],
    }
    return Reply(json=_job("done", job_id, result=result))


def failed(error_code: int | None, *, job_id: str = JOB_ID) -> Reply:
    """The job ended in `status: error`; `error_code` is the HTTP status of the failure."""
    return Reply(json=_job("error", job_id, error_code=error_code, file=None, request_params=None))


def error_dto(
    status: int,
    message: str,
    *,
    path: str = "/v2/pre-recorded",
    validation_errors: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    body: dict[str, object] = {
        "timestamp": "2026-11-21T09:04:17.210Z",
        "path": path,
        "request_id": "G-9f8e7d6c",
        "statusCode": status,
        "message": message,
    }
    if validation_errors is not None:
        body["validation_errors"] = validation_errors
    return Reply(status=status, json=body, headers=headers or {})


def bad_key() -> Reply:
    return error_dto(401, "Invalid or missing API key", path="/v2/upload")


def out_of_credit() -> Reply:
    return error_dto(402, "Your credit balance is exhausted. Please top up your wallet.")


def rate_limited(retry_after: str = "5") -> Reply:
    return error_dto(
        429, "Too many concurrent transcriptions", headers={"retry-after": retry_after}
    )


def validation_error() -> Reply:
    return error_dto(
        400,
        "Validation failed",
        validation_errors=["language_config.languages.0 must be a valid language code"],
    )


def server_error() -> Reply:
    return error_dto(500, "Internal server error")


def mount_gladia_ok(
    fake: FakeServer,
    prefix: str = "",
    *,
    text: str = "Hello world.",
    billing_time: float = 1.0,
    llm: tuple[str, str] | None = None,
) -> None:
    """One complete successful exchange: upload, create, first poll done.

    With `llm=(prompt, response)` the done job carries an Audio-to-LLM answer (multimodal).
    """
    fake.route("POST", upload_path(prefix), upload_ok())
    fake.route("POST", create_path(prefix), create_ok())
    final = (
        llm_done(llm[0], llm[1], billing_time=billing_time)
        if llm is not None
        else done(text, billing_time=billing_time, audio_duration=billing_time)
    )
    fake.route("GET", poll_path(prefix), final)
