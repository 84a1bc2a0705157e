"""Self-consistency: sample n reasoning paths, answer by majority vote.

Wang et al., "Self-Consistency Improves Chain of Thought Reasoning in Language Models" (2022).
Defaults: n=8 (the paper's gains are mostly in by 8–16 samples on GSM8K), temperature 0.7 (the paper
samples at T=0.5–0.7). Votes are over
equivalence classes of answers; with ``weighted=true`` each vote weighs the candidate's score from
``scorer`` (weighted voting, as in the paper's "weighted sum" variant).
"""

from __future__ import annotations

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import OptionalScorerSpec
from ponder.core.types import Candidate, Problem, Result
from ponder.scorers import SCORERS, Vote, majority_vote
from ponder.strategies.base import STRATEGIES, Strategy


class SelfConsistencyOptions(SamplingOptions):
    n: int = Field(8, ge=1, le=1024)
    scorer: OptionalScorerSpec = None  # when set, votes are weighted by this scorer's scores


@STRATEGIES.register("self-consistency", SelfConsistencyOptions)
class SelfConsistency(Strategy[SelfConsistencyOptions]):
    """n samples, majority vote over equivalent answers (Wang et al., 2022)."""

    name = "self-consistency"
    budget_option = "n"
    sample_bank = True

    def __init__(self, options: SelfConsistencyOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer) if options.scorer else None

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        logprobs = self.scorer.needs_logprobs if self.scorer else None
        candidates = await ctx.sample(ctx.request(problem, options, n=options.n, logprobs=logprobs))
        if self.scorer is not None and candidates:
            weights = await self.scorer.score(problem, candidates, ctx)
            for candidate, weight in zip(candidates, weights, strict=True):
                candidate.score = candidate.scores[self.scorer.name] = weight
        vote = self.select(candidates)
        text = candidates[vote.winner].text if vote.winner is not None else None
        return ctx.result(self.spec, candidates, vote.answer, text=text, votes=vote.table)

    def select(self, candidates: list[Candidate]) -> Vote:
        weights = [c.scores.get(self.scorer.name, 0.0) for c in candidates] if self.scorer else None
        return majority_vote(candidates, weights)

    def max_cost(self) -> Cost:
        """n samples, and the scorer's cost on all of them when votes are weighted."""
        options = self.options
        scoring = self.scorer.max_cost(options.n) if self.scorer else Cost()
        return Cost.sample(options.n, options.max_tokens) + scoring
