"""`sched serve`: OpenAI's HTTP API in front of the scheduler's table, fallback and ledger.

A thin ASGI shell over one `Scheduler` per worker process: each request becomes a task and
`RunOptions` (the route its `model` names, plus the caller's token limits), runs through the
same dispatcher as `sched run`, and its answer goes back in OpenAI's shape. Every worker and
every host sharing the ledger reserves in it, so limits hold across all of them exactly.

Streams start only after the first piece of the answer exists: until then a failure is still a
clean HTTP error (and a fallback), after it the status is already sent. A client that goes away
mid-stream cancels the run, and the dispatcher settles the hold by what was streamed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route as Endpoint
from starlette.types import Message as AsgiMessage

from scheduler.client import Scheduler
from scheduler.dispatcher import RunResult
from scheduler.errors import InputError, SchedError
from scheduler.gateway import shapes
from scheduler.gateway.errors import ApiError, run_failure
from scheduler.gateway.metrics import Metrics
from scheduler.gateway.routes import Route, UnknownRoute, parse_route, route_ids
from scheduler.ledger import tokens
from scheduler.ledger.store import CallerLimits
from scheduler.options import RunOptions
from scheduler.tasks import TASK_KINDS, TaskKind, TextDelta, TextTask

MAX_JSON_BYTES = 32 * 1024 * 1024  # a chat request with a few inline images
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's own limit for an audio upload
# Whether any token exists is read from the ledger at most this often per worker: a token
# created or revoked by `sched tokens` takes effect within this time.
TOKENS_TTL_S = 1.0


class Gateway:
    """The request handlers, around one open `Scheduler`."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.metrics = Metrics()
        self._tokens_checked = (-1e9, False)

    @property
    def config(self) -> Any:
        return self.scheduler.config

    # -- access ------------------------------------------------------------------------------

    async def _caller(self, request: Request, route: Route) -> CallerLimits | None:
        """The token's limits, or None on a gateway without tokens; ApiError when refused."""
        if not await self._tokens_required():
            return None
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401,
                "missing gateway token: send Authorization: Bearer sk-sched-...",
                code="no_token",
            )
        token = await self.scheduler.on_ledger(tokens.find_token, secret.strip())
        if token is None:
            raise ApiError(401, "invalid gateway token", code="invalid_token")
        why = token.usable(time.time())
        if why is not None:
            raise ApiError(401, why, code="token_not_usable")
        if not token.allows(route.name):
            raise ApiError(
                403,
                f"token {token.name!r} may not use {route.name!r}",
                "permission_error",
                "route_not_allowed",
            )
        return token.limits

    async def _admin(self, request: Request) -> None:
        """The status page and its JSON: open on a gateway without tokens (loopback only),
        else an admin token as a Bearer token or as the password of HTTP Basic auth (what a
        browser asks for by itself)."""
        if not await self._tokens_required():
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        secret = value.strip()
        if scheme.lower() == "basic":
            try:
                secret = base64.b64decode(secret).decode("utf-8").partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                secret = ""
        token = await self.scheduler.on_ledger(tokens.find_token, secret) if secret else None
        if token is None or token.usable(time.time()) is not None or not token.admin:
            raise ApiError(
                401,
                "the status page needs an admin token (sched tokens create NAME --admin)",
                code="admin_token_required",
                challenge=True,
            )

    async def status_json(self, request: Request) -> Response:
        await self._admin(request)
        return JSONResponse(await self._snapshot())

    async def status_page(self, request: Request) -> Response:
        from scheduler.status.page import render

        await self._admin(request)
        return HTMLResponse(render(await self._snapshot()))

    async def _snapshot(self) -> dict[str, Any]:
        from scheduler.status.data import snapshot

        config, keys = self.config, self.scheduler.keys
        return await self.scheduler.on_ledger(lambda ledger: snapshot(config, ledger, keys))

    async def _tokens_required(self) -> bool:
        checked_at, required = self._tokens_checked
        now = time.monotonic()
        if now - checked_at > TOKENS_TTL_S:
            required = await self.scheduler.on_ledger(tokens.any_active)
            self._tokens_checked = (now, required)
        return required

    async def _options(self, request: Request, model: object) -> tuple[Route, RunOptions]:
        if model is not None and not isinstance(model, str):
            raise ApiError(400, "'model' must be a string", param="model")
        try:
            route = parse_route(self.config, model)
        except UnknownRoute as exc:
            raise ApiError(404, str(exc), code="model_not_found", param="model") from None
        caller = await self._caller(request, route)
        options = route.options
        if caller is not None:
            options = RunOptions(
                provider=options.provider,
                strategy=options.strategy,
                free_only=options.free_only,
                caller=caller,
            )
        return route, options

    # -- endpoints ---------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        body = await _json_body(request)
        route, options = await self._options(request, body.get("model"))
        task = _translate(shapes.chat_task, body, route.model)
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream_chat(task, options, include_usage)
        run = await self._run(task, options)
        return JSONResponse(shapes.chat_completion(run), headers=_served(run))

    async def _stream_chat(
        self, task: TextTask, options: RunOptions, include_usage: bool
    ) -> Response:
        events = self.scheduler.stream(task, options)
        first = await anext(events)
        if not isinstance(first, TextDelta):  # nobody answered: a plain error, still possible
            await events.aclose()
            self.metrics.observe(first)
            if first.result is None:
                raise run_failure(first)
            return _sse_whole(first, include_usage)  # answered, but empty
        ident = shapes.completion_id()
        served = {"x-sched-provider": first.provider or "", "x-sched-model": first.model or ""}

        async def body() -> AsyncIterator[bytes]:
            model = f"{first.provider}/{first.model}"
            try:
                yield _sse(shapes.chat_chunk(ident, model, role=True, content=""))
                yield _sse(shapes.chat_chunk(ident, model, content=first.text))
                async for event in events:
                    if isinstance(event, TextDelta):
                        yield _sse(shapes.chat_chunk(ident, model, content=event.text))
                        continue
                    self.metrics.observe(event)
                    model = shapes.served_model(event)
                    if event.result is not None and event.result.truncated:
                        broke = event.attempts[-1].error or "the provider's stream broke"
                        yield _sse({"error": {"message": broke, "type": "upstream_error"}})
                    yield _sse(shapes.chat_chunk(ident, model, finish="stop"))
                    if include_usage and event.result is not None:
                        yield _sse(shapes.usage_chunk(ident, event))
                yield b"data: [DONE]\n\n"
            finally:
                await events.aclose()  # a client gone mid-stream: settle by what was sent

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={**_no_cache(), **served}
        )

    async def images(self, request: Request) -> Response:
        body = await _json_body(request)
        route, options = await self._options(request, body.get("model"))
        task, fmt = _translate(shapes.image_task, body, route.model)
        run = await self._run(task, options)
        png = await asyncio.to_thread(_as_png, run)
        return JSONResponse(shapes.image_answer(png, fmt), headers=_served(run))

    async def speech(self, request: Request) -> Response:
        body = await _json_body(request)
        route, options = await self._options(request, body.get("model"))
        task = _translate(shapes.speech_task, body, route.model)
        run = await self._run(task, options)
        audio = await asyncio.to_thread(_as_audio, run, task.format)
        media_type = shapes.AUDIO_MEDIA_TYPES[task.format]
        return Response(audio, media_type=media_type, headers=_served(run))

    async def transcriptions(self, request: Request) -> Response:
        from scheduler import media
        from scheduler.tasks import SttTask

        form = await _form(request)
        route, options = await self._options(request, form.get("model"))
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "'file' must be an uploaded audio file", param="file")
        fmt = str(form.get("response_format") or "json")
        if fmt not in shapes.TRANSCRIPT_FORMATS:
            choices = ", ".join(shapes.TRANSCRIPT_FORMATS)
            raise ApiError(
                400, f"'response_format' must be one of {choices}", param="response_format"
            )
        language = form.get("language")
        language = str(language) if language else None
        suffix = Path(str(upload.filename or "audio")).suffix[:10] or ".bin"
        data = await upload.read()
        with tempfile.TemporaryDirectory(prefix="sched-serve-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            await asyncio.to_thread(path.write_bytes, data)
            try:
                info = await asyncio.to_thread(media.probe_audio, path)
            except InputError as exc:
                raise ApiError(400, str(exc), param="file") from None
            task = SttTask(
                audio=path,
                audio_seconds=info.seconds,  # reserved before any provider is called
                mime_type=info.mime_type,
                language=language,
                model=route.model,
            )
            run = await self._run(task, options)
        answer = shapes.transcript_answer(run, fmt, info.seconds, language)
        if isinstance(answer, str):
            return PlainTextResponse(answer, headers=_served(run))
        return JSONResponse(answer, headers=_served(run))

    async def models(self, request: Request) -> Response:
        await self._caller(request, Route("auto", RunOptions()))
        ids = route_ids(self.config, TASK_KINDS)
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "sched"} for i in ids]
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        try:
            await self.scheduler.on_ledger(lambda ledger: ledger.read("SELECT 1"))
            ledger = "ok"
        except SchedError as exc:
            ledger = str(exc)
        available = {kind: self._available(kind) for kind in TASK_KINDS}
        ok = ledger == "ok"
        body = {"status": "ok" if ok else "degraded", "ledger": ledger, "providers": available}
        return JSONResponse(body, status_code=200 if ok else 503)

    def _available(self, kind: TaskKind) -> list[str]:
        """Providers that could serve `kind` by configuration (enabled, a model, a key)."""
        dispatcher = self.scheduler.dispatcher
        return [
            name
            for name in self.config.tasks.get(kind, ())
            if dispatcher.unconfigured(name, kind) is None
        ]

    async def metrics_text(self, request: Request) -> Response:
        await self._caller(request, Route("auto", RunOptions()))
        text = await self.scheduler.on_ledger(self.metrics.render, self.config)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    # -- shared ------------------------------------------------------------------------------

    async def _run(self, task: Any, options: RunOptions) -> RunResult:
        run = await self.scheduler.run(task, options)
        self.metrics.observe(run)
        if run.result is None:
            raise run_failure(run)
        return run


def _translate(build: Callable[..., Any], body: dict[str, Any], model: str | None) -> Any:
    try:
        return build(body, model)
    except shapes.BadRequest as exc:
        raise ApiError(400, str(exc), param=exc.param) from None
    except (ValueError, InputError) as exc:
        raise ApiError(400, str(exc)) from None


def _served(run: RunResult) -> dict[str, str]:
    assert run.result is not None
    return {
        "x-sched-provider": run.provider or "",
        "x-sched-model": run.result.model.encode("latin-1", "replace").decode("latin-1"),
        "x-sched-cost-usd": f"{run.cost_usd:.6f}",
    }


def _no_cache() -> dict[str, str]:
    return {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _sse(data: object) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def _sse_whole(run: RunResult, include_usage: bool) -> Response:
    ident = shapes.completion_id()
    model = shapes.served_model(run)
    chunks = [
        _sse(shapes.chat_chunk(ident, model, role=True, content="")),
        _sse(shapes.chat_chunk(ident, model, finish="stop")),
    ]
    if include_usage:
        chunks.append(_sse(shapes.usage_chunk(ident, run)))
    chunks.append(b"data: [DONE]\n\n")
    return Response(b"".join(chunks), media_type="text/event-stream", headers=_served(run))


def _as_png(run: RunResult) -> bytes:
    from scheduler import media

    assert run.result is not None and run.result.data is not None
    data = run.result.data
    if media.sniff_media_type(data[:16]) != "image/png":
        data = media.convert_image(data, ".png")
    return data


def _as_audio(run: RunResult, fmt: Any) -> bytes:
    from scheduler import media

    assert run.result is not None and run.result.data is not None
    data = run.result.data
    if media.audio_format_of(run.result.media_type, data) != fmt:
        data = media.convert_audio(data, fmt)
    return data


async def _capped_body(request: Request, cap: int) -> bytes:
    """The request body, refused (413) past `cap` bytes: from Content-Length before reading
    anything, else while reading, so a huge upload is never held in memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise ApiError(413, f"request body over {cap // (1024 * 1024)} MB", code="too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise ApiError(413, f"request body over {cap // (1024 * 1024)} MB", code="too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await _capped_body(request, MAX_JSON_BYTES)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return body


async def _form(request: Request) -> Any:
    """A multipart form read within the upload cap (Starlette parses what was read)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "send the audio as multipart/form-data", code="invalid_content_type")
    raw = await _capped_body(request, MAX_UPLOAD_BYTES)
    sent = False

    async def replay() -> AsgiMessage:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except Exception as exc:  # python-multipart's parse errors have no common base
        raise ApiError(400, f"malformed multipart body: {type(exc).__name__}") from None


def _handler(
    method: Callable[[Request], Awaitable[Response]], gateway: Gateway
) -> Callable[[Request], Awaitable[Response]]:
    """Every endpoint's errors in OpenAI's shape, counted in the metrics."""

    async def handle(request: Request) -> Response:
        try:
            response = await method(request)
        except ApiError as refused:
            response = JSONResponse(refused.body(), refused.status, headers=refused.headers())
        except SchedError as exc:  # a ledger or config problem: the gateway's own fault
            broken = ApiError(503, str(exc), "service_unavailable", "sched_error")
            response = JSONResponse(broken.body(), broken.status)
        gateway.metrics.count_request(request.url.path, response.status_code)
        return response

    return handle


def create_app(scheduler: Scheduler | None = None) -> Starlette:
    """The ASGI app around `scheduler` (by default one built from $SCHED_CONFIG and $SCHED_DB,
    as each `--workers` process does), opened at start-up and closed at shutdown."""
    scheduler = scheduler or Scheduler(
        os.environ.get("SCHED_CONFIG"), db=os.environ.get("SCHED_DB")
    )
    gateway = Gateway(scheduler)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await scheduler.open()
        try:
            yield
        finally:
            await scheduler.aclose()

    endpoints = [
        ("/v1/chat/completions", gateway.chat, "POST"),
        ("/v1/images/generations", gateway.images, "POST"),
        ("/v1/audio/transcriptions", gateway.transcriptions, "POST"),
        ("/v1/audio/speech", gateway.speech, "POST"),
        ("/v1/models", gateway.models, "GET"),
        ("/health", gateway.health, "GET"),
        ("/metrics", gateway.metrics_text, "GET"),
        ("/", gateway.status_page, "GET"),
        ("/v1/sched/status", gateway.status_json, "GET"),
    ]
    routes = [Endpoint(path, _handler(fn, gateway), methods=[m]) for path, fn, m in endpoints]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app


__all__ = ["MAX_JSON_BYTES", "MAX_UPLOAD_BYTES", "Gateway", "create_app"]
