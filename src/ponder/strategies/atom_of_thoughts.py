"""Atom of Thoughts: decompose the question into a dependency graph of sub-questions, solve the
independent ones, contract the rest into a simpler self-contained question, and repeat.

"Atom of Thoughts for Markov LLM Test-Time Scaling" (Teng et al., 2025): each state is a question
that carries no history; one transition decomposes it into a DAG of sub-questions, answers the
independent (atomic) ones, and contracts their answers and the dependent sub-questions into the next
question. ``depth=2`` transitions (the paper bounds depth by the first decomposition's, a few levels in
practice); it stops earlier when a decomposition has one sub-question or none can be read. The last
question is then solved by ``then`` (any strategy spec, default ``greedy``), which makes Atom of
Thoughts a preprocessor for any other strategy: ``atom-of-thoughts:then=[self-consistency:n=8]``.
Decomposing and contracting run at temperature 0 (they rewrite, not sample); sub-questions are solved
with the strategy's own sampling options. Billed on ``role:decompose``, ``role:solve-atoms`` and
``role:contract``; ``Result.trace`` holds every transition and then the inner strategy's trace.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import BaseURL, ModelName, StrategySpec
from ponder.core.types import Message, Problem, Result
from ponder.messages import ask, seeds
from ponder.strategies.base import STRATEGIES, Strategy
from ponder.tasks.replies import numbered_items, with_dependencies

DECOMPOSE_PROMPT = (
    "{question}\n\nDo not solve it. Break this question into the smallest sub-questions needed to answer "
    "it, as a numbered list, one per line. After each, write which earlier sub-questions it needs, as "
    "(depends on: none) or (depends on: 1, 2). The last sub-question must be the question itself."
)
CONTRACT_PROMPT = (
    "Question:\n{question}\n\nThese facts are already known:\n{facts}\n\nRewrite the question as one "
    "self-contained question that states these facts, so it can be answered without solving them "
    "again. Reply with the new question only."
)


class AtomOfThoughtsOptions(SamplingOptions):
    depth: int = Field(2, ge=0, le=5)  # decompose-and-contract transitions at most
    max_atoms: int = Field(6, ge=2, le=20)  # sub-questions read from a decomposition
    then: StrategySpec = "greedy"  # the strategy that answers the final, contracted question
    model: ModelName = None
    base_url: BaseURL = None


@STRATEGIES.register("atom-of-thoughts", AtomOfThoughtsOptions)
class AtomOfThoughts(Strategy[AtomOfThoughtsOptions]):
    """Decompose into a DAG, solve the independent atoms, contract, repeat; then solve with ``then``."""

    name = "atom-of-thoughts"
    depth_option = "depth"

    def __init__(self, options: AtomOfThoughtsOptions):
        super().__init__(options)
        self.inner = STRATEGIES.build(options.then)

    def max_cost(self) -> Cost:
        """Per transition a decomposition, at most ``max_atoms - 1`` independent atoms solved and a
        contraction; then the inner strategy's cost."""
        options = self.options
        transition = Cost.sample(options.max_atoms + 1, options.max_tokens)
        return transition * options.depth + self.inner.max_cost()

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        backend = await ctx.backends.get(ctx.backend, options.model, options.base_url)
        next_seed = seeds(ctx, options.seed)
        question = problem.question
        transitions: list[dict[str, Any]] = []
        for _ in range(options.depth):
            if ctx.ledger.exhausted:  # ctx.result reports the budget as what stopped it
                break
            rewrite = ctx.request(problem, options).with_(temperature=0.0, seed=next_seed())
            prompt = DECOMPOSE_PROMPT.format(question=question)
            [[reply]] = await ask(
                ctx, "decompose", backend, [rewrite.with_(messages=(Message("user", prompt),))]
            )
            atoms = [with_dependencies(item) for item in numbered_items(reply.text)[: options.max_atoms]]
            independent = [text for text, needs in atoms[:-1] if not needs]
            if len(atoms) < 2 or not independent:
                reason = "atomic" if len(atoms) < 2 else "no independent sub-question"
                transitions.append({"question": question, "atoms": len(atoms), "stopped": reason})
                break
            solving = [
                ctx.request(problem, options).with_(
                    messages=tuple(Problem(question=atom).as_messages(ctx.system_prompt)),
                    seed=next_seed(),
                )
                for atom in independent
            ]
            answers = [ctx.extract(g.text) for [g] in await ask(ctx, "solve-atoms", backend, solving)]
            facts = "\n".join(
                f"- {atom} Answer: {answer}"
                for atom, answer in zip(independent, answers, strict=True)
                if answer is not None
            )
            transition: dict[str, Any] = {
                "question": question,
                "atoms": [{"question": text, "depends_on": needs} for text, needs in atoms],
                "solved": dict(zip(independent, answers, strict=True)),
            }
            if facts:
                prompt = CONTRACT_PROMPT.format(question=question, facts=facts)
                [[contracted]] = await ask(
                    ctx, "contract", backend, [rewrite.with_(messages=(Message("user", prompt),))]
                )
                question = contracted.text.strip() or question
            transition["contracted"] = question
            transitions.append(transition)
        final = dataclasses.replace(
            problem, question=question, messages=None if question != problem.question else problem.messages
        )
        result = await self.inner.run(final, ctx)
        trace = {
            "transitions": transitions,
            "question": question,
            "then": self.inner.spec,
            "inner": result.trace,
        }
        return dataclasses.replace(result, strategy=self.spec, trace=trace)
