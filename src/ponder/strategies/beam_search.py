"""Beam search over reasoning steps, guided by a step value.

"Scaling LLM Test-Time Compute Optimally can be More Effective than Scaling Model Parameters" (Snell
et al., 2024), as implemented in Hugging Face's search-and-learn:

1. sample N first steps;
2. value every new step (``scorer``; a PRM's last-step score, by default the ``judge``);
3. keep the top N / M unfinished beams and sample M next steps from each (N in total);
4. repeat until N solutions have finished or ``max_depth`` steps (search-and-learn: 40 iterations;
   the last one writes each solution to its end).

Lookahead search (the paper's ``k``): with ``lookahead=k`` each new step is valued by rolling it out
``k`` more steps greedily (temperature 0) and scoring where the rollout ends; the rollout is then
discarded. Defaults: ``n=16, width=4, lookahead=0`` (the paper's M = 4 and plain beam search);
``select=weighted``: the final answer is a vote over the finished beams weighted by their values (the
paper's "best-of-N weighted" final selection).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ponder.backends.base import split_evenly
from ponder.context import Context
from ponder.core.cost import Cost
from ponder.core.types import Problem, Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.search_tree import Node, SearchTree, StepSearch, StepSearchOptions


class BeamSearchOptions(StepSearchOptions):
    n: int = Field(16, ge=1, le=1024)
    width: int = Field(4, ge=1)
    lookahead: int = Field(0, ge=0)
    select: Literal["best", "weighted"] = "weighted"


@STRATEGIES.register("beam-search", BeamSearchOptions)
class BeamSearch(StepSearch[BeamSearchOptions]):
    """N beams over steps; keep the N/M best, sample M next steps from each (Snell et al., 2024)."""

    name = "beam-search"

    def max_cost(self) -> Cost:
        """Per depth, n next steps valued in one scorer call; with lookahead, also ``lookahead`` greedy
        steps of each and two scorer calls (the steps that ended, then where the rollouts end)."""
        options = self.options
        steps = Cost.sample(options.n, options.max_tokens)
        if options.lookahead == 0:
            return (steps + self.scorer.max_cost(options.n)) * options.max_depth
        rollouts = steps * options.lookahead + self.scorer.max_cost(options.n) * 2
        return (steps + rollouts) * options.max_depth

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        tree = SearchTree()
        beams, samples = [tree.root], [options.n]
        finished = 0
        for depth in range(options.max_depth):
            if self.out_of_budget(ctx):
                break
            final = depth == options.max_depth - 1
            steps = [
                c for group in await self.expand(problem, ctx, tree, beams, samples, final) for c in group
            ]
            await self.value(problem, ctx, tree, steps)
            finished += sum(step.state == "finished" for step in steps)
            ranked = sorted((s for s in steps if s.state == "open"), key=lambda s: (-(s.score or 0.0), s.id))
            beams = ranked[: max(1, options.n // options.width)]
            for step in ranked[len(beams) :]:
                step.state = "pruned"
            if finished >= options.n or not beams:
                break
            for beam in beams:
                beam.state = "kept"
            samples = split_evenly(options.n, len(beams))
        return self.conclude(
            ctx, tree, f"none ended within max_depth={options.max_depth} steps or the budget"
        )

    async def value(self, problem: Problem, ctx: Context, tree: SearchTree, steps: list[Node]) -> None:
        """Score the new steps; with lookahead, score an open step where its greedy rollout ends."""
        options = self.options
        if options.lookahead == 0:
            await self.score(problem, ctx, tree, steps)
            return
        await self.score(problem, ctx, tree, [s for s in steps if s.state != "open"])
        starts = [step for step in steps if step.state == "open"]
        ends = list(starts)
        for _ in range(options.lookahead):
            rolling = [i for i, node in enumerate(ends) if node.state == "open"]
            if not rolling:
                break
            parents = [ends[i] for i in rolling]
            grown = await self.expand(
                problem, ctx, tree, parents, [1] * len(parents), rollout=True, temperature=0.0
            )
            for i, [child] in zip(rolling, grown, strict=True):
                ends[i] = child
        await self.score(problem, ctx, tree, ends)
        for start, end in zip(starts, ends, strict=True):
            start.score = end.score
        for node in tree.nodes:
            if node.rollout:  # a rollout only values its start; it is not a beam
                node.state = "pruned"
