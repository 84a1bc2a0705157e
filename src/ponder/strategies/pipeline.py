"""Pipeline: run a declarative pipeline of roles (a preset or a YAML/JSON file) and vote over what is left.

``pipeline:moa`` runs the shipped Mixture-of-Agents preset ("Mixture-of-Agents Enhances Large Language
Model Capabilities", Wang et al., 2024), ``pipeline:archon-basic`` Archon's generate → critique →
rank → fuse ("Archon: An Architecture Search Framework for Inference-Time Techniques", Saad-Falcon et
al., 2024), ``pipeline:generate-verify`` sampling then a verifier filter; ``pipeline:PATH.yaml`` runs
your own (``ponder.pipelines``). The answer is the majority vote over the final pool (a pipeline that
ends in a fuser has one candidate). ``max_tokens`` caps every layer's token limit. Every role's calls
are billed on its own ledger line, and ``Result.trace`` holds what each layer did.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ponder.context import Context
from ponder.core.cost import Cost
from ponder.core.registry import OperatorOnly, Options
from ponder.core.types import Problem, Result
from ponder.pipelines import build_roles, layers_max_cost, load_pipeline, presets, run_layers
from ponder.scorers import majority_vote
from ponder.strategies.base import STRATEGIES, Strategy


class PipelineOptions(Options):
    positional_field = "pipeline"

    #: a preset name (moa, archon-basic, generate-verify) or a .yaml/.yml/.json path (the operator's alone)
    pipeline: Annotated[str, OperatorOnly("file", client_values=tuple(presets()))]
    max_tokens: int | None = Field(None, ge=1)  # caps every layer's max_tokens
    allow_truncated: bool = False  # candidates cut off by max_tokens keep their answers and vote


@STRATEGIES.register("pipeline", PipelineOptions)
class PipelineStrategy(Strategy[PipelineOptions]):
    """Layers of roles (generate, critique, rank, fuse, verify, test) from a preset or a file."""

    name = "pipeline"

    def __init__(self, options: PipelineOptions):
        super().__init__(options)
        self.pipeline = load_pipeline(options.pipeline)
        self.roles = build_roles(self.pipeline, options.max_tokens)

    @property
    def depth(self) -> int:
        """Its layers run one after another."""
        return len(self.pipeline.layers)

    def max_cost(self) -> Cost:
        """Its layers' costs, each on the largest pool the layers before it can leave."""
        return layers_max_cost(self.roles)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        pool, layers = await run_layers(self.roles, problem, ctx)
        vote = majority_vote(pool.candidates)
        text = pool.candidates[vote.winner].text if vote.winner is not None else None
        trace = {"pipeline": self.pipeline.name, "layers": layers}
        return ctx.result(self.spec, pool.generated, vote.answer, text=text, votes=vote.table, trace=trace)
