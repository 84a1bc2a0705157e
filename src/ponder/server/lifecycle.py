"""What every request shares: server settings, upstreams, the in-flight slot, auth, disconnects."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from ponder.backends.base import Backend
from ponder.backends.openai import OpenAIBackend
from ponder.core.errors import UsageError
from ponder.server.errors import HTTPFailure, error_body
from ponder.server.metrics import MeteredBackend, Metrics

T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    """Per-server limits and choices. Per-request settings never live here (or anywhere global)."""

    api_keys: frozenset[str] = frozenset()
    default_strategy: str | None = None
    max_n: int = 4
    max_samples: int = 64
    #: cap on a strategy's sequential rounds (``Strategy.depth``: search depth, refinement rounds)
    max_depth: int = 64
    max_budget_tokens: int | None = None
    max_in_flight: int = 64
    request_timeout: float = 600.0
    retry_after_seconds: int = 1


@dataclass
class Upstream:
    """A model this server routes to by name; its backend is shared by every request."""

    name: str
    backend: Backend

    @property
    def url(self) -> str | None:
        return self.backend.base_url if isinstance(self.backend, OpenAIBackend) else None


class ClientDisconnected(Exception):
    """The client went away; its work was cancelled."""


class State:
    def __init__(self, upstreams: list[Upstream], settings: ServerSettings):
        if not upstreams:
            raise UsageError("the server needs at least one upstream")
        self.settings = settings
        self.metrics = Metrics()
        self.upstreams = {u.name: u for u in upstreams}
        self.metered = {u.name: MeteredBackend.wrap(u.backend, u.name, self.metrics) for u in upstreams}
        self.default_upstream = upstreams[0].name
        self.http: httpx.AsyncClient | None = None


class Slot:
    """One in-flight request: released exactly once, recording its status and latency."""

    def __init__(self, state: State, mode: str):
        self.state, self.mode, self.started, self.released = state, mode, time.monotonic(), False
        state.metrics.in_flight += 1

    def release(self, status: int, error_type: str | None = None) -> None:
        if not self.released:
            self.released = True
            self.state.metrics.in_flight -= 1
            self.state.metrics.observe(self.mode, status, time.monotonic() - self.started, error_type)


class CleanupStreamingResponse(StreamingResponse):
    """A streaming response that runs ``cleanup`` however the stream ends (even if never started)."""

    def __init__(self, content: AsyncIterator[bytes], cleanup: Callable[[], None], **kwargs: Any):
        super().__init__(content, **kwargs)
        self.cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cleanup()


def failure_response(failure: HTTPFailure) -> JSONResponse:
    return JSONResponse(error_body(failure), status_code=failure.status, headers=failure.headers)


def authorize(request: Request, keys: frozenset[str]) -> None:
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    given = token.strip().encode()
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given, key.encode()) for key in keys):
        raise HTTPFailure(401, "invalid or missing API key", "authentication_error", "invalid_api_key")


async def wait_for_disconnect(request: Request) -> None:
    """Return when the client disconnects (call only after the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(request: Request, work: Awaitable[T], timeout: float) -> T:
    """Await ``work``; cancel it (and every upstream call under it) on disconnect or timeout."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        if watcher in done:
            raise ClientDisconnected
        raise TimeoutError
    finally:
        for pending in (task, watcher):
            pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)


def sse(payload: Any) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
