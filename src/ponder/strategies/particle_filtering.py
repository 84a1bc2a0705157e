"""Particle filtering over reasoning steps.

"A Probabilistic Inference Approach to Inference-Time Scaling of LLMs using Particle-Based Monte Carlo
Methods" (Puri et al., 2025). Instead of keeping the top beams (which trusts an imperfect reward model
completely), keep a population of N particles and resample it in proportion to the reward:

1. every unfinished particle samples its next step (particles on the same node share one request);
2. each particle's weight is softmax(logit(r) / τ) over the population, r its step value in (0, 1);
3. when the effective sample size 1 / Σ w² falls below ``ess_threshold`` · N, draw N particles from the
   weights (``multinomial``, the default, or ``systematic``: one uniform draw, lower variance,
   Kitagawa 1996); finished particles are carried along, keep their weight, and are not extended;
4. repeat until every particle has finished or ``max_depth``.

Defaults: ``n=16``, τ = ``softmax_temperature=1.0`` and resampling at every step (``ess_threshold=1.0``)
as in the paper (0.5 is the classic adaptive rule, Doucet and Johansen, 2009); the answer is the
highest-valued finished particle (``select=best``). Resampling draws from ``ctx.rng``, so a seed fixes them.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Literal

from pydantic import Field

from ponder.context import Context
from ponder.core.cost import Cost
from ponder.core.types import Problem, Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.search_tree import Node, SearchTree, StepSearch, StepSearchOptions

#: values are clipped to [EPSILON, 1 - EPSILON] before the logit
EPSILON = 1e-6


def particle_weights(scores: list[float], temperature: float) -> list[float]:
    """softmax(logit(score) / temperature), normalised to sum to one."""
    logits = []
    for score in scores:
        clipped = min(max(score, EPSILON), 1.0 - EPSILON)
        logits.append(math.log(clipped / (1.0 - clipped)) / temperature)
    top = max(logits)
    exponentials = [math.exp(logit - top) for logit in logits]
    total = sum(exponentials)
    return [value / total for value in exponentials]


def effective_sample_size(weights: list[float]) -> float:
    """1 / Σ w² for normalised weights: N when uniform, 1 when one particle has all the weight."""
    return 1.0 / sum(w * w for w in weights)


def systematic_resample(weights: list[float], offset: float) -> list[int]:
    """Indices drawn at the points (offset + i) / N, i < N, offset in [0, 1): particle i is drawn
    ⌊N·w_i⌋ or ⌈N·w_i⌉ times."""
    count = len(weights)
    indices, cumulative, index = [], weights[0], 0
    for i in range(count):
        point = (offset + i) / count
        while point >= cumulative and index < count - 1:
            index += 1
            cumulative += weights[index]
        indices.append(index)
    return indices


def multinomial_resample(weights: list[float], rng: random.Random) -> list[int]:
    """N independent draws from the weights, sorted."""
    return sorted(rng.choices(range(len(weights)), weights=weights, k=len(weights)))


class ParticleFilteringOptions(StepSearchOptions):
    n: int = Field(16, ge=1, le=1024)
    softmax_temperature: float = Field(1.0, gt=0.0)
    resampling: Literal["multinomial", "systematic"] = "multinomial"
    ess_threshold: float = Field(1.0, ge=0.0, le=1.0)


@STRATEGIES.register("particle-filtering", ParticleFilteringOptions)
class ParticleFiltering(StepSearch[ParticleFilteringOptions]):
    """N particles over steps, resampled by softmax(logit(value)/τ) (Puri et al., 2025)."""

    name = "particle-filtering"

    def max_cost(self) -> Cost:
        """Per depth, a next step for each of the n particles, valued in one scorer call."""
        options = self.options
        return (
            Cost.sample(options.n, options.max_tokens) + self.scorer.max_cost(options.n)
        ) * options.max_depth

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        tree = SearchTree()
        particles: list[Node] = [tree.root] * options.n
        for depth in range(options.max_depth):
            moving = [p for p in particles if p.state in ("open", "kept")]
            if not moving or self.out_of_budget(ctx):
                break
            counts = Counter(p.id for p in moving)
            parents = [tree.nodes[node_id] for node_id in counts]
            final = depth == options.max_depth - 1
            grown = await self.expand(problem, ctx, tree, parents, list(counts.values()), final)
            await self.score(problem, ctx, tree, [step for steps in grown for step in steps])
            for parent in parents:
                parent.state = "kept"
            children = {parent.id: iter(steps) for parent, steps in zip(parents, grown, strict=True)}
            particles = [next(children[p.id]) if p.id in children else p for p in particles]
            survivors = self.resample(ctx, particles)
            kept = {p.id for p in survivors}
            for node in particles:
                if node.id not in kept:
                    node.state = "pruned"
            particles = survivors
        return self.conclude(
            ctx, tree, f"no particle ended within max_depth={options.max_depth} steps or the budget"
        )

    def resample(self, ctx: Context, particles: list[Node]) -> list[Node]:
        """The particles after one resampling step (unchanged while the ESS stays high)."""
        options = self.options
        weights = particle_weights(
            [p.score if p.state != "truncated" and p.score is not None else 0.0 for p in particles],
            options.softmax_temperature,
        )
        if effective_sample_size(weights) >= options.ess_threshold * len(particles):
            return particles
        if options.resampling == "systematic":
            indices = systematic_resample(weights, ctx.rng.random())
        else:
            indices = multinomial_resample(weights, ctx.rng)
        return [particles[i] for i in indices]
