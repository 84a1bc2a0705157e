"""Scorers judge candidates. Importing this package registers every built-in scorer."""

from ponder.scorers import confidence, judge  # noqa: F401 - registration side effect
from ponder.scorers.base import SCORERS, Scorer
from ponder.scorers.vote import Vote, majority_vote

__all__ = ["SCORERS", "Scorer", "Vote", "majority_vote"]
