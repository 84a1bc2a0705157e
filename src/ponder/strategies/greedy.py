"""Greedy decoding: one sample at temperature 0. The baseline every other strategy must beat."""

from __future__ import annotations

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.types import Candidate, Problem, Result
from ponder.scorers.vote import Vote
from ponder.strategies.base import STRATEGIES, Strategy


class GreedyOptions(SamplingOptions):
    temperature: float = Field(0.0, ge=0.0, le=5.0)


@STRATEGIES.register("greedy", GreedyOptions)
class Greedy(Strategy[GreedyOptions]):
    """One sample at temperature 0 (the baseline)."""

    name = "greedy"
    sample_bank = True

    async def run(self, problem: Problem, ctx: Context) -> Result:
        candidates = await ctx.sample(ctx.request(problem, self.options, n=1))
        choice = self.select(candidates)
        text = candidates[choice.winner].text if choice.winner is not None else None
        return ctx.result(self.spec, candidates, choice.answer, text=text)

    def select(self, candidates: list[Candidate]) -> Vote:
        return Vote(candidates[0].answer, 0, {}) if candidates else Vote(None, None, {})

    def max_cost(self) -> Cost:
        options = self.options
        return Cost.sample(1, options.max_tokens)
