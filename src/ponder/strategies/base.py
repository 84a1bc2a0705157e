"""What every strategy shares: the run context, common sampling options, and the strategy registry.

A strategy is a short async program over ``ctx``: it samples through ``ctx.sample``/``ctx.generate``
(which meter every call in the ledger and respect the budget), scores through scorers, and returns
``ctx.result(...)``. It never touches HTTP, JSON or answer regexes.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from ponder.backends.base import Backend, Generation, GenRequest
from ponder.core.ledger import Ledger
from ponder.core.registry import Options, Registry
from ponder.core.types import Candidate, Problem, Result, Usage
from ponder.scorers.vote import Vote
from ponder.tasks.extract import extract_answer
from ponder.tasks.prompts import MATH_SYSTEM_PROMPT

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
    """Everything a strategy may use: the backend, the ledger (and its budget), seed, events, prompts."""

    backend: Backend
    ledger: Ledger = field(default_factory=Ledger)
    seed: int | None = None
    on_event: EventHandler | None = None
    system_prompt: str | None = MATH_SYSTEM_PROMPT
    extract: Callable[[str], str | None] = extract_answer
    budget_exhausted: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._generated = 0

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


class Strategy(abc.ABC):
    """A way to spend compute on one problem. Subclasses set ``name`` and implement ``run``.

    ``budget_option`` names the option a compute budget scales (``n`` for sampling strategies; None when
    a budget does not apply). Strategies whose answer is a selection from independent samples implement
    ``select``: the eval then draws once at the largest budget and derives every smaller budget by
    re-selecting from subsets of the stored samples (``sample_bank``).
    """

    name: str = ""
    budget_option: ClassVar[str | None] = None
    sample_bank: ClassVar[bool] = False

    def __init__(self, options: Options):
        self.options = options

    @property
    def spec(self) -> str:
        """The canonical spec: name plus the options that differ from their defaults, sorted."""
        changed = self.options.model_dump(exclude_defaults=True)
        return self.name + (":" + ",".join(f"{k}={changed[k]}" for k in sorted(changed)) if changed else "")

    @abc.abstractmethod
    async def run(self, problem: Problem, ctx: Context) -> Result:
        """Solve ``problem`` within ``ctx``'s budget and return every candidate with its usage."""

    @property
    def uses_scores(self) -> bool:
        """Whether ``select`` reads scorer scores (so a re-selection is billed the scoring too)."""
        return getattr(self, "scorer", None) is not None

    def select(self, candidates: list[Candidate]) -> Vote:
        """The answer this strategy would pick from these (already scored) candidates."""
        raise NotImplementedError(f"{self.name} does not select from stored samples")


STRATEGIES: Registry[Strategy] = Registry("strategy")
