"""Best-of-N: sample n solutions, score each with one scorer, return the highest-scoring answer.

The verifier-reranking baseline of "Training Verifiers to Solve Math Word Problems" (Cobbe et al.,
2021) and of "Scaling LLM Test-Time Compute Optimally" (Snell et al., 2024). Candidates that gave an
extractable answer are preferred over those that did not; ties go to the earlier candidate.
"""

from __future__ import annotations

from pydantic import Field

from ponder.core.types import Problem, Result
from ponder.scorers import SCORERS
from ponder.strategies.base import STRATEGIES, Context, SamplingOptions, Strategy


class BestOfNOptions(SamplingOptions):
    n: int = Field(8, ge=1, le=1024)
    scorer: str = "judge"


@STRATEGIES.register("best-of-n", BestOfNOptions)
class BestOfN(Strategy):
    """n samples, the scorer's highest-scoring answer wins."""

    name = "best-of-n"

    def __init__(self, options: BestOfNOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options: BestOfNOptions = self.options  # type: ignore[assignment]
        scorer = self.scorer
        request = ctx.request(problem, options, n=options.n, logprobs=scorer.needs_logprobs)
        candidates = await ctx.sample(request)
        if not candidates:
            return ctx.result(self.spec, candidates, None)
        scores = await scorer.score(problem, candidates, ctx)
        for candidate, score in zip(candidates, scores, strict=True):
            candidate.score = candidate.scores[scorer.name] = score
        ctx.emit("scored", scores=scores)
        best = max(range(len(candidates)), key=lambda i: (candidates[i].answer is not None, scores[i], -i))
        winner = candidates[best]
        return ctx.result(self.spec, candidates, winner.answer, text=winner.text)
