"""Best-first search over reasoning steps: always expand the highest-valued partial solution.

After "Tree Search for Language Model Agents" (Koh, McAleer, Fried and Salakhutdinov, 2024): a frontier
ordered by a value function; pop its best node, sample ``width`` (the paper's branching factor b) next
steps from it, value them, push them back; stop when the popped node is a finished solution (the
goal test of best-first search), after ``n`` expansions (the paper's search budget c), or when the
frontier is empty. Depth is capped by ``max_depth`` (the paper's d; the last step is written to the
end of the solution).

Defaults: ``n=16`` expansions, ``width=5`` (Koh et al. use b = 5, d = 5, c = 20 for web tasks; math
solutions need more steps, so ``max_depth`` keeps the step-search default of 40); the answer is the
highest-valued finished solution (``select=best``).
"""

from __future__ import annotations

import heapq

from pydantic import Field

from ponder.context import Context
from ponder.core.cost import Cost
from ponder.core.types import Problem, Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.search_tree import SearchTree, StepSearch, StepSearchOptions


class BestFirstOptions(StepSearchOptions):
    n: int = Field(16, ge=1, le=1024)
    width: int = Field(5, ge=1)


@STRATEGIES.register("best-first", BestFirstOptions)
class BestFirst(StepSearch[BestFirstOptions]):
    """Expand the highest-valued partial solution next (Koh et al., 2024)."""

    name = "best-first"
    depth_option = "n"  # expansions run one after another

    def max_cost(self) -> Cost:
        """n expansions of ``width`` steps, each expansion valued in one scorer call."""
        options = self.options
        expansion = Cost.sample(options.width, options.max_tokens) + self.scorer.max_cost(options.width)
        return expansion * options.n

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        tree = SearchTree()
        frontier = [(0.0, 0)]  # (-value, node id): the best value first, then the oldest node
        for _ in range(options.n):
            if not frontier or self.out_of_budget(ctx):
                break
            node = tree.nodes[heapq.heappop(frontier)[1]]
            if node.state == "finished":
                break
            node.state = "kept"
            final = node.depth + 1 >= options.max_depth
            [steps] = await self.expand(problem, ctx, tree, [node], [options.width], final)
            await self.score(problem, ctx, tree, steps)
            for step in steps:
                if step.state in ("open", "finished"):
                    heapq.heappush(frontier, (-(step.score or 0.0), step.id))
        return self.conclude(ctx, tree, f"none ended within {options.n} expansions")
