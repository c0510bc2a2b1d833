"""Play.ht text-to-speech (historical v2 streaming API), over plain httpx.

Play.ht closed its API on 2025-12-31 (after Meta bought PlayAI in July 2025). The provider stays
in the default table, disabled, and this adapter keeps its last documented wire format so that an
old configuration still means something and a revived or compatible endpoint can be pointed at
with `base_url`.

`POST /api/v2/tts/stream` with headers `AUTHORIZATION: <secret key>` and `X-USER-ID: <user id>`,
JSON `{"text", "voice", "output_format", "voice_engine"}` and `accept: audio/mpeg` answered the
audio bytes (Play.ht API reference, archived). The user id is a second credential: it is read
from the environment variable `PLAYHT_USER_ID` (the key comes from the provider's
`api_key_env`); without it the call fails as AuthFailed before any request. The configured model
is the `voice_engine` (e.g. `Play3.0-mini`); without a voice we use the stock voice of Play.ht's
own examples. wav is asked for as wav; mp3 and opus as mp3 (the CLI converts mp3 to opus).

Error bodies were never documented (`{"error_message", "error_id"}` was seen); we classify by
status and text: 401/403 bad credentials, 402 or credit/quota text out of credit, 429 rate
limited, 400/422 refused input, 5xx transient.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import ClassVar

import httpx

from scheduler.errors import (
    AuthFailed,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
)
from scheduler.providers.base import Adapter
from scheduler.providers.http_errors import error_parts, read_error, transport_error
from scheduler.tasks import ProviderResult, TaskKind, TtsTask

DEFAULT_BASE_URL = "https://api.play.ht"
USER_ID_ENV = "PLAYHT_USER_ID"
DEFAULT_VOICE = (
    "s3://voice-cloning-zero-shot/d9ff78ba-d016-47f6-b0ef-dd630f59414e/female-cs/manifest.json"
)
_QUOTA_TEXT = re.compile(
    r"credits?\b|quota|insufficient (?:credits?|balance|funds)|(?:monthly|character|word) limit"
    r"|upgrade your plan",
    re.IGNORECASE,
)


class PlayHTAdapter(Adapter):
    """Text to speech through Play.ht's (closed) v2 streaming endpoint."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"tts"})
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL

    async def tts(self, task: TtsTask, *, model: str) -> ProviderResult:
        if not self.api_key:
            raise AuthFailed("no API key", provider=self.name)
        user_id = os.environ.get(USER_ID_ENV, "").strip()
        if not user_id:
            raise AuthFailed(
                f"no {USER_ID_ENV}: Play.ht needs the account's user id beside the key",
                provider=self.name,
            )
        wav = task.format == "wav"
        output_format, media_type = ("wav", "audio/wav") if wav else ("mp3", "audio/mpeg")
        try:
            response = await self.http.post(
                f"{self.base_url}/api/v2/tts/stream",
                headers={
                    "AUTHORIZATION": self.api_key,
                    "X-USER-ID": user_id,
                    "accept": media_type,
                },
                json={
                    "text": task.text,
                    "voice": task.voice or DEFAULT_VOICE,
                    "output_format": output_format,
                    "voice_engine": model,
                },
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
        if not response.is_success:
            raise classify_error(*error_parts(response), provider=self.name, secret=self.api_key)
        content_type = response.headers.get("content-type", "")
        if not response.content or content_type.startswith(("application/json", "text/")):
            raise Transient(
                f"malformed response: no audio ({content_type or 'empty body'})",
                provider=self.name,
                status=response.status_code,
            )
        return ProviderResult(
            output="",
            model=model,
            usage={"requests": 1, "characters": len(task.text)},
            data=response.content,
            media_type=media_type,
        )


def _message(body: object) -> str | None:
    """The first text among the keys Play.ht error bodies were seen with; None without one."""
    if isinstance(body, dict):
        for key in ("error_message", "message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return None


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map one failed Play.ht response to the taxonomy by status and message text."""
    answer = read_error(status, headers, raw, secret=secret, now=now, message_of=_message)
    message, text, kwargs = answer.message, answer.text, answer.fields(provider)
    if status == 402 or (status in (400, 403, 429) and _QUOTA_TEXT.search(message)):
        return QuotaExhausted(text, **kwargs)
    if status == 429:
        return RateLimited(text, **kwargs)
    if status in (401, 403):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 425) or status >= 500 or status < 400:
        return Transient(text, **kwargs)
    if answer.model_gone:
        return ModelUnavailable(text, **kwargs)
    return RejectedInput(text, **kwargs)


__all__ = ["DEFAULT_VOICE", "USER_ID_ENV", "PlayHTAdapter", "classify_error"]
