"""Critic: for each candidate, a short list of its strengths and weaknesses.

Archon's critic ("Archon: An Architecture Search Framework for Inference-Time Techniques",
Saad-Falcon et al., 2024) writes strengths and weaknesses of every candidate; the rankers and fusers
after it see them next to the candidates. Here each candidate gets its own request (so no reply has to
be split apart), at temperature 0 by default (a review, not a sample).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ponder.core.cost import Cost
from ponder.core.types import Message
from ponder.messages import shown
from ponder.roles.base import ROLES, Pool, Role, RoleOptions

if TYPE_CHECKING:
    from ponder.context import Context

CRITIC_SYSTEM_PROMPT = "You are a careful reviewer of solutions to problems."
CRITIC_TEMPLATE = (
    "Problem:\n{question}\n\nProposed solution:\n{solution}\n\n"
    "Briefly list the strengths and weaknesses of this solution, and say whether its final answer is "
    "correct. Do not write a new solution."
)


class CriticOptions(RoleOptions):
    role: Literal["critic"] = "critic"
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    max_tokens: int = Field(256, ge=1)


@ROLES.register("critic", CriticOptions)
class Critic(Role[CriticOptions]):
    """Writes strengths and weaknesses of each candidate; later roles see them."""

    kind = "critic"

    async def apply(self, pool: Pool, ctx: Context) -> dict[str, Any]:
        requests = [
            self.request(
                ctx,
                (
                    Message("system", CRITIC_SYSTEM_PROMPT),
                    Message(
                        "user", CRITIC_TEMPLATE.format(question=pool.problem.question, solution=shown(c.text))
                    ),
                ),
            )
            for c in pool.candidates
        ]
        results = await self.call(ctx, requests)
        for candidate, [generation] in zip(pool.candidates, results, strict=True):
            pool.critiques[id(candidate)] = generation.text
        return {"critiques": [generation.text for [generation] in results]}

    def max_cost(self, pool: int) -> Cost:
        """One critique per candidate."""
        return Cost.sample(pool, self.options.max_tokens)
