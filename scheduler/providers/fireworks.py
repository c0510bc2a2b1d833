"""Fireworks AI: chat through its OpenAI-compatible API, images through its FLUX workflows.

Chat is the OpenAI wire format and is inherited unchanged. Images are not: Fireworks serves FLUX
at `POST /workflows/accounts/fireworks/models/{model}/text_to_image` with `{"prompt",
"aspect_ratio"}` (no `size`, no `n`), and with `Accept: image/png` answers the PNG itself, with
`Finish-Reason` and `Seed` headers (docs.fireworks.ai, "Generate an image with FLUX.1 [schnell]
FP8"). The request still goes through the openai SDK's raw path, which supplies the base URL,
the bearer key, the timeout and the status-error mapping with its retries off.

Errors use the OpenAI-like envelope `{"error": {"message", "param", "code", "type"}}`, so
`classify_error` reads them, with one Fireworks code added: 412 PRECONDITION_FAILED, "Account ...
is suspended, possibly due to reaching the monthly spending limit or failure to pay past
invoices" (observed 2026-07 on this very endpoint), is out of quota, not a refused input.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from scheduler.errors import ProviderError, QuotaExhausted, RejectedInput, Transient
from scheduler.providers.http_errors import decode_json
from scheduler.providers.openai_compat import (
    OpenAICompatAdapter,
    decode_base64,
    image_media_type,
    rate_limit_reports,
)
from scheduler.tasks import ImageTask, ProviderResult, TaskKind

# The FLUX workflow's documented `aspect_ratio` values.
ASPECT_RATIOS: tuple[str, ...] = (
    "1:1",
    "21:9",
    "16:9",
    "3:2",
    "5:4",
    "4:5",
    "2:3",
    "9:16",
    "9:21",
    "4:3",
    "3:4",
)
_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
# 412 is also what a LoRA that failed to load gets: that one is the input's fault.
_LORA = re.compile(r"\blora\b", re.IGNORECASE)


def aspect_ratio(size: str) -> str:
    """The documented aspect ratio nearest to a "WIDTHxHEIGHT" size (by log ratio, so 2:1 and
    1:2 are equally far from 1:1); ValueError when `size` is not two positive integers."""
    match = _SIZE.match(size)
    if match is None or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise ValueError(f"size must be WIDTHxHEIGHT in pixels, got {size!r}")
    wanted = math.log(int(match.group(1)) / int(match.group(2)))

    def distance(ratio: str) -> float:
        width, height = (int(part) for part in ratio.split(":"))
        return abs(math.log(width / height) - wanted)

    return min(ASPECT_RATIOS, key=distance)


def workflow_path(model: str) -> str:
    """The text_to_image path for a full id (`accounts/fireworks/models/flux-1-schnell-fp8`,
    the form the chat API uses) or a short name (`flux-1-schnell-fp8`)."""
    model = model.strip().strip("/")
    if not model.startswith("accounts/"):
        model = f"accounts/fireworks/models/{model}"
    return f"/workflows/{model}/text_to_image"


class FireworksAdapter(OpenAICompatAdapter):
    """Fireworks chat (inherited) and FLUX text-to-image."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"text", "image"})
    default_base_url = "https://api.fireworks.ai/inference/v1"

    async def image(self, task: ImageTask, *, model: str) -> ProviderResult:
        body: dict[str, Any] = {"prompt": task.prompt}
        if task.size:
            try:
                body["aspect_ratio"] = aspect_ratio(task.size)
            except ValueError as exc:
                raise RejectedInput(str(exc), provider=self.name) from None
        response = await self._post(workflow_path(model), body, headers={"Accept": "image/png"})
        image, finish = self._image_and_finish(response)
        if finish.upper() == "CONTENT_FILTERED":
            raise RejectedInput(
                "the image was filtered by the safety check (Finish-Reason: CONTENT_FILTERED)",
                provider=self.name,
                status=200,
            )
        return ProviderResult(
            output="",
            model=model,
            usage={"requests": 1, "images": 1},
            rate_limits=rate_limit_reports(response.headers, now=time.time()),
            data=image,
            media_type=image_media_type(image, provider=self.name),
        )

    def _image_and_finish(self, response: httpx.Response) -> tuple[bytes, str]:
        """The image bytes and finish reason, from the binary answer or, when the server
        answered JSON anyway, from `{"base64": [...], "finishReason"}`."""
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            if not response.content:
                raise Transient("malformed response: no image", provider=self.name, status=200)
            return response.content, response.headers.get("finish-reason", "")
        data = decode_json(response.content)
        if not isinstance(data, dict):
            raise Transient("malformed response: not JSON", provider=self.name, status=200)
        finish = str(data.get("finishReason") or response.headers.get("finish-reason", ""))
        if finish.upper() == "CONTENT_FILTERED":
            return b"", finish
        images = data.get("base64")
        if isinstance(images, list) and images and isinstance(images[0], str):
            return decode_base64(images[0], provider=self.name), finish
        self._raise_body_error(data, response, expected="")  # an error object: classified
        raise Transient("malformed response: no base64[0]", provider=self.name, status=200)

    def _classify(self, status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
        error = super()._classify(status, headers, raw)
        if status == 412 and not _LORA.search(str(error)):
            # Suspended for the monthly spend limit or unpaid invoices: no retry will help.
            return QuotaExhausted(
                str(error), provider=self.name, status=status, retry_after=error.retry_after
            )
        return error


__all__ = ["ASPECT_RATIOS", "FireworksAdapter", "aspect_ratio", "workflow_path"]
