"""Greedy decoding: one sample at temperature 0. The baseline every other strategy must beat."""

from __future__ import annotations

from pydantic import Field

from ponder.core.types import Problem, Result
from ponder.strategies.base import STRATEGIES, Context, SamplingOptions, Strategy


class GreedyOptions(SamplingOptions):
    temperature: float = Field(0.0, ge=0.0, le=5.0)


@STRATEGIES.register("greedy", GreedyOptions)
class Greedy(Strategy):
    """One sample at temperature 0 (the baseline)."""

    name = "greedy"

    async def run(self, problem: Problem, ctx: Context) -> Result:
        candidates = await ctx.sample(ctx.request(problem, self.options, n=1))
        best = candidates[0] if candidates else None
        return ctx.result(
            self.spec, candidates, best.answer if best else None, text=best.text if best else None
        )
