"""How many samples one endpoint may have generating at once: a fixed limit, or one that adapts (AIMD).

A fixed limit is right when the server's slot count is known (the embedded llama-server, which ponder
starts with ``--parallel``). Elsewhere it is a guess: a profile's 8 or 64 cannot fill a GPU server whose
requests take seconds, and too many requests only queue inside the server or draw 429s. So by default
the limit adapts, the way TCP's congestion window does (additive increase, multiplicative decrease):

- it starts at the server profile's limit and grows per *window* (as many successful requests as the
  limit, all started under the current limit) while every slot was in use and the window's median
  latency stays within ``tolerance`` of the best median seen: it doubles until the first back-off or
  the first rise of latency past ``SLOW_START_EXIT`` (TCP's slow start and its HyStart exit: a GPU
  server that takes hundreds of requests is reached in a few round trips, not hundreds, without
  doubling far past a server that already queues), then grows by one;
- it shrinks ×0.7 when the median latency rises past that (requests queue inside the server) or on a
  429, and ×0.5 on a 5xx, a time-out or a connection error; at most once per window, since one overload
  fails every request in flight at once;
- it stays within [1, maximum].

Latency is read per generated token (seconds over the longest choice's completion tokens), so replies
of different lengths compare. ``--max-in-flight N`` fixes the limit at N; ``auto:N`` adapts up to N.

Requests wait for a slot in order of ``REQUEST_PRIORITY`` (lower first), then arrival. The eval runner
sets it to a unit's position in the plan, so the samples of earlier problems go first and the next
problems' samples fill only the slots that earlier stragglers leave idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import statistics
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from ponder.core.errors import UsageError

#: A request's place in line for a slot: lower goes first, equal ones in arrival order. Set in the task
#: that makes the requests (a context variable reaches the backend without passing through strategies).
REQUEST_PRIORITY: ContextVar[int] = ContextVar("request_priority", default=0)

#: Told, with a request's ``n``, when a request's reply has come back, before the ``generate`` call that
#: made it returns (its other requests may still be out). The eval runner sets it to count samples
#: outstanding one request at a time, so a problem's stragglers do not hold slots it has given back.
SAMPLES_ANSWERED: ContextVar[Callable[[int], None] | None] = ContextVar("samples_answered", default=None)

#: highest limit ``auto`` may reach when no maximum is given (vLLM's and SGLang's default batch sizes)
ADAPTIVE_CEILING = 256
#: fewest successes that make a window, so that its median means something at small limits
MIN_WINDOW = 8
#: a window's median latency within this factor of the best median seen counts as "latency holds"
TOLERANCE = 1.5
#: past this factor of the best median, doubling stops (growth goes on one at a time)
SLOW_START_EXIT = 1.2
#: how much the best median may rise per window, so that a server that became slower for good is
#: eventually measured against its new speed instead of backing off for ever
BASELINE_DRIFT = 0.01
#: multiplicative decreases: queueing or a 429 (the server is alive but full); a failure (it is not well)
OVERLOAD_DECREASE = 0.7
FAILURE_DECREASE = 0.5


@dataclass(frozen=True)
class InFlightPolicy:
    """How many samples an endpoint may have in flight: ``initial``, and for an adaptive policy the most
    it may grow to (``maximum``)."""

    initial: int
    maximum: int
    adaptive: bool

    @classmethod
    def fixed(cls, limit: int) -> InFlightPolicy:
        return cls(limit, limit, adaptive=False)

    @classmethod
    def parse(cls, value: str | int | None, default: int) -> InFlightPolicy:
        """``N`` (fixed at N), ``auto`` or None (adaptive from ``default`` up to ``ADAPTIVE_CEILING``), or
        ``auto:N`` (adaptive up to N). ``default`` is the server profile's limit."""
        if isinstance(value, int) and not isinstance(value, bool):
            return cls.fixed(_positive(value, value))
        text = "auto" if value is None else str(value).strip().lower()
        if text.isdigit():
            return cls.fixed(_positive(int(text), value))
        if text == "auto":
            ceiling = max(ADAPTIVE_CEILING, default)
        elif text.startswith("auto:") and text[5:].isdigit():
            ceiling = _positive(int(text[5:]), value)
        else:
            raise UsageError(
                f"--max-in-flight {value!r}: give a number (a fixed limit), auto (adaptive, the default) "
                "or auto:N (adaptive up to N)"
            )
        return cls(max(1, min(default, ceiling)), ceiling, adaptive=True)

    def describe(self) -> str:
        return f"auto:{self.maximum}" if self.adaptive else str(self.initial)


def _positive(number: int, given: object) -> int:
    if number < 1:
        raise UsageError(f"--max-in-flight {given!r} must be at least 1")
    return number


class Permit:
    """One request's hold on a slot; it tells the limit how the request went (also after release)."""

    def __init__(self, limit: InFlightLimit, weight: int):
        self.limit, self.weight, self.epoch = limit, weight, limit.epoch

    def succeeded(self, seconds: float, tokens: int) -> None:
        """The reply came in ``seconds`` with ``tokens`` completion tokens in its longest choice."""
        self.limit.observe(self, seconds / max(tokens, 1))

    def overloaded(self) -> None:
        """The server said it is full (429)."""
        self.limit.back_off(self, OVERLOAD_DECREASE)

    def failed(self) -> None:
        """A 5xx, a time-out or a connection error."""
        self.limit.back_off(self, FAILURE_DECREASE)


class InFlightLimit:
    """An async limit on samples in flight: waiters served by priority then arrival, and, when the
    policy is adaptive, a limit that follows what the server can take (see the module docstring)."""

    def __init__(self, policy: InFlightPolicy, tolerance: float = TOLERANCE):
        self.policy = policy
        self.tolerance = tolerance
        self._limit = float(policy.initial)
        self.in_flight = 0
        #: one per change of the limit: a reply to a request started before the change says nothing of it
        self.epoch = 0
        self._waiting: list[tuple[int, int, int, asyncio.Future[int]]] = []
        self._arrival = itertools.count()
        self._window: list[float] = []
        self._saturated = False
        self._best: float | None = None
        #: doubling per window until the first back-off, then one more per window
        self._slow_start = True

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    @property
    def waiting(self) -> int:
        """Samples waiting for a slot."""
        return sum(weight for _, _, weight, future in self._waiting if not future.done())

    @contextlib.asynccontextmanager
    async def slot(self, weight: int = 1) -> AsyncIterator[Permit]:
        """Hold slots for ``weight`` samples (a request for ``n`` choices) while the request runs. A request
        bigger than the limit takes the whole limit, so it waits for the others but never for ever."""
        taken = await self._acquire(max(1, weight))
        try:
            yield Permit(self, taken)
        finally:
            self.in_flight -= taken
            self._grant()

    async def _acquire(self, weight: int) -> int:
        if not self._waiting and self.in_flight + min(weight, self.limit) <= self.limit:
            return self._take(weight)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (REQUEST_PRIORITY.get(), next(self._arrival), weight, future))
        self._saturated = True
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled before it ran
                self.in_flight -= future.result()
            self._grant()
            raise

    def _take(self, weight: int) -> int:
        taken = min(weight, self.limit)
        self.in_flight += taken
        if self.in_flight >= self.limit:
            self._saturated = True
        return taken

    def _grant(self) -> None:
        """Give free slots to the waiters at the head of the line, in order."""
        while self._waiting:
            _, _, weight, future = self._waiting[0]
            if future.done():  # its waiter was cancelled
                heapq.heappop(self._waiting)
                continue
            if self.in_flight + min(weight, self.limit) > self.limit:
                return
            heapq.heappop(self._waiting)
            future.set_result(self._take(weight))

    # -- adaptation ----------------------------------------------------------------------------------
    def observe(self, permit: Permit, latency: float) -> None:
        """A success: once a window is complete, grow if latency held and every slot was used, or shrink
        if latency rose."""
        if not self.policy.adaptive or permit.epoch != self.epoch:
            return
        self._window.append(latency)
        if len(self._window) < max(self.limit, MIN_WINDOW):
            return
        median = statistics.median(self._window)
        best = median if self._best is None else min(median, self._best * (1 + BASELINE_DRIFT))
        self._best = best
        self._slow_start = self._slow_start and median <= SLOW_START_EXIT * best
        if median > self.tolerance * best:
            self._change(self._limit * OVERLOAD_DECREASE)
        elif self._saturated:
            self._change(self._limit * 2 if self._slow_start else self._limit + 1)
        else:  # latency held but the limit was not reached: a new window, the limit unchanged
            self._window = []

    def back_off(self, permit: Permit, factor: float) -> None:
        """A 429 or a failure: shrink, once for everything that was in flight together."""
        if self.policy.adaptive and permit.epoch == self.epoch:
            self._change(self._limit * factor)

    def _change(self, limit: float) -> None:
        self._slow_start = self._slow_start and limit > self._limit
        self._limit = min(max(limit, 1.0), float(self.policy.maximum))
        self.epoch += 1
        self._window = []
        self._saturated = self.in_flight >= self.limit or self.waiting > 0
        self._grant()
