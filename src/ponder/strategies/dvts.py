"""Diverse verifier tree search (DVTS): N / M independent subtrees, each grown greedily by the verifier.

From Hugging Face's "Scaling test-time compute with open models" (Beeching, Tunstall and Rush, 2024,
the search-and-learn recipes), a variant of the beam search of Snell et al. (2024) that keeps beams
from collapsing onto one prefix:

1. sample N first steps and split them into N / M subtrees of M steps each;
2. in every subtree keep only its highest-valued step; sample M next steps from it;
3. a subtree ends when its best step finishes the solution (or at ``max_depth``).

Every subtree's steps are sent in one generate call per depth. Defaults: ``n=16, width=4`` (the blog's
M = 4), ``select=weighted`` (weighted best-of-N over the finished leaves, as in the blog).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ponder.context import Context
from ponder.core.cost import Cost
from ponder.core.types import Problem, Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.search_tree import SearchTree, StepSearch, StepSearchOptions


class DVTSOptions(StepSearchOptions):
    n: int = Field(16, ge=1, le=1024)
    width: int = Field(4, ge=1)
    select: Literal["best", "weighted"] = "weighted"


@STRATEGIES.register("dvts", DVTSOptions)
class DVTS(StepSearch[DVTSOptions]):
    """N/M independent subtrees, each expanded M ways and kept greedily by the scorer."""

    name = "dvts"

    def max_cost(self) -> Cost:
        """n first steps; then per depth, the subtrees' steps valued in one scorer call and ``width``
        next steps of each subtree's best (⌈n / width⌉ subtrees)."""
        options = self.options
        width = min(options.width, options.n)
        level = -(-options.n // width) * width
        per_depth = self.scorer.max_cost(level) + Cost.sample(level, options.max_tokens)
        return Cost.sample(options.n, options.max_tokens) + per_depth * options.max_depth

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        tree = SearchTree()
        width = min(options.width, options.n)
        [first] = await self.expand(problem, ctx, tree, [tree.root], [options.n], options.max_depth == 1)
        groups = [first[i : i + width] for i in range(0, len(first), width)]
        for depth in range(1, options.max_depth + 1):
            await self.score(problem, ctx, tree, [step for group in groups for step in group])
            heads = []
            for group in groups:
                best = min(group, key=lambda s: (-(s.score or 0.0), s.id))
                heads += [best] if best.state == "open" else []
                for step in group:
                    if step.state == "open" and step is not best:
                        step.state = "pruned"
            if not heads or self.out_of_budget(ctx):
                break
            for head in heads:
                head.state = "kept"
            final = depth == options.max_depth - 1
            groups = await self.expand(problem, ctx, tree, heads, [width] * len(heads), final)
        return self.conclude(
            ctx, tree, f"no subtree ended within max_depth={options.max_depth} steps or the budget"
        )
