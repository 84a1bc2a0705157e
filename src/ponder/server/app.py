"""The HTTP app: ``POST /v1/chat/completions`` (strategy or pass-through), ``/v1/completions`` and
``/v1/embeddings`` (always passed through), models, health, metrics.

A request names a strategy in one of three ways (giving two different ones is a 400): the model name
``ponder:SPEC@MODEL`` (grammar in :mod:`ponder.server.schema`), the request's ``ponder.strategy``
(``extra_body={"ponder": {...}}`` in the OpenAI client), or the ``X-Ponder-Strategy`` header. With
none (and no ``default_strategy``), or with the strategy ``none`` (which overrides the default), the
request body is forwarded unchanged to the upstream and its response, streamed or not, is relayed byte
for byte: tools, logprobs and streaming stay untouched.

With a strategy, the whole message list is the problem; ``temperature``, ``top_p``, ``max_tokens``
and ``seed`` become strategy options (400 when the strategy has no such option); ``n`` runs that many
independent strategy runs (seeds ``seed + i * 1000003``) up to ``max_n``; ``stop``, tools, logprobs
and penalties are rejected with 400 because a strategy cannot honour them. ``usage`` is the sum over
every upstream call the strategy made. A client disconnect or the request timeout cancels the
strategy task, and with it every upstream call in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ponder.core.types import Result, Usage
from ponder.server.errors import HTTPFailure, InvalidRequest, error_body, to_failure
from ponder.server.lifecycle import (
    CleanupStreamingResponse,
    ClientDisconnected,
    ServerSettings,
    Slot,
    State,
    Upstream,
    admit,
    authorize,
    failure_response,
    sse,
    until_disconnect,
    wait_for_disconnect,
)
from ponder.server.plan import (
    Plan,
    final_text,
    parse_request,
    plan_strategy,
    ponder_object,
    run_plan,
    usage_of,
)
from ponder.server.proxy import check_passthrough, passthrough
from ponder.server.schema import (
    NO_STRATEGY,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChunkChoice,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    ForwardableRequest,
    PonderRequest,
    split_model,
)
from ponder.server.upstream_http import UpstreamClient

log = logging.getLogger("ponder.server")

STRATEGY_HEADER = "x-ponder-strategy"
CONTENT_PIECE = 48  # characters per streamed content delta


def server_timing(started: float, results: list[Result]) -> dict[str, str]:
    upstream = sum(r.usage.seconds for r in results) * 1000
    total = (time.monotonic() - started) * 1000
    return {"Server-Timing": f"total;dur={total:.2f}, upstream;dur={upstream:.2f}"}


# -- routes ---------------------------------------------------------------------------------------------
@dataclass
class Exchange:
    """What the error path of a request needs to know: its slot, once admitted, and its upstream."""

    slot: Slot | None = None
    upstream: str | None = None


async def answer(request: Request, work: Callable[[State, Exchange], Awaitable[Response]]) -> Response:
    """Run a route's ``work``; every failure leaves as one OpenAI-style error body, the slot released."""
    state: State = request.app.state.ponder
    exchange = Exchange()
    streaming = False
    try:
        authorize(request, state.settings.api_keys)
        response = await work(state, exchange)
        streaming = isinstance(response, StreamingResponse)
        return response
    except ClientDisconnected:
        if exchange.slot:
            exchange.slot.release(499, "client_disconnected")
        else:
            state.metrics.observe("rejected", 499, 0.0, "client_disconnected")
        return Response(status_code=499)
    except Exception as error:
        failure = to_failure(error, exchange.upstream)
        if failure.status >= 500:  # the log may name upstream URLs (for the operator), never keys
            log.warning("request failed (%d): %s", failure.status, error, exc_info=failure.status == 500)
        failure = state.redactor.failure(failure)  # the client learns upstream names, never addresses
        if exchange.slot:
            exchange.slot.release(failure.status, failure.type)
        else:
            state.metrics.observe("rejected", failure.status, 0.0, failure.type)
        return failure_response(failure)
    finally:
        if exchange.slot and not streaming:
            exchange.slot.release(200)


def requested_strategy(request: Request, model_spec: str | None, ponder: PonderRequest | None) -> str | None:
    """The strategy the request names (model prefix, ``ponder.strategy`` or header), given at most once."""
    given = {
        "model prefix": model_spec,
        "ponder.strategy": ponder.strategy if ponder else None,
        "X-Ponder-Strategy header": (request.headers.get(STRATEGY_HEADER) or "").strip() or None,
    }
    chosen = {source: spec for source, spec in given.items() if spec}
    if len(set(chosen.values())) > 1:
        raise InvalidRequest(f"strategy given differently by {', '.join(chosen)}; give it once")
    return next(iter(chosen.values()), None)


def served(state: State, model: str | None) -> str:
    """The upstream a request's model names (the default one when it names none); 404 if not served."""
    name = model or state.default_upstream
    if name not in state.upstreams:
        message = f"model {name!r} is not served here; models: {', '.join(state.upstreams)}"
        raise HTTPFailure(404, message, "invalid_request_error", "model_not_found", "model")
    return name


async def chat_completions(request: Request) -> Response:
    async def work(state: State, exchange: Exchange) -> Response:
        body, chat = parse_request(await request.body(), ChatRequest)
        prefix_spec, model = split_model(chat.model)
        spec = requested_strategy(request, prefix_spec, chat.ponder) or state.settings.default_strategy
        name = exchange.upstream = served(state, model)
        if spec == NO_STRATEGY:  # the client's way past the operator's default strategy
            spec = None
        if spec is None:
            check_passthrough(state.upstreams[name], chat, state.settings)
            slot = exchange.slot = await admit(request, state, "passthrough")
            return await passthrough(request, state, state.upstreams[name], body, chat, slot)
        plan = plan_strategy(spec, chat, state.settings, state.policy)
        slot = exchange.slot = await admit(request, state, "strategy")
        if chat.stream:
            return stream_strategy(request, state, name, plan, chat, slot)
        return await complete_strategy(request, state, name, plan, chat, slot)

    return await answer(request, work)


def forwarding(route: str, kind: type[ForwardableRequest]) -> Callable[[Request], Awaitable[Response]]:
    """The handler of a route that always passes through (completions, embeddings): no strategy applies."""

    async def handler(request: Request) -> Response:
        async def work(state: State, exchange: Exchange) -> Response:
            body, forwarded = parse_request(await request.body(), kind)
            prefix_spec, model = split_model(forwarded.model)
            if requested_strategy(request, prefix_spec, forwarded.ponder) not in (None, NO_STRATEGY):
                message = f"strategies apply to /v1/chat/completions only; /v1/{route} passes through"
                raise InvalidRequest(message, param="model")
            name = exchange.upstream = served(state, model)
            check_passthrough(state.upstreams[name], forwarded, state.settings)
            slot = exchange.slot = await admit(request, state, "passthrough")
            return await passthrough(request, state, state.upstreams[name], body, forwarded, slot, route)

        return await answer(request, work)

    return handler


async def complete_strategy(
    request: Request, state: State, upstream: str, plan: Plan, chat: ChatRequest, slot: Slot
) -> Response:
    results = await until_disconnect(
        request, run_plan(plan, state.metered, upstream), state.settings.request_timeout
    )
    choices = []
    for index, result in enumerate(results):
        text, finish = final_text(result)
        choices.append(Choice(index=index, message=AssistantMessage(content=text), finish_reason=finish))
    completion = ChatCompletion(
        id=f"chatcmpl-ponder-{uuid.uuid4().hex[:24]}",
        created=int(time.time()),
        model=chat.model,
        choices=choices,
        usage=usage_of(results),
        ponder=ponder_object(plan, upstream, results) if plan.include else None,
    )
    return Response(
        completion.model_dump_json(exclude_none=True),
        media_type="application/json",
        headers=server_timing(slot.started, results),
    )


def stream_strategy(
    request: Request, state: State, upstream: str, plan: Plan, chat: ChatRequest, slot: Slot
) -> Response:
    """SSE: role, ``ponder`` progress chunks while the strategy works, the answer, usage, ``[DONE]``."""
    ident, created = f"chatcmpl-ponder-{uuid.uuid4().hex[:24]}", int(time.time())
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    tasks: list[asyncio.Task[Any]] = []

    def chunk(**fields: Any) -> bytes:
        piece = ChatCompletionChunk(id=ident, created=created, model=chat.model, **fields)
        data = piece.model_dump(exclude_none=True)
        if include_usage:
            data.setdefault("usage", None)
        return sse(data)

    async def events() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[tuple[int, str, dict[str, Any]] | None] = asyncio.Queue()

        def on_event(index: int, kind: str, data: dict[str, Any]) -> None:
            queue.put_nowait((index, kind, data))

        async def work() -> list[Result]:
            async with asyncio.timeout(state.settings.request_timeout):
                return await run_plan(plan, state.metered, upstream, on_event)

        run = asyncio.create_task(work())
        run.add_done_callback(lambda _: queue.put_nowait(None))
        watcher = asyncio.create_task(wait_for_disconnect(request))
        watcher.add_done_callback(lambda _: run.cancel())
        tasks.extend([run, watcher])
        roles = [
            ChunkChoice(index=i, delta=Delta(role="assistant", content="")) for i in range(len(plan.seeds))
        ]
        yield chunk(choices=roles)
        while (item := await queue.get()) is not None:
            index, kind, data = item
            event: dict[str, Any] = {"event": kind, "choice": index}
            event.update({k: v for k, v in data.items() if isinstance(v, int | float | str | bool)})
            if isinstance(data.get("usage"), Usage):
                event["completion_tokens"] = data["usage"].completion_tokens
            yield chunk(ponder=event)
        if run.cancelled():
            slot.release(499, "client_disconnected")
            return
        try:
            results = run.result()
        except Exception as error:
            failure = state.redactor.failure(to_failure(error, upstream))
            slot.release(failure.status, failure.type)
            yield sse(error_body(failure))
            return
        finishes = []
        for index, result in enumerate(results):
            text, finish = final_text(result)
            finishes.append(finish)
            for start in range(0, len(text), CONTENT_PIECE):
                piece = Delta(content=text[start : start + CONTENT_PIECE])
                yield chunk(choices=[ChunkChoice(index=index, delta=piece)])
        yield chunk(
            choices=[ChunkChoice(index=i, delta=Delta(), finish_reason=f) for i, f in enumerate(finishes)]
        )
        if plan.include:
            yield chunk(ponder={"event": "result", **ponder_object(plan, upstream, results)})
        if include_usage:
            yield sse(
                ChatCompletionChunk(
                    id=ident, created=created, model=chat.model, usage=usage_of(results)
                ).model_dump(exclude_none=True)
            )
        yield sse("[DONE]")
        slot.release(200)

    def cleanup() -> None:
        for task in tasks:
            task.cancel()
        slot.release(499, "client_disconnected")

    return CleanupStreamingResponse(events(), cleanup, media_type="text/event-stream")


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "ponder"}


async def list_models(request: Request) -> Response:
    state: State = request.app.state.ponder
    try:
        authorize(request, state.settings.api_keys)
    except HTTPFailure as failure:
        return failure_response(failure)
    return JSONResponse({"object": "list", "data": [model_object(name) for name in state.upstreams]})


async def retrieve_model(request: Request) -> Response:
    """``GET /v1/models/{id}`` (``client.models.retrieve``); ids may contain ``/``, as Qwen/Qwen2.5-7B."""
    state: State = request.app.state.ponder
    try:
        authorize(request, state.settings.api_keys)
        name = str(request.path_params["model"])
        if name not in state.upstreams:
            served(state, name)  # the 404 naming the models served
    except HTTPFailure as failure:
        return failure_response(failure)
    return JSONResponse(model_object(name))


async def health(request: Request) -> Response:
    """Liveness for anyone; the configuration (upstream names, load) only for a valid key, if keys are set."""
    state: State = request.app.state.ponder
    try:
        authorize(request, state.settings.api_keys)
    except HTTPFailure:
        return JSONResponse({"status": "ok"})
    metrics = state.metrics
    details = {"upstreams": list(state.upstreams), "in_flight": metrics.in_flight, "queued": metrics.queued}
    return JSONResponse({"status": "ok", **details})


async def http_error(request: Request, error: Exception) -> Response:
    """Unknown routes and methods answer like the rest of the API: an OpenAI-style JSON error."""
    status = error.status_code if isinstance(error, StarletteHTTPException) else 500
    headers = error.headers if isinstance(error, StarletteHTTPException) else None
    codes = {404: ("no such route", "not_found"), 405: ("method not allowed here", "method_not_allowed")}
    message, code = codes.get(status, ("internal error", "internal_error"))
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return failure_response(HTTPFailure(status, message, kind, code, headers=dict(headers or {})))


async def metrics(request: Request) -> Response:
    state: State = request.app.state.ponder
    try:
        authorize(request, state.settings.api_keys)
    except HTTPFailure as failure:
        return failure_response(failure)
    return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")


def create_app(upstreams: list[Upstream], settings: ServerSettings | None = None) -> Starlette:
    """The ASGI app serving ``upstreams`` (the first is the default model)."""
    state = State(upstreams, settings or ServerSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.http = httpx.AsyncClient(
            timeout=httpx.Timeout(state.settings.request_timeout, connect=10.0),
            limits=httpx.Limits(max_connections=state.settings.max_in_flight),
            trust_env=False,
        )
        state.plain_http = UpstreamClient(connect_timeout=10.0, max_idle=state.settings.max_in_flight)
        for backend in state.metered.values():
            await backend.start()
        try:
            yield
        finally:
            await state.http.aclose()
            await state.plain_http.aclose()
            for backend in state.metered.values():
                await backend.close()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", forwarding("completions", CompletionRequest), methods=["POST"]),
            Route("/v1/embeddings", forwarding("embeddings", EmbeddingRequest), methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={StarletteHTTPException: http_error, Exception: http_error},
    )
    app.state.ponder = state
    return app
