"""Token confidence: the mean log-probability of a candidate's own tokens.

A cheap, call-free outcome score: sequences the model generated with high probability are more often
correct ("Deep Think with Confidence", Fu et al., 2025, use richer windowed variants of the same idea).
The score is reported as exp(mean log-probability), the per-token geometric-mean probability in
(0, 1]: the same ranking as the mean log-probability, and non-negative so it can weight votes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ponder.core.registry import Options
from ponder.core.types import Candidate, Problem
from ponder.scorers.base import SCORERS, Scorer

if TYPE_CHECKING:
    from ponder.strategies.base import Context


class ConfidenceOptions(Options):
    pass


def mean_logprob(candidate: Candidate) -> float:
    """Mean log-probability of the candidate's tokens; -inf when it carries none."""
    if not candidate.logprobs:
        return float("-inf")
    return sum(t.logprob for t in candidate.logprobs) / len(candidate.logprobs)


@SCORERS.register("confidence", ConfidenceOptions)
class ConfidenceScorer(Scorer):
    """exp(mean token log-probability) of the candidate (needs logprobs; no extra model calls)."""

    name = "confidence"
    needs_logprobs = 0

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        return [math.exp(mean_logprob(c)) for c in candidates]
