"""When the eval runner starts each unit: in plan order, as soon as the backend has a slot to spare.

Holding ``min(n, capacity)`` slots per unit left the slots of a problem's stragglers idle until its
slowest sample came back: on an 8-slot llama-server, self-consistency@8 kept 6.4 of 8 slots busy on
average, no better than a client that waits for each problem in turn (issue 19). Here the count is of
*samples* asked of the backend and not yet answered (queued in it or generating), whoever asked: the
next unit starts once that count falls below the backend's in-flight limit (which may be adapting), so
its samples take the slots that stragglers leave.

Order still holds. Each unit's requests carry its position in the plan as their priority
(``REQUEST_PRIORITY``), and the backend serves waiting requests by priority: an earlier problem's samples,
including the next round of a search, always go before a later problem's. Problems finish, and are
stored, close to plan order, and a run stopped early has compared its strategies on the same problems.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from ponder.backends.base import Backend, Generation, GenRequest, WrappedBackend
from ponder.backends.limits import REQUEST_PRIORITY, SAMPLES_ANSWERED

Item = TypeVar("Item")

#: set in a unit's task: the event its first request sets, so the scheduler knows the unit's samples
#: are counted before it decides whether there is room for the next unit
_STARTED: ContextVar[asyncio.Event | None] = ContextVar("unit_started", default=None)


class Admission:
    """Counts the samples asked of a backend and not yet answered, and says when there is room for more.

    ``cap`` keeps at most that many outstanding (None: as many as the backend's in-flight limit, read
    each time, since an adaptive limit moves).
    """

    def __init__(self, backend: Backend, cap: int | None = None):
        self.backend = backend
        self.cap = cap
        self.outstanding = 0
        self.failure: BaseException | None = None
        self._changed = asyncio.Event()

    def room(self) -> int:
        limit = self.backend.in_flight_limit()
        return (min(limit, self.cap) if self.cap else limit) - self.outstanding

    def change(self, samples: int) -> None:
        self.outstanding += samples
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        """A unit failed: stop admitting (its error is what the run raises)."""
        self.failure = self.failure or error
        self._changed.set()

    async def wait_for_room(self) -> None:
        while self.failure is None and self.room() <= 0:
            self._changed.clear()
            await self._changed.wait()
        if self.failure is not None:
            raise self.failure


@dataclass
class CountedBackend(WrappedBackend):
    """The run's backend as units see it: every request counted in ``admission`` while it is out."""

    admission: Admission | None = None

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        """Count the samples out; each comes back as its reply does (``SAMPLES_ANSWERED``, for a backend
        that says so), the rest when the call returns."""
        admission = self.admission
        assert admission is not None, "made with around(backend, admission=...)"
        samples = sum(request.n for request in requests)
        out = samples
        admission.change(samples)

        def answered(count: int) -> None:
            nonlocal out
            count = min(count, out)
            out -= count
            admission.change(-count)

        if (started := _STARTED.get()) is not None:
            started.set()
        token = SAMPLES_ANSWERED.set(answered)
        try:
            return await self.wrapped.generate(requests)
        finally:
            SAMPLES_ANSWERED.reset(token)
            admission.change(-out)


async def run_in_order(
    items: Sequence[Item], work: Callable[[Item], Awaitable[None]], admission: Admission
) -> None:
    """Run ``work`` on each item, starting each in order once ``admission`` has room and the one before
    has asked for its first samples (or ended). The first failure stops admission and is raised once
    every started item has stopped."""
    tasks: list[asyncio.Task[None]] = []

    async def one(position: int, item: Item, started: asyncio.Event) -> None:
        REQUEST_PRIORITY.set(position)
        _STARTED.set(started)
        await work(item)

    def settled(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            admission.fail(task.exception())  # type: ignore[arg-type]

    try:
        for position, item in enumerate(items):
            await admission.wait_for_room()
            started = asyncio.Event()
            task = asyncio.create_task(one(position, item, started))
            task.add_done_callback(settled)
            tasks.append(task)
            signal = asyncio.create_task(started.wait())
            try:
                await asyncio.wait({task, signal}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                signal.cancel()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
