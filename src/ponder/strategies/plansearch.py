"""PlanSearch: observations about the problem, plans built from subsets of them, one solution per plan.

"Planning In Natural Language Improves LLM Search For Code Generation" (Wang et al., 2024): searching
over natural-language ideas rather than over code makes samples diverse. The model lists
``observations`` first-order observations; every subset of at most ``subset`` of them becomes a
natural-language plan; each plan is implemented as a solution. The paper also derives second-order
observations and adds a negated variant of each plan; this keeps the first stage only (3 observations,
subsets of 1 and 2: 6 plans), which fits small models. The paper reports pass@k; to return one answer
this picks by majority vote (``scorer`` unset), or by the highest score of ``scorer`` (e.g.
``[tests:tests=generated]`` for code without given tests, ``tests`` with them). Calls are billed on
``role:observe``, ``role:plan`` and ``role:implement``; ``Result.trace`` has observations and plans.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

from pydantic import Field

from ponder.backends.base import GenRequest
from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import BaseURL, ModelName, OptionalScorerSpec
from ponder.core.types import Message, Problem, Result
from ponder.messages import ask, seeds, with_user_note
from ponder.scorers import SCORERS, majority_vote
from ponder.scorers.selection import argmax
from ponder.strategies.base import STRATEGIES, Strategy
from ponder.tasks.replies import numbered_items

OBSERVE_PROMPT = (
    "{question}\n\nDo not solve the problem yet. List {count} useful, non-obvious observations about it "
    "(properties, tricks, edge cases) that could help solve it, as a numbered list, one per line."
)
PLAN_PROMPT = (
    "{question}\n\nUseful observations:\n{observations}\n\nUsing these observations, describe in a few "
    "sentences of natural language a plan to solve the problem. Do not write code or the final answer."
)
IMPLEMENT_PROMPT = "Follow this plan:\n{plan}"


class PlanSearchOptions(SamplingOptions):
    observations: int = Field(3, ge=1, le=10)
    subset: int = Field(2, ge=1, le=4)  # largest number of observations combined in one plan
    scorer: OptionalScorerSpec = None  # pick by this scorer's highest score (default: majority vote)
    model: ModelName = None
    base_url: BaseURL = None


@STRATEGIES.register("plansearch", PlanSearchOptions)
class PlanSearch(Strategy[PlanSearchOptions]):
    """Observations → plans from their subsets → one solution per plan; vote or score to pick."""

    name = "plansearch"

    def __init__(self, options: PlanSearchOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer) if options.scorer else None

    def max_cost(self) -> Cost:
        """One request for observations, then a plan and a solution per subset of at most ``subset`` of
        them, and the scorer's cost on the solutions."""
        options = self.options
        plans = max(1, sum(comb(options.observations, size) for size in range(1, options.subset + 1)))
        scoring = self.scorer.max_cost(plans) if self.scorer else Cost()
        return Cost.sample(1 + 2 * plans, options.max_tokens) + scoring

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        backend = await ctx.backends.get(ctx.backend, options.model, options.base_url)
        next_seed = seeds(ctx, options.seed)

        def asking(prompt: str) -> GenRequest:
            return ctx.request(problem, options).with_(messages=(Message("user", prompt),), seed=next_seed())

        question = problem.question
        [[reply]] = await ask(
            ctx,
            "observe",
            backend,
            [asking(OBSERVE_PROMPT.format(question=question, count=options.observations))],
        )
        observations = numbered_items(reply.text)[: options.observations]
        subsets = [
            subset for size in range(1, options.subset + 1) for subset in combinations(observations, size)
        ] or [()]
        plans = [
            plan.text
            for [plan] in await ask(
                ctx,
                "plan",
                backend,
                [
                    asking(
                        PLAN_PROMPT.format(
                            question=question, observations="\n".join(f"- {o}" for o in subset) or "- (none)"
                        )
                    )
                    for subset in subsets
                ],
            )
        ]
        base = problem.as_messages(ctx.system_prompt)
        implement = [
            ctx.request(problem, options).with_(
                messages=with_user_note(base, IMPLEMENT_PROMPT.format(plan=plan)), seed=next_seed()
            )
            for plan in plans
        ]
        candidates = [ctx.candidate(g) for [g] in await ask(ctx, "implement", backend, implement)]
        ctx.emit("generated", count=len(candidates), usage=ctx.ledger.total)
        if self.scorer is not None:
            scores = await self.scorer.score(problem, candidates, ctx)
            for candidate, score in zip(candidates, scores, strict=True):
                candidate.score = candidate.scores[self.scorer.name] = score
            choice = argmax(candidates, scores)
        else:
            choice = majority_vote(candidates)
        text = candidates[choice.winner].text if choice.winner is not None else None
        trace = {
            "observations": observations,
            "plans": [{"observations": list(s), "plan": p} for s, p in zip(subsets, plans, strict=True)],
        }
        return ctx.result(self.spec, candidates, choice.answer, text=text, votes=choice.table, trace=trace)
