"""Selection rules that turn scored candidates into one answer, computable offline from stored scores.

* ``argmax``: the highest-scoring candidate (best-of-n; Cobbe et al., 2021). Candidates with an
  extractable answer rank above those without; ties go to the earlier candidate.
* ``weighted_vote``: majority vote over answer classes where each vote weighs its score (the
  "weighted sum" of Wang et al., 2022; Li et al., 2023 with verifier scores).
* ``top_fraction_vote``: keep the top ``fraction`` of candidates by score, then a plain majority vote
  among them: the confidence filtering of "Deep Think with Confidence" (Fu et al., 2025), which keeps
  the top η = 10% or 90% of traces. Candidates with an answer rank above those without.

Each returns a :class:`~ponder.scorers.vote.Vote` whose ``winner`` indexes the given list, so the
eval's sample bank can re-select from any subset of stored candidates.
"""

from __future__ import annotations

import math

from ponder.core.types import Candidate
from ponder.scorers.vote import Vote, majority_vote


def argmax(candidates: list[Candidate], scores: list[float]) -> Vote:
    if not candidates:
        return Vote(None, None, {})
    best = max(range(len(candidates)), key=lambda i: (candidates[i].answer is not None, scores[i], -i))
    return Vote(candidates[best].answer, best, {})


def weighted_vote(candidates: list[Candidate], scores: list[float]) -> Vote:
    return majority_vote(candidates, scores)


def top_fraction_vote(candidates: list[Candidate], scores: list[float], fraction: float) -> Vote:
    """Majority vote among the ceil(fraction · n) highest-scoring candidates (at least one)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not candidates:
        return Vote(None, None, {})
    keep = max(1, math.ceil(fraction * len(candidates) - 1e-9))
    ranked = sorted(range(len(candidates)), key=lambda i: (candidates[i].answer is None, -scores[i], i))
    kept = sorted(ranked[:keep])  # original order, so vote ties still go to the earliest class
    vote = majority_vote([candidates[i] for i in kept])
    winner = kept[vote.winner] if vote.winner is not None else None
    return Vote(vote.answer, winner, vote.table)
