"""Scorers judge candidates. Importing this package registers every built-in scorer."""

from ponder.scorers import (  # noqa: F401 - registration side effect
    confidence,
    execution,
    genverifier,
    grm,
    judge,
    prm_http,
    python_function,
    reward_models,
)
from ponder.scorers.base import SCORERS, Scorer
from ponder.scorers.selection import argmax, top_fraction_vote, weighted_vote
from ponder.scorers.vote import Vote, majority_vote

__all__ = ["SCORERS", "Scorer", "Vote", "argmax", "majority_vote", "top_fraction_vote", "weighted_vote"]
