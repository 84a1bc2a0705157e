"""Majority voting over equivalence classes of answers (Wang et al., 2022).

Answers are grouped by mathematical equivalence (``391``, ``391.0`` and ``\\frac{782}{2}`` are one
vote), not by string equality. Each class weighs the number of its members, or the sum of their
scores when weights are given (weighted voting). Ties go to the class that appeared first, so the
outcome is deterministic for a given candidate order.
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.core.types import Candidate
from ponder.tasks.equivalence import group_equivalent


@dataclass(frozen=True)
class Vote:
    answer: str | None
    winner: int | None  # index of the winning class's first candidate
    table: dict[str, float]  # representative answer -> weight, winner first


def majority_vote(candidates: list[Candidate], weights: list[float] | None = None) -> Vote:
    classes = group_equivalent([c.answer for c in candidates])
    if not classes:
        return Vote(None, None, {})
    if weights is None:
        weights = [1.0] * len(candidates)
    weighted = [(sum(weights[i] for i in members), members) for members in classes]
    ranked = sorted(weighted, key=lambda item: (-item[0], item[1][0]))
    table = {str(candidates[members[0]].answer): weight for weight, members in ranked}
    winner = ranked[0][1][0]
    return Vote(candidates[winner].answer, winner, table)
