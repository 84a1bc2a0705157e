"""The scorer contract and registry.

A scorer judges candidates of one problem and returns one float per candidate (higher is better).
It declares what it scores (``granularity``: whole answers, steps, or both) and whether the candidates
must carry token logprobs. Any model calls it makes go through ``ctx.generate`` on its own ledger line
(``scorer:NAME``), so verification cost is counted next to generation cost.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Literal

from ponder.core.registry import Options, Registry
from ponder.core.types import Candidate, Problem

if TYPE_CHECKING:
    from ponder.strategies.base import Context

Granularity = Literal["answer", "step", "both"]


class Scorer(abc.ABC):
    name: str = ""
    granularity: Granularity = "answer"
    needs_logprobs: int | None = None  # top-k logprobs the candidates must carry, if any

    def __init__(self, options: Options):
        self.options = options

    @property
    def line(self) -> str:
        return f"scorer:{self.name}"

    @abc.abstractmethod
    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        """One score per candidate, in order."""


SCORERS: Registry[Scorer] = Registry("scorer")
