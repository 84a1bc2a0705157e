"""Strategies spend compute. Importing this package registers every built-in strategy."""

from ponder.strategies import best_of_n, greedy, self_consistency  # noqa: F401 - registration
from ponder.strategies.base import STRATEGIES, Context, SamplingOptions, Strategy

__all__ = ["STRATEGIES", "Context", "SamplingOptions", "Strategy"]
