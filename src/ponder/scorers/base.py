"""The scorer contract and registry.

A scorer judges candidates of one problem and returns one float per candidate (higher is better).
It declares what it scores (``granularity``: whole answers, steps, or both) and whether the candidates
must carry token logprobs. Any model calls it makes go through ``ctx.generate`` on its own ledger line
(``scorer:NAME``), so verification cost is counted next to generation cost.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ponder.backends.base import Backend, Generation, GenRequest
from ponder.core.cost import Cost
from ponder.core.errors import UsageError
from ponder.core.registry import Options, Registry
from ponder.core.types import Candidate, Message, Problem, Usage

if TYPE_CHECKING:
    from ponder.context import Context

Granularity = Literal["answer", "step", "both"]
OptionsT = TypeVar("OptionsT", bound=Options)


class Scorer(abc.ABC, Generic[OptionsT]):
    """Judges candidates. A subclass names its options model (``class JudgeScorer(Scorer[JudgeOptions])``),
    so ``self.options`` has that type wherever the scorer reads it."""

    name: str = ""
    granularity: Granularity = "answer"
    needs_logprobs: int | None = None  # top-k logprobs the candidates must carry, if any

    def __init__(self, options: OptionsT):
        self.options = options

    @property
    def line(self) -> str:
        return f"scorer:{self.name}"

    @abc.abstractmethod
    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        """One score per candidate, in order."""

    def max_cost(self, candidates: int) -> Cost:
        """The most upstream work one ``score`` call (or ``score_steps``, for a step scorer) over this
        many candidates or partial solutions can cause; it never decreases as ``candidates`` grows."""
        raise UsageError(f"scorer {self.name!r} does not state the most upstream work it can cause")

    async def review(
        self,
        ctx: Context,
        candidates: list[Candidate],
        requests: list[GenRequest],
        backend: Backend | None = None,
    ) -> list[list[Generation]]:
        """Send one request per candidate on this scorer's ledger line, billing each candidate its share."""
        results = await ctx.generate(requests, line=self.line, backend=backend)
        for candidate, generations in zip(candidates, results, strict=True):
            candidate.scoring_usage = candidate.scoring_usage + Usage.total([g.usage for g in generations])
        return results


def review_request(
    problem: Problem,
    candidate: Candidate,
    system: str,
    template: str,
    max_solution_chars: int,
    **settings: Any,
) -> GenRequest:
    """A request showing the model the problem and the tail of one candidate's solution.

    ``template`` has ``{question}`` and ``{solution}`` fields; ``settings`` are GenRequest fields.
    """
    solution = candidate.text[-max_solution_chars:]
    return GenRequest(
        messages=(
            Message("system", system),
            Message("user", template.format(question=problem.question, solution=solution)),
        ),
        **settings,
    )


SCORERS: Registry[Scorer[Any]] = Registry("scorer")
