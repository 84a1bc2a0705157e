"""Generator: sample candidates, from one or several models and personas, optionally shown references.

With ``references`` (the default) and a non-empty pool, every sample is shown the pool's candidates in
the system prompt with Mixture-of-Agents' "Aggregate-and-Synthesize" instruction ("Mixture-of-Agents
Enhances Large Language Model Capabilities", Wang et al., 2024, Table 1): that is an MoA proposer of
layer 2 and later. The new candidates replace the pool. ``n`` samples are drawn from each model in
``models`` (or from ``model``), spread evenly over ``personas`` ("You are PERSONA."), as in the diverse
proposers of MoA and Archon.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from ponder.backends.base import split_evenly
from ponder.core.cost import Cost
from ponder.core.registry import FreeText, ServedModel
from ponder.core.types import Candidate
from ponder.messages import Names, join, numbered_solutions, persona_line, with_system
from ponder.roles.base import ROLES, Pool, Role, RoleOptions

if TYPE_CHECKING:
    from ponder.context import Context

#: Mixture-of-Agents' Aggregate-and-Synthesize prompt (Wang et al., 2024, Table 1), then the responses
REFERENCES_PROMPT = (
    "You have been provided with a set of responses from various models to the latest user query. "
    "Your task is to synthesize these responses into a single, high-quality response. It is crucial to "
    "critically evaluate the information provided in these responses, recognizing that some of it may "
    "be biased or incorrect. Your response should not simply replicate the given answers but should "
    "offer a refined, accurate, and comprehensive reply to the instruction.\n\nResponses from models:\n\n"
)


class GeneratorOptions(RoleOptions):
    role: Literal["generator"] = "generator"
    n: int = Field(1, ge=1, le=256)  # samples from each model
    #: several proposer models (each samples n); default: ``model``
    models: Annotated[Names, ServedModel()] = []
    personas: Annotated[Names, FreeText()] = []  # "You are PERSONA.", taken in turn over the n samples
    references: bool = True  # show the pool's candidates (MoA layers after the first)


def references_text(pool: Pool) -> str | None:
    """The Aggregate-and-Synthesize instruction with the pool's candidates (and critiques), or None."""
    if not pool.candidates:
        return None
    critiques = [pool.critique(c) for c in pool.candidates]
    return REFERENCES_PROMPT + numbered_solutions(pool.candidates, critiques)


@ROLES.register("generator", GeneratorOptions)
class Generator(Role[GeneratorOptions]):
    """Samples candidates from one or several models and personas; later layers see the pool."""

    kind = "generator"

    async def apply(self, pool: Pool, ctx: Context) -> dict[str, Any]:
        options = self.options
        references = references_text(pool) if options.references else None
        messages = pool.problem.as_messages(ctx.system_prompt)
        personas: list[str | None] = list(options.personas) or [None]
        counts = split_evenly(options.n, len(personas))

        async def sample(model: str | None) -> list[tuple[str | None, Candidate]]:
            plan = [(persona, count) for persona, count in zip(personas, counts, strict=True) if count]
            requests = [
                self.request(ctx, with_system(messages, join(persona_line(persona), references)), n=count)
                for persona, count in plan
            ]
            results = await self.call(ctx, requests, model=model)
            return [
                (persona, ctx.candidate(generation))
                for (persona, _), generations in zip(plan, results, strict=True)
                for generation in generations
            ]

        models: list[str | None] = list(options.models) or [options.model]
        drawn = await asyncio.gather(*(sample(model) for model in models))
        made = [
            (model, persona, candidate)
            for model, batch in zip(models, drawn, strict=True)
            for persona, candidate in batch
        ]
        pool.candidates = [candidate for _, _, candidate in made]
        pool.generated += pool.candidates
        ctx.emit("generated", count=len(pool.generated), usage=ctx.ledger.total)
        return {
            "references": references is not None,
            "candidates": [
                {"model": model or ctx.backend.model, "persona": persona, "answer": candidate.answer}
                for model, persona, candidate in made
            ],
        }

    def max_cost(self, pool: int) -> Cost:
        """``n`` samples from each model."""
        return Cost.sample(self.max_pool(pool), self.options.max_tokens)

    def max_pool(self, pool: int) -> int:
        """Its samples replace the pool."""
        return self.options.n * max(1, len(self.options.models))
