"""Monte Carlo tree search over reasoning steps.

UCT ("Bandit based Monte-Carlo Planning", Kocsis and Szepesvári, 2006) over partial solutions, the
form used for LLM reasoning by RAP ("Reasoning with Language Model is Planning with World Model", Hao et
al., 2023) and rStar (Qi et al., 2024). Each of ``iterations`` iterations:

1. **select**: from the root, follow the child with the highest UCT value
   Q/N + c·√(ln N_parent / N) until a node with no children;
2. **expand**: sample ``width`` next steps of it in one request;
3. **evaluate** each new step: its step value from the scorer (``value=scorer``), or a rollout to the
   end of the solution (one sample, scored as a whole; the rollout is kept as a finished solution);
4. **backpropagate** each value to the root (N += 1, Q += value).

A finished leaf that is selected again is re-evaluated at its value without a model call. The answer is
the highest-valued finished solution (``select=best``) or a vote weighted by values. Defaults:
``iterations=32``, ``width=4``, c = ``exploration=1.414`` (√2, the UCB1 constant of Auer et al., 2002,
for values in [0, 1]).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from ponder.context import Context
from ponder.core.cost import Cost
from ponder.core.types import Problem, Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.search_tree import Node, SearchTree, StepSearch, StepSearchOptions


def uct(total: float, visits: int, parent_visits: int, exploration: float) -> float:
    """Q/N + c·√(ln N_parent / N); unvisited children come first."""
    if visits == 0:
        return math.inf
    return total / visits + exploration * math.sqrt(math.log(parent_visits) / visits)


class MCTSOptions(StepSearchOptions):
    iterations: int = Field(32, ge=1, le=4096)
    width: int = Field(4, ge=1)
    exploration: float = Field(1.414, ge=0.0)
    value: Literal["scorer", "rollout"] = "scorer"


@STRATEGIES.register("mcts", MCTSOptions)
class MCTS(StepSearch[MCTSOptions]):
    """UCT over steps: select, expand ``width`` steps, value by scorer or rollout, backpropagate."""

    name = "mcts"
    budget_option = "iterations"
    depth_option = "iterations"  # iterations run one after another

    def max_cost(self) -> Cost:
        """Per iteration, ``width`` steps valued in one scorer call; with rollouts, also one rollout per
        step and two scorer calls (the steps that ended, then the rollouts)."""
        options = self.options
        steps = Cost.sample(options.width, options.max_tokens)
        if options.value == "scorer":
            return (steps + self.scorer.max_cost(options.width)) * options.iterations
        return (steps * 2 + self.scorer.max_cost(options.width) * 2) * options.iterations

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        tree = SearchTree()
        visits: dict[int, int] = {0: 0}
        totals: dict[int, float] = {0: 0.0}
        for _ in range(options.iterations):
            if self.out_of_budget(ctx):
                break
            path = self.descend(tree, visits, totals)
            leaf = path[-1]
            if leaf.state != "open" and leaf is not tree.root:  # finished or truncated: no model call
                values = [leaf.score or 0.0]
            else:
                leaf.state = "kept"
                final = leaf.depth + 1 >= options.max_depth
                [steps] = await self.expand(problem, ctx, tree, [leaf], [options.width], final)
                values = await self.evaluate(problem, ctx, tree, steps)
                for step, value in zip(steps, values, strict=True):
                    visits[step.id], totals[step.id] = 1, value
            for node in path:
                visits[node.id] += len(values)
                totals[node.id] += sum(values)
            if not any(node.state == "open" for node in tree.nodes):
                break
        return self.conclude(ctx, tree, f"none ended within {options.iterations} iterations")

    def descend(self, tree: SearchTree, visits: dict[int, int], totals: dict[int, float]) -> list[Node]:
        """The path from the root along the highest-UCT children (ties: the oldest) to a childless node."""
        exploration = self.options.exploration
        path = [tree.root]
        while children := tree.children(path[-1]):
            parent_visits = visits[path[-1].id]
            path.append(
                max(children, key=lambda c: uct(totals[c.id], visits[c.id], parent_visits, exploration))
            )
        return path

    async def evaluate(
        self, problem: Problem, ctx: Context, tree: SearchTree, steps: list[Node]
    ) -> list[float]:
        """The value of each new step: its score, or the score of a rollout from it to the end."""
        options = self.options
        if options.value == "scorer":
            await self.score(problem, ctx, tree, steps)
            return [step.score or 0.0 for step in steps]
        await self.score(problem, ctx, tree, [s for s in steps if s.state != "open"])
        open_steps = [s for s in steps if s.state == "open"]
        if not open_steps:
            return [step.score or 0.0 for step in steps]
        grown = await self.expand(
            problem, ctx, tree, open_steps, [1] * len(open_steps), final=True, rollout=True
        )
        rollouts = [rollout for [rollout] in grown]
        await self.score(problem, ctx, tree, rollouts)
        for step, rollout in zip(open_steps, rollouts, strict=True):
            step.score = rollout.score
        return [step.score or 0.0 for step in steps]
