"""ponder: test-time compute scaling for large language models.

``ponder.solve("What is 17*23?", strategy="self-consistency:n=8")`` answers with the embedded model;
pass ``base_url=`` and ``model=`` to use any OpenAI-compatible server instead.
"""

from ponder.api import DEFAULT_STRATEGY, asolve, build_strategy, default_strategy, solve
from ponder.core import Budget, Candidate, Ledger, Message, Problem, Result, Usage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_STRATEGY",
    "default_strategy",
    "Budget",
    "Candidate",
    "Ledger",
    "Message",
    "Problem",
    "Result",
    "Usage",
    "asolve",
    "build_strategy",
    "solve",
]
