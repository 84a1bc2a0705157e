"""Ranker: order the pool best first and keep the top ``keep``, by an LLM (listwise or pairwise) or by
any registered scorer.

``method=listwise`` shows every candidate with its identifier and asks for ``[2] > [1] > [3]``, the
ranker prompt of Archon ("Archon: An Architecture Search Framework for Inference-Time Techniques",
Saad-Falcon et al., 2024, after RankGPT); candidates the reply leaves out keep their order after the
named ones. ``method=pairwise`` asks, for every pair, which of two is better (A or B) and orders by
wins, the pairwise comparison of LLM-Blender's PairRanker (Jiang et al., 2023); it costs n(n-1)/2
calls. ``method=scorer`` orders by ``scorer`` (any spec, e.g. ``judge`` or ``tests``), billed on the
scorer's own line. Ties keep the pool's order. ``keep`` defaults to all (Archon keeps the top 5 of
its generations; the shipped ``archon-basic`` preset sets that).
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from ponder.backends.base import GenRequest
from ponder.core.cost import Cost
from ponder.core.registry import OptionalScorerSpec
from ponder.core.types import Message
from ponder.messages import numbered_solutions, shown
from ponder.roles.base import ROLES, Pool, Role, RoleOptions
from ponder.scorers import SCORERS
from ponder.tasks.replies import preference, ranking

if TYPE_CHECKING:
    from ponder.context import Context

RANKER_SYSTEM_PROMPT = "You are RankGPT, an intelligent assistant that ranks solutions by their correctness."
LISTWISE_TEMPLATE = (
    "Problem:\n{question}\n\nI will provide you with {count} solutions, each indicated by a numerical "
    "identifier [].\n\n{solutions}\n\nRank the {count} solutions above by their correctness, best first. "
    "List all of them by identifier, in descending order of quality, in the format [] > [], e.g. "
    "[2] > [1]. Only respond with the ranking."
)
PAIRWISE_TEMPLATE = (
    "Problem:\n{question}\n\nSolution A:\n{first}\n\nSolution B:\n{second}\n\n"
    "Which solution is more likely to be correct? Reply with one letter: A or B."
)


class RankerOptions(RoleOptions):
    role: Literal["ranker"] = "ranker"
    method: Literal["listwise", "pairwise", "scorer"] = "listwise"
    scorer: OptionalScorerSpec = None  # with method=scorer: any scorer spec
    keep: int | None = Field(None, ge=1)  # candidates kept, best first (default: all)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    max_tokens: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _scorer_with_method(self) -> RankerOptions:
        if (self.method == "scorer") != (self.scorer is not None):
            raise ValueError("set scorer exactly when method is 'scorer'")
        return self


@ROLES.register("ranker", RankerOptions)
class Ranker(Role[RankerOptions]):
    """Orders the pool best first (LLM listwise or pairwise, or any scorer) and keeps the top ``keep``."""

    kind = "ranker"

    def __init__(self, options: RankerOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer) if options.scorer else None

    async def apply(self, pool: Pool, ctx: Context) -> dict[str, Any]:
        candidates = pool.candidates
        if len(candidates) > 1:
            scores = await self.scores(pool, ctx)
        else:
            scores = [0.0] * len(candidates)
        for candidate, score in zip(candidates, scores, strict=True):
            candidate.scores[f"rank:{self.name}"] = score
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])
        pool.candidates = [candidates[i] for i in order][: self.options.keep]
        return {"method": self.options.method, "order": order, "scores": scores, "kept": len(pool.candidates)}

    async def scores(self, pool: Pool, ctx: Context) -> list[float]:
        """Higher is better; one per candidate."""
        candidates, question = pool.candidates, pool.problem.question
        if self.scorer is not None:
            return await self.scorer.score(pool.problem, candidates, ctx)
        if self.options.method == "listwise":
            critiques = [pool.critique(c) for c in candidates]
            prompt = LISTWISE_TEMPLATE.format(
                question=question, count=len(candidates), solutions=numbered_solutions(candidates, critiques)
            )
            [[reply]] = await self.call(ctx, [self.review(ctx, prompt)])
            order = ranking(reply.text, len(candidates))
            return [float(len(candidates) - order.index(i)) for i in range(len(candidates))]
        pairs = list(combinations(range(len(candidates)), 2))
        requests = [
            self.review(
                ctx,
                PAIRWISE_TEMPLATE.format(
                    question=question, first=shown(candidates[i].text), second=shown(candidates[j].text)
                ),
            )
            for i, j in pairs
        ]
        wins = [0.0] * len(candidates)
        for (i, j), [reply] in zip(pairs, await self.call(ctx, requests), strict=True):
            choice = preference(reply.text)
            if choice is not None:
                wins[i if choice == "A" else j] += 1.0
        return wins

    def max_cost(self, pool: int) -> Cost:
        """Nothing for one candidate or none; else one listwise ranking, a comparison per pair, or the
        scorer's cost."""
        if pool <= 1:
            return Cost()
        if self.scorer is not None:
            return self.scorer.max_cost(pool)
        comparisons = 1 if self.options.method == "listwise" else pool * (pool - 1) // 2
        return Cost.sample(comparisons, self.options.max_tokens)

    def max_pool(self, pool: int) -> int:
        return min(pool, self.options.keep or pool)

    def review(self, ctx: Context, prompt: str) -> GenRequest:
        return self.request(ctx, (Message("system", RANKER_SYSTEM_PROMPT), Message("user", prompt)))
