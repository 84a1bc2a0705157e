"""What every strategy shares: the strategy contract and its registry (the run context is ``ponder.context``).

A strategy is a short async program over ``ctx``: it samples through ``ctx.sample``/``ctx.generate``
(which meter every call in the ledger and respect the budget), scores through scorers, and returns
``ctx.result(...)``. It never touches HTTP, JSON or answer regexes.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Generic, TypeVar

from ponder.context import Context
from ponder.core.cost import Cost
from ponder.core.errors import BudgetExhaustedError, UsageError
from ponder.core.registry import Options, Registry
from ponder.core.types import Candidate, Problem, Result
from ponder.scorers.vote import Vote, majority_vote

OptionsT = TypeVar("OptionsT", bound=Options)


class Strategy(abc.ABC, Generic[OptionsT]):
    """A way to spend compute on one problem. Subclasses set ``name`` and implement ``run``.

    A subclass names its options model (``class BestOfN(Strategy[BestOfNOptions])``), so ``self.options``
    has that type wherever the strategy reads it.

    ``budget_option`` names the option a compute budget scales (``n`` for sampling strategies; None when
    a budget does not apply). Strategies whose answer is a selection from independent samples implement
    ``select``: the eval then draws once at the largest budget and derives every smaller budget by
    re-selecting from subsets of the stored samples (``sample_bank``).
    """

    name: str = ""
    budget_option: ClassVar[str | None] = None
    sample_bank: ClassVar[bool] = False
    #: the option that sets how many rounds run one after another (search depth, refinement rounds,
    #: chain steps), which bounds latency the way ``n`` bounds width; ``ponder serve --max-depth`` caps it
    depth_option: ClassVar[str | None] = None

    def __init__(self, options: OptionsT):
        self.options = options

    @property
    def spec(self) -> str:
        """The canonical spec: name plus the options that differ from their defaults, sorted."""
        changed = self.options.model_dump(exclude_defaults=True)
        return self.name + (":" + ",".join(f"{k}={changed[k]}" for k in sorted(changed)) if changed else "")

    @property
    def depth(self) -> int:
        """Sequential rounds this strategy may run: its ``depth_option``'s value, else 1."""
        return int(getattr(self.options, self.depth_option)) if self.depth_option else 1

    @abc.abstractmethod
    async def run(self, problem: Problem, ctx: Context) -> Result:
        """Solve ``problem`` within ``ctx``'s budget and return every candidate with its usage."""

    async def solve(self, problem: Problem, ctx: Context) -> Result:
        """Run within the budget, as a hard cap: what callers use instead of ``run``.

        When the budget cannot pay for a call the strategy needs, no call starts (``Context.generate``)
        and the run ends with the majority vote of the candidates it made so far, saying so in its note.
        """
        ctx.allow_truncated = bool(getattr(self.options, "allow_truncated", False))
        try:
            return await self.run(problem, ctx)
        except BudgetExhaustedError as stop:
            ctx.stopped(str(stop))
            candidates = ctx.made
            vote = majority_vote(candidates)
            text = candidates[vote.winner].text if vote.winner is not None else None
            note = "stopped by the budget; the answer is the vote of the candidates made so far"
            return ctx.result(self.spec, candidates, vote.answer, text=text, votes=vote.table, note=note)

    def max_cost(self) -> Cost:
        """The most upstream work one run can cause (``ponder.core.cost``), scorers and roles included,
        so that a server can refuse it before it starts. Every strategy states it; one that does not is
        refused rather than run unbounded."""
        raise UsageError(f"strategy {self.name!r} does not state the most upstream work it can cause")

    @property
    def uses_scores(self) -> bool:
        """Whether ``select`` reads scorer scores (so a re-selection is billed the scoring too)."""
        return getattr(self, "scorer", None) is not None

    def select(self, candidates: list[Candidate]) -> Vote:
        """The answer this strategy would pick from these (already scored) candidates."""
        raise NotImplementedError(f"{self.name} does not select from stored samples")

    def replay(self, candidates: list[Candidate]) -> tuple[Vote, int]:
        """What this strategy would pick had its samples arrived in this order, and how many it read.

        A strategy that stops sampling early (adaptive consistency) reads a prefix; the eval bills a
        re-selection only the samples read. The default reads them all.
        """
        return self.select(candidates), len(candidates)


STRATEGIES: Registry[Strategy[Any]] = Registry("strategy")
