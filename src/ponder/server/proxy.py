"""Pass-through: the request body goes to the upstream; its answer comes back byte for byte.

Chat completions without a strategy, completions and embeddings all pass through by the same rules.

What the operator caps is checked first: the client's ``n`` (``max_n``) and ``max_tokens`` or
``max_completion_tokens`` (``max_tokens``, sent as ``max_tokens`` when the client gives neither, on the
routes that generate: not on embeddings).
The whole exchange, headers and body, happens within ``request_timeout`` (504 past it, the slot freed);
an answer over ``max_response_bytes`` is a 502, and so are a redirect (never followed nor relayed),
a connection reset mid-answer and a 5xx. Other refusals (4xx) are relayed with their status, with any
mention of the upstream's address rewritten to its name. A stream that fails once started ends with an
OpenAI-style error event.

One exception to "unchanged", for honest metering: a streamed request asks the upstream for usage
(``stream_options.include_usage``) so /metrics can count its tokens; when the client did not ask for
usage itself, the usage-only chunk the upstream adds at the end is dropped before it reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from ponder.server.errors import HTTPFailure, InvalidRequest, error_body, upstream_failure
from ponder.server.lifecycle import (
    CleanupStreamingResponse,
    ServerSettings,
    Slot,
    State,
    Upstream,
    sse,
    until_disconnect,
)
from ponder.server.schema import ForwardableRequest
from ponder.server.upstream_http import UpstreamResponse

#: an upstream's answer, from the lean client (plain http) or httpx (https)
Answer = httpx.Response | UpstreamResponse


def check_passthrough(upstream: Upstream, chat: ForwardableRequest, settings: ServerSettings) -> None:
    """Refuse, before the request waits for a slot, what pass-through cannot or may not forward."""
    if upstream.url is None:
        raise InvalidRequest(f"upstream {upstream.name!r} is not an HTTP server; choose a strategy", "model")
    if chat.ponder is not None and chat.ponder.budget:
        raise InvalidRequest("ponder.budget needs a strategy", param="ponder")
    if chat.n > settings.max_n:
        raise InvalidRequest(f"n is over this server's limit of {settings.max_n}", param="n")
    for param in ("max_tokens", "max_completion_tokens"):
        value = getattr(chat, param)
        if value is not None and value > settings.max_tokens:
            raise InvalidRequest(f"{param} is over this server's limit of {settings.max_tokens}", param=param)


def forwarded_body(
    body: dict[str, Any], chat: ForwardableRequest, settings: ServerSettings, model: str
) -> dict[str, Any] | None:
    """The body to send instead of the client's bytes, or None when they go unchanged.

    ``model`` is the upstream's name: a client's ``ponder:none@MODEL`` reaches the upstream as ``MODEL``.
    """
    forwarded = {key: value for key, value in body.items() if key != "ponder"}
    forwarded["model"] = model
    if chat.generates and chat.max_tokens is None and chat.max_completion_tokens is None:
        forwarded["max_tokens"] = settings.max_tokens  # the operator's cap holds for every request
    if chat.stream and not wants_usage(body):
        forwarded["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return None if forwarded == body else forwarded


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether the client asked for the usage chunk at the end of a stream."""
    return bool((body.get("stream_options") or {}).get("include_usage"))


async def passthrough(
    request: Request,
    state: State,
    upstream: Upstream,
    body: dict[str, Any],
    chat: ForwardableRequest,
    slot: Slot,
    route: str = "chat/completions",
) -> Response:
    """Forward the request to the upstream's ``route`` and relay its answer, streamed or not, in time."""
    await upstream.backend.start()  # the embedded model's server, if not running yet
    assert state.http is not None and state.plain_http is not None and upstream.url is not None
    deadline = asyncio.get_running_loop().time() + state.settings.request_timeout
    forwarded = forwarded_body(body, chat, state.settings, upstream.name)
    content = await request.body() if forwarded is None else json.dumps(forwarded).encode()
    headers = {"content-type": "application/json"}
    api_key = getattr(upstream.backend, "api_key", None)
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    url = f"{upstream.url}/{route}"
    metrics = state.metrics
    metrics.upstream_in_flight[upstream.name] += 1
    answers: list[Answer] = []  # the upstream's answer, once its headers came
    limit = state.settings.max_response_bytes

    async def exchange() -> bytes | None:
        """The answer's body, or None for a stream to relay; one watch for disconnects covers both."""
        if url.startswith("http://"):  # the lean client (a fraction of httpx's CPU); httpx for TLS
            answers.append(await state.plain_http.post(url, content, headers))
        else:
            outgoing = state.http.build_request("POST", url, content=content, headers=headers)
            answers.append(await state.http.send(outgoing, stream=True))
        metrics.upstream_calls[upstream.name] += 1
        check_answer(answers[0], upstream, limit)
        if answers[0].status_code == 200 and chat.stream:
            return None
        return await read_capped(answers[0], upstream, limit)

    relaying = False
    try:
        data = await until_disconnect(request, exchange(), left(deadline))
        if data is None:
            relaying = True
            unasked = not wants_usage(body)
            return relay_stream(state, upstream, answers[0], deadline, slot, drop_usage=unasked)
    except (TimeoutError, httpx.TimeoutException):
        raise timed_out(upstream) from None
    except httpx.TransportError as error:
        raise unreachable(upstream, error) from None
    finally:
        if not relaying:
            metrics.upstream_in_flight[upstream.name] -= 1
            if answers:
                await answers[0].aclose()
    response = answers[0]
    return relay_answer(state, upstream, response.status_code, response.headers, data, slot)


def left(deadline: float) -> float:
    """Seconds until ``deadline`` (on the running loop's clock), never negative."""
    return max(deadline - asyncio.get_running_loop().time(), 0.0)


def timed_out(upstream: Upstream) -> HTTPFailure:
    return upstream_failure(504, f"upstream {upstream.name!r} timed out", "upstream_timeout")


def unreachable(upstream: Upstream, error: httpx.TransportError) -> HTTPFailure:
    """A transport failure (refused, reset mid-answer, broken protocol) as a 502 naming the upstream."""
    cause = f"{type(error).__name__}: {error}".rstrip(": ")
    return upstream_failure(502, f"upstream {upstream.name!r} unreachable: {cause}", "upstream_unavailable")


def too_large(upstream: Upstream, limit: int) -> HTTPFailure:
    message = f"upstream {upstream.name!r} answered more than this server's limit of {limit} bytes"
    return upstream_failure(502, message, "upstream_too_large")


def check_answer(response: Answer, upstream: Upstream, limit: int) -> None:
    """Refuse a redirect (its ``Location`` stays here) and an answer that declares itself too large."""
    if 300 <= response.status_code < 400:
        message = (
            f"upstream {upstream.name!r} answered a redirect (HTTP {response.status_code}), not followed"
        )
        raise upstream_failure(502, message, "upstream_redirect")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(upstream, limit)


async def read_capped(response: Answer, upstream: Upstream, limit: int) -> bytes:
    """The whole (decompressed) body, refused as soon as it passes ``limit`` bytes."""
    parts, size = [], 0
    async for part in response.aiter_bytes():
        size += len(part)
        if size > limit:
            raise too_large(upstream, limit)
        parts.append(part)
    return b"".join(parts)


def relay_answer(
    state: State, upstream: Upstream, status: int, headers: httpx.Headers, data: bytes, slot: Slot
) -> Response:
    """The upstream's whole answer: relayed when 200 (metered), a 502 for 5xx, otherwise a redacted 4xx."""
    metrics = state.metrics
    if status >= 500:
        detail = state.redactor.text(data[:300].decode(errors="replace"))
        message = f"upstream {upstream.name!r} answered HTTP {status}: {detail}"
        raise upstream_failure(502, message, "upstream_failed")
    if status == 200:
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            usage = json.loads(data).get("usage") or {}
            metrics.upstream_prompt_tokens[upstream.name] += int(usage.get("prompt_tokens") or 0)
            metrics.upstream_completion_tokens[upstream.name] += int(usage.get("completion_tokens") or 0)
    else:
        slot.release(status, "upstream_rejected")
        data = state.redactor.body(data)
    return Response(data, status_code=status, media_type=headers.get("content-type", "application/json"))


def relay_stream(
    state: State,
    upstream: Upstream,
    response: Answer,
    deadline: float,
    slot: Slot,
    drop_usage: bool,
) -> Response:
    """Relay server-sent events until the deadline or the size cap; a failure ends with an error event."""
    metrics, limit = state.metrics, state.settings.max_response_bytes

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for event in sse_events(bounded(response.aiter_bytes(), deadline, upstream, limit)):
                data = event_data(event)
                usage = data.get("usage")
                if isinstance(usage, dict):
                    metrics.upstream_prompt_tokens[upstream.name] += int(usage.get("prompt_tokens") or 0)
                    completion = int(usage.get("completion_tokens") or 0)
                    metrics.upstream_completion_tokens[upstream.name] += completion
                    if drop_usage and not data.get("choices"):
                        continue  # the usage-only chunk the client did not ask for
                yield event
        except (TimeoutError, httpx.TimeoutException):
            failure = timed_out(upstream)
        except httpx.TransportError as error:
            failure = unreachable(upstream, error)
        except HTTPFailure as error:
            failure = error
        else:
            slot.release(200)
            return
        failure = state.redactor.failure(failure)
        slot.release(failure.status, failure.type)
        yield sse(error_body(failure))

    def cleanup() -> None:
        metrics.upstream_in_flight[upstream.name] -= 1
        asyncio.ensure_future(response.aclose())
        slot.release(499, "client_disconnected")

    media_type = response.headers.get("content-type", "text/event-stream")
    return CleanupStreamingResponse(relay(), cleanup, media_type=media_type)


async def bounded(
    chunks: AsyncIterator[bytes], deadline: float, upstream: Upstream, limit: int
) -> AsyncIterator[bytes]:
    """``chunks`` until they end, the deadline passes (TimeoutError) or they pass ``limit`` bytes."""
    size = 0
    iterator = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        size += len(chunk)
        if size > limit:
            raise too_large(upstream, limit)
        yield chunk


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Regroup a byte stream into whole server-sent events (each ending with its blank line)."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while True:
            end = _event_end(buffer)
            if end < 0:
                break
            yield buffer[:end]
            buffer = buffer[end:]
    if buffer:
        yield buffer


def _event_end(buffer: bytes) -> int:
    """Index just past the first event's terminating blank line, or -1 when none is complete yet."""
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep)) >= 0]
    return min(ends) if ends else -1


def event_data(event: bytes) -> dict[str, Any]:
    """The JSON object of an event's ``data:`` line; empty for [DONE], comments and anything unparsable."""
    for line in event.splitlines():
        if line.startswith(b"data:"):
            with contextlib.suppress(ValueError):
                data = json.loads(line[5:])
                return data if isinstance(data, dict) else {}
    return {}
