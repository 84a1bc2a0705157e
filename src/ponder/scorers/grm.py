"""Principle-and-critique generative reward: k sampled critiques per candidate, each ending in a score.

After "Inference-Time Scaling for Generalist Reward Modeling" (DeepSeek-GRM; Liu et al., 2025): the
reward model first writes the principles a good answer must meet, then a critique against them, then a
pointwise score from 1 to 10. Sampling k critiques and summing their scores is the paper's voting.
Here the score is the sum divided by 10k, i.e. the mean rating over 10, in (0.1, 1]: the same ranking
as the sum when every critique is readable, and comparable with other scorers' 0–1 scores. A critique
without a readable "Score: N" (1 ≤ N ≤ 10) is left out (the mean is over the readable ones); a
candidate with none scores 0.5.

``meta_filter=true`` keeps the top half (rounded up) of the readable critiques before the sum, as the
paper's meta reward model does. The paper trains a separate meta RM; here the meta judgement is the
critique's own mean token log-probability, which costs no extra call (it needs a backend that declares
logprobs; without them every critique is kept). Defaults: k = 4 samples at temperature 0.7, the
common sampling temperature of ponder's other sampled verifiers.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from pydantic import Field

from ponder.backends.base import Generation
from ponder.core.cost import Cost
from ponder.core.registry import Options
from ponder.core.types import Candidate, Problem
from ponder.scorers.base import SCORERS, Scorer, review_request

if TYPE_CHECKING:
    from ponder.context import Context

GRM_SYSTEM_PROMPT = "You are an expert reviewer. You judge solutions against explicit principles."
GRM_TEMPLATE = (
    "Problem:\n{question}\n\nProposed solution:\n{solution}\n\n"
    "First, list the principles a correct and complete solution to this problem must satisfy. Then "
    "critique the proposed solution against each principle, checking its reasoning and final answer. "
    "Finally, end with one line 'Score: N', where N is an integer from 1 (wrong) to 10 (fully correct)."
)
_SCORE = re.compile(r"score\W{0,5}(\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_score(text: str) -> float | None:
    """The last "Score: N" with 1 ≤ N ≤ 10, or None."""
    matches = _SCORE.findall(text)
    if not matches:
        return None
    value = float(matches[-1])
    return value if 1 <= value <= 10 else None


def mean_logprob(generation: Generation) -> float | None:
    if not generation.logprobs:
        return None
    return sum(t.logprob for t in generation.logprobs) / len(generation.logprobs)


def reward(generations: list[Generation], meta_filter: bool) -> float:
    """Sum of the readable scores over 10 × their count, after the optional meta filter; 0.5 if none."""
    rated = [(score, mean_logprob(g)) for g in generations if (score := parse_score(g.text)) is not None]
    if not rated:
        return 0.5
    if meta_filter and all(meta is not None for _, meta in rated):
        keep = math.ceil(len(rated) / 2)
        order = sorted(range(len(rated)), key=lambda i: (-(rated[i][1] or 0.0), i))
        rated = [rated[i] for i in sorted(order[:keep])]
    return sum(score for score, _ in rated) / (10 * len(rated))


class GRMOptions(Options):
    samples: int = Field(4, ge=1, le=64)
    meta_filter: bool = False
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    max_tokens: int = Field(1024, ge=1)
    max_solution_chars: int = Field(6000, ge=100)


@SCORERS.register("grm", GRMOptions)
class GRMScorer(Scorer[GRMOptions]):
    """k sampled principle-and-critique reviews per candidate, each scored 1–10; summed (DeepSeek-GRM)."""

    name = "grm"

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        options = self.options
        logprobs = 0 if options.meta_filter and ctx.backend.capabilities.logprobs else None
        requests = [
            review_request(
                problem,
                c,
                GRM_SYSTEM_PROMPT,
                GRM_TEMPLATE,
                options.max_solution_chars,
                n=options.samples,
                temperature=options.temperature,
                max_tokens=options.max_tokens,
                logprobs=logprobs,
                seed=ctx.seed,
            )
            for c in candidates
        ]
        results = await self.review(ctx, candidates, requests)
        return [reward(generations, options.meta_filter) for generations in results]

    def max_cost(self, candidates: int) -> Cost:
        """``samples`` critiques per candidate."""
        options = self.options
        return Cost.sample(candidates * options.samples, options.max_tokens)
