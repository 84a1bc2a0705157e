"""The run context: what one run may use, and who owns it.

A :class:`Context` holds the main backend, the pool of other models a judge, critic or role names, the
ledger (and its budget), the seed, progress events and the prompt conventions of the task. It sits below
scorers, roles, pipelines and strategies, which all take it as an argument, so none of them imports from
a layer above. Whoever creates a context owns its pool and closes it: ``asolve`` per call, the eval and
rescore per run, the server for its lifetime.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ponder.backends.base import STOPPED_WORK, Backend, Generation, GenRequest
from ponder.backends.pool import Backends
from ponder.core.errors import BudgetExhaustedError
from ponder.core.ledger import Ledger
from ponder.core.registry import Options
from ponder.core.types import Candidate, Problem, Result, Usage
from ponder.tasks.extract import extract_answer
from ponder.tasks.prompts import MATH_SYSTEM_PROMPT

if TYPE_CHECKING:
    from ponder.tasks.datasets import Dataset

#: characters per token of the prompt estimate that a ``tokens`` budget reserves before a call starts (the
#: exact count is known only from the server's answer; what the estimate misses is reported as excess)
CHARS_PER_TOKEN = 4


def prompt_estimate(request: GenRequest) -> int:
    """Tokens the request's prompt (and any prefix it continues) will roughly take."""
    chars = sum(len(message.content) for message in request.messages) + len(request.prefix or "")
    return -(-chars // CHARS_PER_TOKEN)


def calls_of(request: GenRequest, backend: Backend) -> int:
    """Upstream calls a request takes: one when the backend honours ``n``, one per choice otherwise."""
    return 1 if backend.capabilities.honours_n else request.n


def reservation(requests: list[GenRequest], backend: Backend) -> tuple[int, int]:
    """The calls the requests take and the prompt tokens they send (each call sends its prompt)."""
    calls = [calls_of(r, backend) for r in requests]
    prompt = sum(prompt_estimate(r) * count for r, count in zip(requests, calls, strict=True))
    return sum(calls), prompt


#: ``on_event(kind, data)`` receives progress events: ``generated`` (candidates so far), ``scored``.
EventHandler = Callable[[str, dict[str, Any]], None]


class SamplingOptions(Options):
    """Options every sampling strategy takes. Defaults follow common practice for small chat models."""

    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    seed: int | None = None
    #: a candidate cut off by ``max_tokens`` keeps its answer and votes (by default it has none)
    allow_truncated: bool = False


@dataclass
class Context:
    """Everything a strategy may use: the backend, the ledger (and its budget), seed, events, prompts.

    ``backends`` gives the other models a judge, critic or role names. Whoever creates the context owns
    that pool and closes it (``asolve`` per call, the eval per run, the server for its lifetime), so no
    strategy, scorer or role builds clients of its own, and a server decides which models a name may mean.
    """

    backend: Backend
    backends: Backends = field(default_factory=Backends)
    ledger: Ledger = field(default_factory=Ledger)
    seed: int | None = None
    on_event: EventHandler | None = None
    system_prompt: str | None = MATH_SYSTEM_PROMPT
    extract: Callable[[str], str | None] = extract_answer
    #: let a candidate cut off by ``max_tokens`` keep its extracted answer (and vote); off by default
    allow_truncated: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._generated = 0
        #: why the budget stopped the run (a call it could not pay for), for the result's note
        self.stop_reason: str | None = None
        #: every candidate made in this context, in order: what a run stopped by its budget selects from
        self.made: list[Candidate] = []
        #: requests ``as_completed`` cancelled in flight (billed on the ``cancelled`` line), and candidates
        #: it finished but the consumer never read (billed: a strategy returns them with its candidates)
        self.cancelled = 0
        self.unread: list[Candidate] = []

    @property
    def budget_exhausted(self) -> bool:
        """Whether the budget stopped or trimmed a call of this run (``stop_reason`` says why)."""
        return self.stop_reason is not None

    @classmethod
    def for_dataset(
        cls,
        dataset: Dataset,
        backend: Backend,
        seed: int | None,
        ledger: Ledger | None = None,
        backends: Backends | None = None,
    ) -> Context:
        """A context that prompts and extracts answers the way ``dataset`` expects (eval, rescoring)."""
        return cls(
            backend=backend,
            backends=backends or Backends(),
            ledger=ledger or Ledger(),
            seed=seed,
            system_prompt=dataset.system_prompt,
            extract=dataset.extract,
        )

    def emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    async def generate(
        self, requests: list[GenRequest], line: str = "generate", backend: Backend | None = None
    ) -> list[list[Generation]]:
        """Send requests to the backend (or to ``backend``, e.g. a judge's own model), recording every
        generation's usage on a ledger line.

        The budget is a hard cap: the calls start only if the budget can pay for all of them (a single
        fanned-out request may be trimmed to fewer choices), each choice's ``max_tokens`` is clipped to
        its share of what remains, and what they may cost is reserved while they run. Otherwise nothing
        starts and BudgetExhaustedError says which cap stopped it (``Strategy.solve`` turns that into a
        result from what the run has).
        """
        backend = backend or self.backend
        if self.ledger.budget.is_unlimited():  # nothing to pay for: no estimate, no reservation
            results = await backend.generate(requests)
        else:
            requests = self.admit(requests, backend)
            calls, prompt = reservation(requests, backend)
            completion = sum(r.n * r.max_tokens for r in requests)
            self.ledger.reserve(calls, prompt, completion)
            try:
                results = await backend.generate(requests)
            finally:
                self.ledger.release(calls, prompt, completion)
        for generations in results:
            for generation in generations:
                self.ledger.record(line, generation.usage)
        return results

    def admit(self, requests: list[GenRequest], backend: Backend) -> list[GenRequest]:
        """The requests as the budget lets them start (fewer choices, clipped ``max_tokens``), or raise."""
        needed, prompt = reservation(requests, backend)
        room = self.ledger.headroom(backend.parameters, prompt)
        if room.calls is not None and needed > room.calls:
            if len(requests) == 1 and not backend.capabilities.honours_n and room.calls >= 1:
                requests = [requests[0].with_(n=room.calls)]  # fewer choices of one fanned-out request
                self.stopped(f"calls budget allows {room.calls} more of {needed} calls")
            else:
                raise BudgetExhaustedError(self.stopped(f"calls budget cannot pay for {needed} more calls"))
        if room.tokens is not None:
            share = room.tokens // sum(r.n for r in requests)
            if share < 1:
                raise BudgetExhaustedError(self.stopped("token budget cannot pay for another call"))
            if any(r.max_tokens > share for r in requests):
                requests = [r.with_(max_tokens=min(r.max_tokens, share)) for r in requests]
        return requests

    def admit_calls(self, calls: int, parameters: float = 0.0) -> None:
        """Raise unless the budget can pay for ``calls`` calls that are not generations (a reward model's
        forward passes), whose tokens are only known afterwards: a token cap must have some room left."""
        if self.ledger.budget.is_unlimited():
            return
        room = self.ledger.headroom(parameters)
        if room.calls is not None and room.calls < calls:
            raise BudgetExhaustedError(self.stopped(f"calls budget cannot pay for {calls} more calls"))
        if room.tokens is not None and room.tokens <= 0:
            raise BudgetExhaustedError(self.stopped("token budget cannot pay for another call"))

    def stopped(self, reason: str) -> str:
        """Remember that the budget stopped or trimmed a call, and why (the first reason is kept)."""
        self.stop_reason = self.stop_reason or reason
        return reason

    def request(self, problem: Problem, options: SamplingOptions, n: int = 1, **changes: Any) -> GenRequest:
        """The request that samples ``n`` solutions of ``problem`` with the strategy's options."""
        seed = options.seed if options.seed is not None else self.seed
        request = GenRequest(
            messages=tuple(problem.as_messages(self.system_prompt)),
            n=n,
            temperature=options.temperature,
            top_p=options.top_p,
            max_tokens=options.max_tokens,
            seed=seed,
        )
        return request.with_(**changes) if changes else request

    def candidate(self, generation: Generation) -> Candidate:
        """A candidate of a generation. One cut off by ``max_tokens`` has no answer, so it does not vote,
        unless the run allows truncated answers."""
        truncated = generation.finish_reason == "length" and not self.allow_truncated
        candidate = Candidate(
            text=generation.text,
            answer=None if truncated else self.extract(generation.text),
            finish_reason=generation.finish_reason,
            completion_tokens=generation.completion_tokens,
            logprobs=generation.logprobs,
            usage=generation.usage,
        )
        self.made.append(candidate)
        return candidate

    async def sample(self, request: GenRequest, batch: int | None = None) -> list[Candidate]:
        """Draw ``request.n`` candidates. Under a budget, draw in batches and stop when it is met."""
        if batch is None:
            unlimited = self.ledger.budget.is_unlimited()
            batch = request.n if unlimited else self.backend.capabilities.max_concurrency
        candidates: list[Candidate] = []
        while len(candidates) < request.n:
            size = min(batch, request.n - len(candidates))
            seed = None if request.seed is None else request.seed + len(candidates)
            if self.ledger.exhausted:
                self.stopped(self.ledger.exhausted_reason() or "budget met")
                break
            try:
                [generations] = await self.generate([request.with_(n=size, seed=seed)])
            except BudgetExhaustedError as stop:
                self.stopped(str(stop))
                break
            candidates += [self.candidate(g) for g in generations]
            self._generated += len(generations)
            self.emit("generated", count=self._generated, usage=self.ledger.total)
        return candidates

    async def sample_one(self, request: GenRequest) -> Candidate:
        """One candidate of ``request``; BudgetExhaustedError when the budget cannot pay for it."""
        candidates = await self.sample(request.with_(n=1))
        if not candidates:
            raise BudgetExhaustedError(self.stop_reason or "the budget cannot pay for another sample")
        return candidates[0]

    def result(
        self,
        strategy: str,
        candidates: list[Candidate],
        answer: str | None,
        text: str | None = None,
        votes: dict[str, float] | None = None,
        note: str | None = None,
        trace: dict[str, Any] | None = None,
    ) -> Result:
        if answer is None and note is None:
            note = "no candidate gave an extractable answer" if candidates else "no candidate was generated"
        truncated = sum(c.finish_reason == "length" for c in candidates)
        reasons = [
            note,
            f"{truncated} of {len(candidates)} candidates were cut off by max_tokens"
            + (" and still voted" if self.allow_truncated else " and did not vote")
            if truncated
            else None,
            f"budget: {why}" if (why := self.stop_reason or self.ledger.exhausted_reason()) else None,
            self.ledger.excess(),
        ]
        note = "; ".join(reason for reason in reasons if reason) or None
        return Result(
            answer=answer,
            strategy=strategy,
            candidates=candidates,
            usage=self.ledger.total,
            usage_by_line={line: Usage() + usage for line, usage in self.ledger.lines.items()},
            votes=votes or {},
            text=text,
            note=note,
            wall_seconds=self.ledger.elapsed(),
            budget_exhausted=self.budget_exhausted or self.ledger.exhausted,
            trace=trace,
        )

    async def draw_one(self, request: GenRequest) -> Candidate:
        """One candidate from a single-sample request (the default draw of ``as_completed``)."""
        [[generation]] = await self.generate([request.with_(n=1)])
        return self.candidate(generation)

    async def stoppable(
        self, draw: Callable[[GenRequest], Awaitable[Candidate]], request: GenRequest
    ) -> Candidate:
        """``draw(request)`` as work that may be stopped: in its own task, a backend bills a request it
        cancels to the ``cancelled`` ledger line."""
        STOPPED_WORK.set(self.bill_stopped)
        return await draw(request)

    def bill_stopped(self, usage: Usage) -> None:
        """Record what a request stopped in flight had cost, on its own line."""
        self.ledger.record("cancelled", usage)

    async def as_completed(
        self,
        request: GenRequest,
        concurrency: int | None = None,
        draw: Callable[[GenRequest], Awaitable[Candidate]] | None = None,
    ) -> AsyncIterator[Candidate]:
        """Draw up to ``request.n`` candidates, one request each, and yield each as soon as it finishes.

        At most ``concurrency`` requests are in flight (default: the backend's ``max_concurrency``);
        request i gets seed ``request.seed + i``; candidates that finish together are yielded in launch
        order, so a deterministic backend gives a deterministic stream. ``draw`` replaces the single
        request (a strategy whose sample is several calls, e.g. a trace grown in chunks). No request
        starts once the budget is met. Consume it under ``contextlib.aclosing`` so that stopping early
        cancels what is still in flight at once.

        Billing: a request is billed when it completes, from the server's usage. A request cancelled in
        flight is billed what the server had produced by then, on the ledger line ``cancelled``: the
        backend streams requests it may be stopped in (``STOPPED_WORK``, set for each draw's task) and
        reports their call, prompt and the tokens sent before the stop (a backend that cannot tell, such
        as the scripted one, bills nothing). Cancelled requests are counted in ``self.cancelled``.
        Requests that finished but were never read go to ``self.unread`` (they are billed, so a strategy
        returns them too).
        """
        draw = draw or self.draw_one
        limit = max(1, concurrency or self.backend.capabilities.max_concurrency)
        pending: dict[asyncio.Future[Candidate], int] = {}
        launched = 0
        refused = False  # a draw the budget could not pay for: launch no more
        try:
            while launched < request.n or pending:
                while (
                    launched < request.n and len(pending) < limit and not (refused or self.ledger.exhausted)
                ):
                    seed = None if request.seed is None else request.seed + launched
                    single = request.with_(n=1, seed=seed)
                    pending[asyncio.ensure_future(self.stoppable(draw, single))] = launched
                    launched += 1
                if not pending:  # the budget refused the next draw, or is met
                    self.stopped(self.ledger.exhausted_reason() or "budget met")
                    return
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=pending.__getitem__):
                    del pending[task]
                    if isinstance(stop := task.exception(), BudgetExhaustedError):
                        self.stopped(str(stop))
                        refused = True
                        continue
                    candidate = task.result()
                    self._generated += 1
                    self.emit("generated", count=self._generated, usage=self.ledger.total)
                    yield candidate
        finally:
            running = [task for task in pending if not task.done()]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            self.cancelled += sum(task.cancelled() for task in running)
            finished = [t for t in pending if not t.cancelled() and t.exception() is None]
            self.unread += [task.result() for task in sorted(finished, key=pending.__getitem__)]
