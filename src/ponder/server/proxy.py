"""Pass-through: the request body goes to the upstream unchanged; its answer comes back byte for byte.

One exception, for honest metering: a streamed request asks the upstream for usage
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

from ponder.server.errors import HTTPFailure, InvalidRequest
from ponder.server.lifecycle import CleanupStreamingResponse, Slot, State, Upstream, until_disconnect
from ponder.server.schema import (
    ChatRequest,
)


async def passthrough(
    request: Request, state: State, upstream: Upstream, body: dict[str, Any], chat: ChatRequest, slot: Slot
) -> Response:
    """Forward the request unchanged and relay the upstream's answer, streamed or not."""
    if upstream.url is None:
        raise InvalidRequest(f"upstream {upstream.name!r} is not an HTTP server; choose a strategy", "model")
    if chat.ponder is not None and chat.ponder.budget:
        raise InvalidRequest("ponder.budget needs a strategy", param="ponder")
    await upstream.backend.start()  # the embedded model's server, if not running yet
    assert state.http is not None and upstream.url is not None
    content = await request.body()
    client_wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    metered = chat.stream and not client_wants_usage
    if "ponder" in body or metered:  # ponder's own object must not reach the upstream
        forwarded = {k: v for k, v in body.items() if k != "ponder"}
        if metered:
            forwarded["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        content = json.dumps(forwarded).encode()
    headers = {"content-type": "application/json"}
    api_key = getattr(upstream.backend, "api_key", None)
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    outgoing = state.http.build_request(
        "POST", f"{upstream.url}/chat/completions", content=content, headers=headers
    )
    metrics = state.metrics
    metrics.upstream_in_flight[upstream.name] += 1
    try:
        response = await until_disconnect(
            request, state.http.send(outgoing, stream=True), state.settings.request_timeout
        )
    except httpx.TimeoutException as error:
        metrics.upstream_in_flight[upstream.name] -= 1
        message = f"upstream {upstream.name!r} at {upstream.url} timed out ({type(error).__name__})"
        raise HTTPFailure(504, message, "upstream_error", "upstream_timeout") from None
    except httpx.TransportError as error:
        metrics.upstream_in_flight[upstream.name] -= 1
        message = f"upstream {upstream.name!r} at {upstream.url} unreachable: {type(error).__name__}: {error}"
        raise HTTPFailure(502, message, "upstream_error", "upstream_unavailable") from None
    except BaseException:
        metrics.upstream_in_flight[upstream.name] -= 1
        raise
    metrics.upstream_calls[upstream.name] += 1
    if response.status_code == 200 and chat.stream:

        async def relay() -> AsyncIterator[bytes]:
            async for event in sse_events(response.aiter_raw()):
                data = event_data(event)
                usage = data.get("usage")
                if isinstance(usage, dict):
                    metrics.upstream_prompt_tokens[upstream.name] += int(usage.get("prompt_tokens") or 0)
                    completion = int(usage.get("completion_tokens") or 0)
                    metrics.upstream_completion_tokens[upstream.name] += completion
                    if metered and not data.get("choices"):
                        continue  # the usage-only chunk the client did not ask for
                yield event
            slot.release(200)

        def cleanup() -> None:
            metrics.upstream_in_flight[upstream.name] -= 1
            asyncio.ensure_future(response.aclose())
            slot.release(499, "client_disconnected")

        media_type = response.headers.get("content-type", "text/event-stream")
        return CleanupStreamingResponse(relay(), cleanup, media_type=media_type)
    try:
        data = await response.aread()
    finally:
        await response.aclose()
        metrics.upstream_in_flight[upstream.name] -= 1
    if response.status_code >= 500:
        detail = data[:300].decode(errors="replace")
        message = f"upstream {upstream.name!r} answered HTTP {response.status_code}: {detail}"
        raise HTTPFailure(502, message, "upstream_error", "upstream_error")
    if response.status_code == 200:
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            usage = json.loads(data).get("usage") or {}
            metrics.upstream_prompt_tokens[upstream.name] += int(usage.get("prompt_tokens") or 0)
            metrics.upstream_completion_tokens[upstream.name] += int(usage.get("completion_tokens") or 0)
    status = response.status_code
    if status != 200:
        slot.release(status, "upstream_rejected")
    media_type = response.headers.get("content-type", "application/json")
    return Response(data, status_code=status, media_type=media_type)


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
