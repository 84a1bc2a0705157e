"""Backends that ``asolve`` shares between calls: one per configuration and event loop.

A backend built per call meant an HTTP client per call (a TLS context, a connection pool, a new
connection for every request): 2.6 times the client CPU of a shared backend (issue 19). So calls that
name the same server, model, key and settings (arguments and the environment they fall back to) share
one backend. It is one per event loop, because a client's connections belong to the loop that opened
them (``ponder.solve`` runs each call in a loop of its own; threads each run theirs). A shared backend
is closed when its loop shuts down (``asyncio.run`` closes the loop's async generators first, and one
of them is waiting here for that), or at once by ``close_shared_backends``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ponder.backends import Backend, make_backend

#: the environment ``make_backend`` reads: part of a configuration, so a changed variable is a new backend
_ENVIRONMENT = (
    "PONDER_BASE_URL",
    "OPENAI_BASE_URL",
    "PONDER_MODEL",
    "PONDER_API_KEY",
    "OPENAI_API_KEY",
    "PONDER_SERVER",
    "PONDER_PARAMETERS",
    "PONDER_CHAT_TEMPLATE",
)


class _LoopBackends:
    """The shared backends of one event loop, and the async generator that closes them with it."""

    def __init__(self) -> None:
        self.backends: dict[tuple[Any, ...], Backend] = {}
        self.closer = self._close_at_shutdown()

    async def _close_at_shutdown(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.close()

    async def close(self) -> None:
        backends, self.backends = list(self.backends.values()), {}
        for backend in backends:
            with contextlib.suppress(Exception):  # one failing close must not keep the others open
                await backend.close()


_lock = threading.Lock()
_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopBackends] = weakref.WeakKeyDictionary()


async def shared_backend(
    model: str | None = None,
    base_url: str | Sequence[str] | None = None,
    api_key: str | None = None,
    server: str | None = None,
    max_in_flight: str | int | None = None,
) -> Backend:
    """The backend ``make_backend`` would build for these arguments, shared by this loop's calls."""
    loop = asyncio.get_running_loop()
    with _lock:
        entry = _loops.get(loop)
        new = entry is None
        if entry is None:
            entry = _loops[loop] = _LoopBackends()
    if new:
        await anext(entry.closer)  # started: the loop now tracks it, and closes it at shutdown
    urls = base_url if base_url is None or isinstance(base_url, str) else tuple(base_url)
    key = (model, urls, api_key, server, max_in_flight, tuple(os.environ.get(name) for name in _ENVIRONMENT))
    backend = entry.backends.get(key)
    if backend is None:
        backend = entry.backends[key] = make_backend(
            model=model, base_url=base_url, api_key=api_key, server=server, max_in_flight=max_in_flight
        )
    return backend


async def close_shared_backends() -> None:
    """Close the running loop's shared backends now (later calls build new ones)."""
    with _lock:
        entry = _loops.get(asyncio.get_running_loop())
    if entry is not None:
        await entry.close()
