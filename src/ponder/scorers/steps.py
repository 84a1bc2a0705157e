"""Step scorers: judge each step of a solution, then aggregate the step scores into one.

A process reward model gives every step a probability of being correct. Strategies that search over
steps read the per-step scores; selection needs one number per candidate, obtained by an aggregation
chosen by name (``aggregate=last|min|mean|product``):

- ``min``: a solution is as good as its worst step. Math-Shepherd ("Math-Shepherd: Verify and Reinforce
  LLMs Step-by-step without Human Annotations", Wang et al., 2024) ranks solutions by their minimum
  step score, and "The Lessons of Developing Process Reward Models in Mathematical Reasoning" (Zhang et
  al., 2025, the Qwen2.5-Math-PRM paper) evaluates its PRMs by where the minimum step score falls.
- ``last``: the score of the final step, read as a value estimate of the whole solution ("Scaling LLM
  Test-Time Compute Optimally...", Snell et al., 2024; the default of Hugging Face's search-and-learn).
- ``mean`` and ``product``: the other two rules in common use (product = probability that every step
  is correct, if the steps were independent).
"""

from __future__ import annotations

import abc
import math
from typing import TYPE_CHECKING, Generic, Literal

from ponder.core.registry import Text
from ponder.core.types import Candidate, Problem, Usage
from ponder.scorers.base import OptionsT, Scorer
from ponder.tasks.steps import split_steps

if TYPE_CHECKING:
    from ponder.context import Context

Aggregate = Literal["last", "min", "mean", "product"]


def aggregate_step_scores(scores: list[float], how: Aggregate) -> float:
    """One score from a solution's step scores; a solution with no steps scores 0."""
    if not scores:
        return 0.0
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "mean":
        return sum(scores) / len(scores)
    if how == "product":
        return math.prod(scores)
    raise ValueError(f"unknown aggregation {how!r}; valid: last, min, mean, product")


class StepScorer(Scorer[OptionsT], Generic[OptionsT]):
    """A scorer of steps. Subclasses implement ``evaluate``; this class bills and aggregates.

    A step scorer makes no LLM calls through ``ctx``: it runs its own model, so it reports what each
    solution cost (tokens scored, seconds, FLOPs) and the cost goes to its ledger line and, in ``score``,
    to each candidate's ``scoring_usage``.
    """

    granularity = "both"
    #: step separator in candidate texts (blank lines, see ``ponder.tasks.steps``)
    delimiter: Text = "\n\n"

    @abc.abstractmethod
    async def evaluate(
        self, problem: Problem, steps: list[list[str]]
    ) -> tuple[list[list[float]], list[Usage]]:
        """Per-step scores of each solution (given as its steps), and what scoring each one cost."""

    def aggregate(self) -> Aggregate:
        """The aggregation in use (the option, or the model family's default)."""
        return self.options.aggregate  # type: ignore[attr-defined, no-any-return]

    async def score_steps(self, problem: Problem, steps: list[list[str]], ctx: Context) -> list[list[float]]:
        """One score per step, for each solution's list of steps."""
        ctx.admit_calls(len(steps))  # a reward model's passes are calls on the budget too
        scores, usages = await self.evaluate(problem, steps)
        ctx.ledger.record(self.line, Usage.total(usages))
        return scores

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        steps = [split_steps(candidate.text, self.delimiter) for candidate in candidates]
        ctx.admit_calls(len(steps))
        step_scores, usages = await self.evaluate(problem, steps)
        ctx.ledger.record(self.line, Usage.total(usages))
        for candidate, usage in zip(candidates, usages, strict=True):
            candidate.scoring_usage = candidate.scoring_usage + usage
        how = self.aggregate()
        return [aggregate_step_scores(scores, how) for scores in step_scores]


def share_usage(tokens: list[int], seconds: float, parameters: float) -> list[Usage]:
    """Split one model call's cost over the solutions it scored: tokens each, seconds in proportion.

    The call is counted once, on the first solution; FLOPs = 2 × parameters × tokens.
    """
    total = sum(tokens) or 1
    return [
        Usage(
            calls=1 if index == 0 else 0,
            prompt_tokens=count,
            seconds=seconds * count / total,
            flops=2.0 * parameters * count,
        )
        for index, count in enumerate(tokens)
    ]
