"""QAlign: a Metropolis–Hastings chain over whole solutions, guided by a reward; answer by vote.

After "Sample, Don't Search: Rethinking Test-Time Alignment for Language Models" (QAlign; Faria and
Smith, 2025), which runs QUEST ("Quality-Aware Metropolis-Hastings Sampling for Machine Translation",
Faria and Martins, 2024) towards the target π(y) ∝ p(y | x) · exp(r(y) / β):

1. draw a solution y from the model and score it with the reward r (a scorer);
2. each step, cut y at a position i drawn uniformly from its |y| words, keep y[:i] and let the model
   regenerate the rest (continuing the partial message), giving y′;
3. accept y′ with probability min(1, exp((r(y′) − r(y)) / β) · |y| / |y′|) (the model's own probabilities
   cancel because the suffix is its sample; the length ratio is the cut proposal's);
4. after ``steps`` steps, answer by majority vote over the chain's states, one per step and the start.

Positions are whitespace words, since a strategy cannot see the backend's tokens; a backend that
cannot continue a partial message gets cut points at 0 (whole new samples: an independence sampler).
The cut points and acceptances draw on ``ctx.rng``, so a seeded run is reproducible. Defaults: 16 steps
(the issue's spec), temperature 1 (the chain must sample the model's own distribution), reward from the
``judge`` scorer with β = 0.1 (ours: rewards in [0, 1] need a small β to matter; the paper's reward
model has another scale).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from ponder.backends.base import Generation
from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import ScorerSpec
from ponder.core.types import Candidate, Problem, Result
from ponder.scorers import SCORERS, majority_vote
from ponder.strategies.base import STRATEGIES, Strategy


class QAlignOptions(SamplingOptions):
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    steps: int = Field(16, ge=0, le=1024)
    scorer: ScorerSpec = "judge"
    beta: float = Field(0.1, gt=0.0)


def words(text: str) -> list[str]:
    return text.split(" ")


def acceptance(
    reward: float, proposed_reward: float, length: int, proposed_length: int, beta: float
) -> float:
    """min(1, exp((r′ − r) / β) · |y| / |y′|), computed in log space."""
    log_ratio = (
        (proposed_reward - reward) / beta + math.log(max(length, 1)) - math.log(max(proposed_length, 1))
    )
    return 1.0 if log_ratio >= 0 else math.exp(log_ratio)


@STRATEGIES.register("qalign", QAlignOptions)
class QAlign(Strategy[QAlignOptions]):
    """Metropolis–Hastings over solutions (cut, regenerate, accept by reward); vote over the chain."""

    name = "qalign"
    depth_option = "steps"

    def __init__(self, options: QAlignOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer)

    async def reward(self, problem: Problem, candidate: Candidate, ctx: Context) -> float:
        [score] = await self.scorer.score(problem, [candidate], ctx)
        candidate.score = candidate.scores[self.scorer.name] = score
        return score

    def max_cost(self) -> Cost:
        """The first sample and one proposal per step (a proposal writes at most ``max_tokens`` after
        its cut), each scored alone."""
        options = self.options
        return (Cost.sample(1, options.max_tokens) + self.scorer.max_cost(1)) * (options.steps + 1)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        request = ctx.request(problem, options, logprobs=self.scorer.needs_logprobs)
        current = await ctx.sample_one(request)
        reward = await self.reward(problem, current, ctx)
        candidates, chain = [current], [0]
        steps: list[dict[str, Any]] = []
        for step in range(options.steps):
            if ctx.ledger.exhausted:  # ctx.result reports the budget as what stopped it
                break
            pieces = words(current.text)
            cut = ctx.rng.randrange(len(pieces)) if ctx.backend.capabilities.continuation else 0
            prefix = " ".join(pieces[:cut]) + " " if cut else ""
            seed = None if request.seed is None else request.seed + step + 1
            [[generation]] = await ctx.generate([request.with_(prefix=prefix or None, seed=seed)])
            proposal = ctx.candidate(
                Generation(
                    prefix + generation.text,
                    generation.finish_reason,
                    generation.completion_tokens,
                    generation.usage,
                    generation.logprobs,
                )
            )
            proposed_reward = await self.reward(problem, proposal, ctx)
            probability = acceptance(
                reward, proposed_reward, len(pieces), len(words(proposal.text)), options.beta
            )
            accepted = ctx.rng.random() < probability
            candidates.append(proposal)
            if accepted:
                current, reward = proposal, proposed_reward
            chain.append(len(candidates) - 1 if accepted else chain[-1])
            steps.append(
                {"cut": cut, "reward": proposed_reward, "acceptance": probability, "accepted": accepted}
            )
        states = [candidates[i] for i in chain]
        vote = majority_vote(states)
        text = states[vote.winner].text if vote.winner is not None else None
        trace = {"chain": chain, "steps": steps, "accepted": sum(s["accepted"] for s in steps)}
        return ctx.result(self.spec, candidates, vote.answer, text, vote.table, trace=trace)
