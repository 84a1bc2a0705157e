"""Best-of-N: sample n solutions, score each with one scorer, return the highest-scoring answer.

The verifier-reranking baseline of "Training Verifiers to Solve Math Word Problems" (Cobbe et al.,
2021) and of "Scaling LLM Test-Time Compute Optimally" (Snell et al., 2024). Candidates that gave an
extractable answer are preferred over those that did not; ties go to the earlier candidate.

``aggregate`` picks the selection rule (``ponder.scorers.selection``): ``argmax`` (the default, the
papers' rule), ``weighted`` (majority vote weighted by score), or ``top`` (majority vote among the top
``keep`` fraction by score, the filtering of "Deep Think with Confidence", Fu et al., 2025, who keep
η = 10% or 90%; default 0.5). All three run in ``select``, so the eval re-selects them offline.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import ScorerSpec
from ponder.core.types import Candidate, Problem, Result
from ponder.scorers import SCORERS, Vote
from ponder.scorers.selection import argmax, top_fraction_vote, weighted_vote
from ponder.strategies.base import STRATEGIES, Strategy


class BestOfNOptions(SamplingOptions):
    n: int = Field(8, ge=1, le=1024)
    scorer: ScorerSpec = "judge"
    aggregate: Literal["argmax", "weighted", "top"] = "argmax"
    keep: float = Field(0.5, gt=0.0, le=1.0)  # fraction kept by aggregate=top


@STRATEGIES.register("best-of-n", BestOfNOptions)
class BestOfN(Strategy[BestOfNOptions]):
    """n samples, the scorer's highest-scoring answer wins."""

    name = "best-of-n"
    budget_option = "n"
    sample_bank = True

    def __init__(self, options: BestOfNOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        request = ctx.request(problem, options, n=options.n, logprobs=self.scorer.needs_logprobs)
        candidates = await ctx.sample(request)
        if not candidates:
            return ctx.result(self.spec, candidates, None)
        scores = await self.scorer.score(problem, candidates, ctx)
        for candidate, score in zip(candidates, scores, strict=True):
            candidate.score = candidate.scores[self.scorer.name] = score
        ctx.emit("scored", scores=scores)
        choice = self.select(candidates)
        text = candidates[choice.winner].text if choice.winner is not None else None
        return ctx.result(self.spec, candidates, choice.answer, text=text, votes=choice.table)

    def select(self, candidates: list[Candidate]) -> Vote:
        options = self.options
        if options.aggregate == "weighted":  # an unscored candidate adds no weight
            return weighted_vote(candidates, [c.scores.get(self.scorer.name, 0.0) for c in candidates])
        scores = [c.scores.get(self.scorer.name, float("-inf")) for c in candidates]
        if options.aggregate == "top":
            return top_fraction_vote(candidates, scores, options.keep)
        return argmax(candidates, scores)

    def max_cost(self) -> Cost:
        """n samples and the scorer's cost on all of them."""
        options = self.options
        return Cost.sample(options.n, options.max_tokens) + self.scorer.max_cost(options.n)
