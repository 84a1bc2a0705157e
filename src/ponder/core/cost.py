"""The most upstream work a strategy, scorer or role can cause, known before it runs.

``ponder serve`` refuses a request whose bound exceeds the operator's caps before anything is sent, so
a client cannot turn one request into thousands of upstream calls through a scorer, a role or ``n``
(issue 14). Every strategy states its bound (``Strategy.max_cost``) from its options, its scorer's
(``Scorer.max_cost``) and its roles' (``Role.max_cost``).

The bound is the worst case over backends and replies:

* ``calls`` counts every choice as its own HTTP request, as a server that does not honour ``n``
  (llama-server, Ollama) is sent them, plus any other HTTP request a scorer makes (a reward model's).
  Retries of one request are not counted.
* ``completion_tokens`` counts every choice at its request's ``max_tokens``.

Where a loop is bounded only by tokens (a trace grown in pieces until it stops), the bound assumes what
every OpenAI-compatible server does: a choice ends with ``finish_reason="length"`` only at its
request's ``max_tokens``. The run-time budget catches a server that does otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    """An upper bound on upstream requests and on the completion tokens they return."""

    calls: int = 0
    completion_tokens: int = 0

    @classmethod
    def sample(cls, choices: int, max_tokens: int) -> Cost:
        """``choices`` completions of at most ``max_tokens`` tokens each, one request apiece."""
        return cls(calls=choices, completion_tokens=choices * max_tokens)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.calls + other.calls, self.completion_tokens + other.completion_tokens)

    def __mul__(self, times: int) -> Cost:
        """The cost of doing this ``times`` times (rounds, chains, a client's ``n``)."""
        return Cost(self.calls * times, self.completion_tokens * times)

    __rmul__ = __mul__
