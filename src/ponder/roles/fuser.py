"""Fuser: synthesise one answer (or ``n``) from every candidate in the pool, and its critiques.

The aggregator of Mixture-of-Agents ("Mixture-of-Agents Enhances Large Language Model Capabilities",
Wang et al., 2024), the last layer of its architecture, with the paper's Aggregate-and-Synthesize
prompt; Archon's fuser ("Archon", Saad-Falcon et al., 2024) does the same and sees critiques when a
critic ran before it. The fused candidates replace the pool. Temperature 0.7 as in MoA's aggregator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ponder.core.cost import Cost
from ponder.messages import with_system
from ponder.roles.base import ROLES, Pool, Role, RoleOptions
from ponder.roles.generator import references_text

if TYPE_CHECKING:
    from ponder.context import Context


class FuserOptions(RoleOptions):
    role: Literal["fuser"] = "fuser"
    n: int = Field(1, ge=1, le=64)  # fused candidates to make


@ROLES.register("fuser", FuserOptions)
class Fuser(Role[FuserOptions]):
    """Synthesises one answer from all candidates (and critiques) in the pool."""

    kind = "fuser"

    async def apply(self, pool: Pool, ctx: Context) -> dict[str, Any]:
        if not pool.candidates:
            return {"skipped": "empty pool"}
        shown = len(pool.candidates)
        messages = with_system(pool.problem.as_messages(ctx.system_prompt), references_text(pool))
        [generations] = await self.call(ctx, [self.request(ctx, messages, n=self.options.n)])
        pool.candidates = [ctx.candidate(g) for g in generations]
        pool.generated += pool.candidates
        return {"fused": shown, "answers": [c.answer for c in pool.candidates]}

    def max_cost(self, pool: int) -> Cost:
        """``n`` fused samples, none from an empty pool."""
        return Cost.sample(self.max_pool(pool), self.options.max_tokens)

    def max_pool(self, pool: int) -> int:
        """The fused candidates replace the pool (an empty pool stays empty)."""
        return self.options.n if pool else 0
