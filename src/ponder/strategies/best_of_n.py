"""Best-of-N: sample n solutions, score each with one scorer, return the highest-scoring answer.

The verifier-reranking baseline of "Training Verifiers to Solve Math Word Problems" (Cobbe et al.,
2021) and of "Scaling LLM Test-Time Compute Optimally" (Snell et al., 2024). Candidates that gave an
extractable answer are preferred over those that did not; ties go to the earlier candidate.
"""

from __future__ import annotations

from pydantic import Field

from ponder.core.types import Candidate, Problem, Result
from ponder.scorers import SCORERS, Vote
from ponder.strategies.base import STRATEGIES, Context, SamplingOptions, Strategy


class BestOfNOptions(SamplingOptions):
    n: int = Field(8, ge=1, le=1024)
    scorer: str = "judge"


@STRATEGIES.register("best-of-n", BestOfNOptions)
class BestOfN(Strategy):
    """n samples, the scorer's highest-scoring answer wins."""

    name = "best-of-n"
    budget_option = "n"
    sample_bank = True

    def __init__(self, options: BestOfNOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options: BestOfNOptions = self.options  # type: ignore[assignment]
        request = ctx.request(problem, options, n=options.n, logprobs=self.scorer.needs_logprobs)
        candidates = await ctx.sample(request)
        if not candidates:
            return ctx.result(self.spec, candidates, None)
        scores = await self.scorer.score(problem, candidates, ctx)
        for candidate, score in zip(candidates, scores, strict=True):
            candidate.score = candidate.scores[self.scorer.name] = score
        ctx.emit("scored", scores=scores)
        choice = self.select(candidates)
        assert choice.winner is not None
        return ctx.result(self.spec, candidates, choice.answer, text=candidates[choice.winner].text)

    def select(self, candidates: list[Candidate]) -> Vote:
        if not candidates:
            return Vote(None, None, {})
        scores = [c.scores.get(self.scorer.name, float("-inf")) for c in candidates]
        best = max(range(len(candidates)), key=lambda i: (candidates[i].answer is not None, scores[i], -i))
        return Vote(candidates[best].answer, best, {})
