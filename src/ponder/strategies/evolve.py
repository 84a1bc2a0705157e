"""Evolve: each round samples a new population conditioned on the best candidates of the previous one.

EvoScale ("Satori-SWE: Evolutionary Test-Time Scaling for Sample-Efficient Software Engineering",
Zeng et al., 2025) treats generation as evolution: a round's samples are shown the previous round's
selected outputs and asked to improve on them, so later rounds mutate good candidates instead of
sampling from scratch; a reward model selects. Here ``scorer`` (default ``judge``, any spec; e.g.
``tests:tests=generated`` for code) scores every round; the best ``parents`` of a round, with their
scores, are shown to every sample of the next; the answer is the best-scoring candidate of the last
round. ``rounds=3`` and ``population=4`` are small versions of the paper's iterative setting (it
reports gains within a few iterations); ``parents=2`` keeps prompts short on small models' contexts.
Samples are billed on ``role:evolve@MODEL``, scoring on the scorer's line; ``Result.trace`` has every
round's answers, scores and chosen parents.
"""

from __future__ import annotations

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import BaseURL, ModelName, ScorerSpec
from ponder.core.types import Candidate, Problem, Result
from ponder.messages import ask, seeds, shown, with_system
from ponder.scorers import SCORERS
from ponder.scorers.selection import argmax
from ponder.strategies.base import STRATEGIES, Strategy

EVOLVE_PROMPT = (
    "Here are earlier solutions to this problem with a reviewer's score (0 to 1, higher is better). "
    "They may contain mistakes. Write a new solution that keeps what is right in them and fixes what "
    "is wrong.\n\n{parents}"
)


class EvolveOptions(SamplingOptions):
    rounds: int = Field(3, ge=1, le=20)
    population: int = Field(4, ge=1, le=256)  # samples per round
    parents: int = Field(2, ge=1, le=16)  # best candidates of a round shown to the next
    scorer: ScorerSpec = "judge"
    model: ModelName = None  # sample on this model (embedded name, or the server's with base_url)
    base_url: BaseURL = None


@STRATEGIES.register("evolve", EvolveOptions)
class Evolve(Strategy[EvolveOptions]):
    """Rounds of samples, each conditioned on the previous round's best-scoring candidates (EvoScale)."""

    name = "evolve"
    depth_option = "rounds"

    def __init__(self, options: EvolveOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer)

    def max_cost(self) -> Cost:
        """Per round, ``population`` samples and the scorer's cost on them."""
        options = self.options
        round_cost = Cost.sample(options.population, options.max_tokens) + self.scorer.max_cost(
            options.population
        )
        return round_cost * options.rounds

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        backend = await ctx.backends.get(ctx.backend, options.model, options.base_url)
        next_seed = seeds(ctx, options.seed)
        candidates: list[Candidate] = []
        parents: list[Candidate] = []
        population: list[Candidate] = []
        trace = []
        for _ in range(options.rounds):
            if ctx.ledger.exhausted:  # ctx.result reports the budget as what stopped it
                break
            messages = with_system(problem.as_messages(ctx.system_prompt), self.improvement_prompt(parents))
            request = ctx.request(problem, options, n=options.population, logprobs=self.scorer.needs_logprobs)
            request = request.with_(messages=messages, seed=next_seed())
            [generations] = await ask(ctx, "evolve", backend, [request])
            population = [ctx.candidate(g) for g in generations]
            scores = await self.scorer.score(problem, population, ctx)
            for candidate, score in zip(population, scores, strict=True):
                candidate.score = candidate.scores[self.scorer.name] = score
            candidates += population
            ctx.emit("scored", scores=scores, usage=ctx.ledger.total)
            ranked = sorted(range(len(population)), key=lambda i: -scores[i])
            parents = [population[i] for i in ranked[: options.parents]]
            trace.append(
                {
                    "answers": [c.answer for c in population],
                    "scores": scores,
                    "parents": ranked[: options.parents],
                }
            )
        choice = argmax(population, [c.score or 0.0 for c in population])
        text = population[choice.winner].text if choice.winner is not None else None
        return ctx.result(self.spec, candidates, choice.answer, text=text, trace={"rounds": trace})

    def improvement_prompt(self, parents: list[Candidate]) -> str | None:
        """The improvement instruction with the parents and their scores (None in the first round)."""
        if not parents:
            return None
        blocks = "\n\n".join(
            f"[{i}] score {parent.score:.2f}\n{shown(parent.text)}"
            for i, parent in enumerate(parents, start=1)
        )
        return EVOLVE_PROMPT.format(parents=blocks)
