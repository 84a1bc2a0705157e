"""What every request shares: settings, upstreams, admission (slots and the line), auth, disconnects."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from ponder.backends.base import Backend
from ponder.backends.openai import OpenAIBackend
from ponder.backends.replicas import ReplicaBackend
from ponder.core.errors import UsageError
from ponder.server.errors import HTTPFailure, Redactor, error_body
from ponder.server.metrics import MeteredBackend, Metrics
from ponder.server.policy import Policy
from ponder.server.upstream_http import UpstreamClient

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
    #: requests waiting (first come, first served) for one of the ``max_in_flight`` slots before 429
    max_queue: int = 1024
    #: seconds a request may wait in that line before 429
    queue_timeout: float = 30.0
    #: cap on a request's ``max_tokens``/``max_completion_tokens``; pass-through sends it when none is given
    max_tokens: int = 4096
    #: largest upstream answer relayed in pass-through (bytes, after decompression); more is a 502
    max_response_bytes: int = 32 * 1024 * 1024
    #: named strategy specs of the operator's that clients ask for by name (``ponder.server.policy``)
    presets: tuple[tuple[str, str], ...] = ()
    #: operator-only kinds of option opened to clients (``--allow``): sandbox, limits, file, ...
    allow: frozenset[str] = frozenset()
    #: caps on what one request (client ``n`` included) may cause upstream: calls, one per choice, and
    #: completion tokens; checked against the strategy's bound before it starts and enforced while it runs.
    #: The defaults admit every strategy at its default options (solve-detect-verify: 4,104 calls)
    max_calls: int = 8192
    max_request_tokens: int = 1_048_576


@dataclass
class Upstream:
    """A model this server routes to by name; its backend is shared by every request."""

    name: str
    backend: Backend

    @property
    def urls(self) -> list[str]:
        """Every server behind this upstream: its one URL, a replicated upstream's each, or none."""
        backends = self.backend.replicas if isinstance(self.backend, ReplicaBackend) else [self.backend]
        return [backend.base_url for backend in backends if isinstance(backend, OpenAIBackend)]

    @property
    def url(self) -> str | None:
        """Where pass-through (completions, embeddings) goes: the server, or the first replica."""
        urls = self.urls
        return urls[0] if urls else None


class ClientDisconnected(Exception):
    """The client went away; its work was cancelled."""


class State:
    def __init__(self, upstreams: list[Upstream], settings: ServerSettings):
        if not upstreams:
            raise UsageError("the server needs at least one upstream")
        self.settings = settings
        self.metrics = Metrics()
        self.upstreams = {u.name: u for u in upstreams}
        self.metered = {
            u.name: MeteredBackend.around(u.backend, upstream=u.name, metrics=self.metrics) for u in upstreams
        }
        self.default_upstream = upstreams[0].name
        self.http: httpx.AsyncClient | None = None
        #: pass-through's client for plain-http upstreams (``ponder.server.upstream_http``)
        self.plain_http: UpstreamClient | None = None
        self.admission = Admission(
            settings.max_in_flight, settings.max_queue, self.metrics, settings.retry_after_seconds
        )
        self.redactor = Redactor.for_upstreams({u.name: u.urls for u in upstreams})
        self.policy = Policy(frozenset(self.upstreams), dict(settings.presets), settings.allow)


class Admission:
    """At most ``limit`` requests run; up to ``queue`` more wait for a slot, first come first served.

    A burst is absorbed by the line instead of being refused; only a full line or a wait past its
    deadline is a 429. A freed slot goes straight to the first waiter, so nobody overtakes the line.
    """

    def __init__(self, limit: int, queue: int, metrics: Metrics, retry_after: int = 1):
        self.limit, self.queue, self.metrics, self.retry_after = limit, queue, metrics, retry_after
        self.running = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a free slot now, if there is one and nobody is waiting for it."""
        if self.running < self.limit and not self.waiters:
            self.running += 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait in line for a slot (cancel to leave the line); 429 when the line is full."""
        if self.try_acquire():
            return
        if len(self.waiters) >= self.queue:
            message = f"{self.limit} requests running and {self.queue} waiting; retry later"
            raise overloaded(message, self.retry_after)
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self.metrics.queued = len(self.waiters)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # the slot arrived as the wait ended: pass it on
                self.release()
            raise
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            self.metrics.queued = len(self.waiters)

    def release(self) -> None:
        """Give the slot to the first waiter still waiting, or free it."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self.metrics.queued = len(self.waiters)
                return
        self.metrics.queued = 0
        self.running -= 1


def overloaded(message: str, retry_after: int) -> HTTPFailure:
    """The 429 a client should retry after ``retry_after`` seconds."""
    headers = {"Retry-After": str(retry_after)}
    return HTTPFailure(429, message, "rate_limit_error", "overloaded", headers=headers)


class Slot:
    """One admitted request: holds its admission slot until released, exactly once, with its status."""

    def __init__(self, state: State, mode: str):
        self.state, self.mode, self.started, self.released = state, mode, time.monotonic(), False
        state.metrics.in_flight += 1

    def release(self, status: int, error_type: str | None = None) -> None:
        if not self.released:
            self.released = True
            self.state.admission.release()
            self.state.metrics.in_flight -= 1
            self.state.metrics.observe(self.mode, status, time.monotonic() - self.started, error_type)


async def admit(request: Request, state: State, mode: str) -> Slot:
    """A slot for this request, after waiting in line if all are taken (body already read).

    A client that disconnects while waiting leaves the line; one that waits past ``queue_timeout``
    gets a 429 with ``Retry-After``.
    """
    settings = state.settings
    if not state.admission.try_acquire():
        try:
            await until_disconnect(request, state.admission.acquire(), settings.queue_timeout)
        except TimeoutError:
            message = f"no slot free within {settings.queue_timeout:g} s; retry later"
            raise overloaded(message, settings.retry_after_seconds) from None
    return Slot(state, mode)


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
