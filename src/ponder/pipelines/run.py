"""Running a pipeline: build each layer's role, apply them in order to one pool, record every step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ponder.core.cost import Cost
from ponder.core.types import Problem
from ponder.pipelines.schema import Pipeline, layer_name
from ponder.roles import ROLES, Pool, Role

if TYPE_CHECKING:
    from ponder.context import Context


def build_roles(pipeline: Pipeline, max_tokens: int | None = None) -> list[Role]:
    """One role per layer (named after its layer); ``max_tokens`` caps every layer's token limit."""
    roles = []
    for index, layer in enumerate(pipeline.layers):
        changes: dict[str, Any] = {"name": layer_name(layer, index)}
        if max_tokens is not None:
            changes["max_tokens"] = min(layer.max_tokens, max_tokens)
        roles.append(ROLES.get(layer.role).factory(layer.model_copy(update=changes)))
    return roles


async def run_layers(roles: list[Role], problem: Problem, ctx: Context) -> tuple[Pool, list[dict[str, Any]]]:
    """Apply the roles in order; stop early (and say so) when the budget is met."""
    pool = Pool(problem)
    trace = []
    for role in roles:
        if ctx.ledger.exhausted:  # ctx.result reports the budget as what stopped it
            trace.append({"layer": role.name, "role": role.kind, "skipped": "budget met"})
            continue
        step = await role.apply(pool, ctx)
        trace.append({"layer": role.name, "role": role.kind, **step, "pool": len(pool.candidates)})
    return pool, trace


def layers_max_cost(roles: list[Role]) -> Cost:
    """The most upstream work the layers can cause, each layer bounded on the most candidates the
    layers before it can leave in the pool (which starts empty)."""
    total, pool = Cost(), 0
    for role in roles:
        total += role.max_cost(pool)
        pool = role.max_pool(pool)
    return total
