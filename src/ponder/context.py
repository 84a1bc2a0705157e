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

from ponder.backends.base import Backend, Generation, GenRequest
from ponder.backends.pool import Backends
from ponder.core.ledger import Ledger
from ponder.core.registry import Options
from ponder.core.types import Candidate, Problem, Result, Usage
from ponder.tasks.extract import extract_answer
from ponder.tasks.prompts import MATH_SYSTEM_PROMPT

if TYPE_CHECKING:
    from ponder.tasks.datasets import Dataset

#: ``on_event(kind, data)`` receives progress events: ``generated`` (candidates so far), ``scored``.
EventHandler = Callable[[str, dict[str, Any]], None]


class SamplingOptions(Options):
    """Options every sampling strategy takes. Defaults follow common practice for small chat models."""

    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    seed: int | None = None


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
    budget_exhausted: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._generated = 0
        #: requests ``as_completed`` cancelled in flight (never billed), and candidates it finished but
        #: the consumer never read (billed: a strategy returns them with its candidates)
        self.cancelled = 0
        self.unread: list[Candidate] = []

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
        generation's usage on a ledger line."""
        results = await (backend or self.backend).generate(requests)
        for generations in results:
            for generation in generations:
                self.ledger.record(line, generation.usage)
        return results

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
        return Candidate(
            text=generation.text,
            answer=self.extract(generation.text),
            finish_reason=generation.finish_reason,
            completion_tokens=generation.completion_tokens,
            logprobs=generation.logprobs,
            usage=generation.usage,
        )

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
                self.budget_exhausted = True
                break
            [generations] = await self.generate([request.with_(n=size, seed=seed)])
            candidates += [self.candidate(g) for g in generations]
            self._generated += len(generations)
            self.emit("generated", count=self._generated, usage=self.ledger.total)
        return candidates

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

        Billing: a request is billed when it completes, from the server's usage. A cancelled request is
        billed nothing and is not estimated: without streaming, what the server computed before it saw
        the cancellation is unknown (its prompt, and any tokens generated before the connection closed,
        go unrecorded). Cancelled requests are counted in ``self.cancelled``. Requests that finished but
        were never read go to ``self.unread`` (they are billed, so a strategy returns them too).
        """
        draw = draw or self.draw_one
        limit = max(1, concurrency or self.backend.capabilities.max_concurrency)
        pending: dict[asyncio.Future[Candidate], int] = {}
        launched = 0
        try:
            while launched < request.n or pending:
                while launched < request.n and len(pending) < limit and not self.ledger.exhausted:
                    seed = None if request.seed is None else request.seed + launched
                    pending[asyncio.ensure_future(draw(request.with_(n=1, seed=seed)))] = launched
                    launched += 1
                if not pending:
                    self.budget_exhausted = True
                    return
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=pending.__getitem__):
                    del pending[task]
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
