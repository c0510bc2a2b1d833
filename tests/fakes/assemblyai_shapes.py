"""Replies shaped like AssemblyAI's pre-recorded transcription API answers.

Sources: AssemblyAI API reference (upload, submit, get transcript), the "Transcript status" and
"Troubleshoot common errors" guides (AssemblyAI/cookbook core-transcription/
common_errors_and_solutions.md) and the `assemblyai` SDK 1.8 response models (`TranscriptResponse`
needs `audio_url` and `status`; words and utterances carry `text`, `start`, `end` in
milliseconds and `confidence`). Errors are `{"error": "..."}`, except that the upload endpoint has
been seen answering a bad key with the plain text `Invalid API key` (media.md, obs 2025).
"""

from __future__ import annotations

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "AUTH_ERROR",
    "BALANCE_NEGATIVE",
    "DOWNLOAD_ERROR",
    "NOT_AUDIO_ERROR",
    "SERVER_ERROR",
    "TRANSCRIPT_ID",
    "UPLOAD_URL",
    "auth_error",
    "balance_negative",
    "completed",
    "error_reply",
    "failed",
    "invalid_key_text",
    "mount_assemblyai_ok",
    "poll_path",
    "processing",
    "queued",
    "rate_limited",
    "server_error",
    "submit_path",
    "upload_ok",
    "upload_path",
]

TRANSCRIPT_ID = "5551722-f677-48a6-9287-39c0aafd9ac1"
UPLOAD_URL = "https://cdn.assemblyai.com/upload/8e1b1e4a-6c4e-4e0a-9f3b-0d1f2c3a4b5c"

BALANCE_NEGATIVE = (
    "Your current account balance is negative. Please top up to continue using the API."
)
AUTH_ERROR = "Authentication error, API token missing/invalid."
SERVER_ERROR = "Server error, developers have been alerted."
DOWNLOAD_ERROR = (
    "Download error, unable to download https://foo.bar. Please make sure the file exists and is "
    "accessible from the internet."
)
NOT_AUDIO_ERROR = (
    "File does not appear to contain audio. File type is text/html (HTML document, ASCII text)."
)


def _root(prefix: str) -> str:
    """Where a fake provider is mounted: "aai", "/aai" and "/aai/" all mean /aai; "" the root."""
    prefix = prefix.strip("/")
    return f"/{prefix}" if prefix else ""


def upload_path(prefix: str = "") -> str:
    return f"{_root(prefix)}/v2/upload"


def submit_path(prefix: str = "") -> str:
    return f"{_root(prefix)}/v2/transcript"


def poll_path(prefix: str = "", transcript_id: str = TRANSCRIPT_ID) -> str:
    return f"{_root(prefix)}/v2/transcript/{transcript_id}"


def upload_ok(url: str = UPLOAD_URL) -> Reply:
    """200 `{"upload_url"}`: the uploaded file's private CDN address."""
    return Reply(json={"upload_url": url})


def _transcript(status: str, transcript_id: str, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": transcript_id,
        "status": status,
        "audio_url": UPLOAD_URL,
        "language_model": "assemblyai_default",
        "acoustic_model": "assemblyai_default",
        "speech_models": ["universal-2"],
        "text": None,
        "words": None,
        "utterances": None,
        "confidence": None,
        "audio_duration": None,
        "punctuate": True,
        "format_text": True,
        "webhook_url": None,
        "error": None,
    }
    body.update(fields)
    return body


def queued(transcript_id: str = TRANSCRIPT_ID) -> Reply:
    """The submit answer (and early polls): the transcript object in `queued`."""
    return Reply(json=_transcript("queued", transcript_id))


def processing(transcript_id: str = TRANSCRIPT_ID) -> Reply:
    return Reply(json=_transcript("processing", transcript_id))


def completed(
    text: str = "Hello world.",
    *,
    transcript_id: str = TRANSCRIPT_ID,
    words: list[tuple[str, int, int]] | None = None,
    utterances: list[tuple[str, int, int]] | None = None,
    audio_duration: int | None = 2,
    speech_model_used: str | None = "universal-2",
    language_code: str = "en",
) -> Reply:
    """A finished transcript; `words`/`utterances` are (text, start_ms, end_ms)."""
    words = [("Hello", 120, 480), ("world.", 520, 1010)] if words is None else words
    fields: dict[str, object] = {
        "text": text,
        "words": [
            {"text": w, "start": s, "end": e, "confidence": 0.98, "speaker": None}
            for w, s, e in words
        ],
        "confidence": 0.97,
        "audio_duration": audio_duration,
        "language_code": language_code,
        "speech_model_used": speech_model_used,
    }
    if utterances is not None:
        fields["utterances"] = [
            {
                "text": t,
                "start": s,
                "end": e,
                "confidence": 0.97,
                "speaker": "A",
                "words": [{"text": t, "start": s, "end": e, "confidence": 0.97, "speaker": "A"}],
            }
            for t, s, e in utterances
        ]
    return Reply(json=_transcript("completed", transcript_id, **fields))


def failed(error: str = DOWNLOAD_ERROR, *, transcript_id: str = TRANSCRIPT_ID) -> Reply:
    """HTTP 200 with `status: error`: the job failed, the request did not."""
    return Reply(json=_transcript("error", transcript_id, error=error))


def error_reply(status: int, error: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, json={"error": error}, headers=headers or {})


def balance_negative() -> Reply:
    """Out of credit is a 400, not a 402 or 429."""
    return error_reply(400, BALANCE_NEGATIVE)


def auth_error() -> Reply:
    return error_reply(401, AUTH_ERROR)


def invalid_key_text() -> Reply:
    """The upload endpoint's bad-key answer: plain text, not JSON."""
    return Reply(status=401, body="Invalid API key", headers={"content-type": "text/plain"})


def rate_limited(retry_after: str = "7") -> Reply:
    return error_reply(429, "Too Many Requests", headers={"retry-after": retry_after})


def server_error() -> Reply:
    return error_reply(500, SERVER_ERROR)


def mount_assemblyai_ok(
    fake: FakeServer,
    prefix: str = "",
    *,
    text: str = "Hello world.",
    transcript_id: str = TRANSCRIPT_ID,
    audio_duration: int | None = 2,
) -> None:
    """One complete successful exchange: upload, submit (queued), first poll completed."""
    fake.route("POST", upload_path(prefix), upload_ok())
    fake.route("POST", submit_path(prefix), queued(transcript_id))
    fake.route(
        "GET",
        poll_path(prefix, transcript_id),
        completed(text, transcript_id=transcript_id, audio_duration=audio_duration),
    )
