"""Iterative deepening: insert a self-correction trigger at geometrically growing token budgets.

After "Iterative Deepening Sampling for Large Language Models" (Chen, Koenig and Dilkina, 2025): one
trace is grown to a budget of ``initial`` tokens; at that point (or where the model stopped, if
sooner) a self-correction trigger is appended to the trace and the model continues, now to a budget
``growth`` times larger, and so on up to ``max_tokens`` in all. The trace stops early once the model,
having stopped on its own after a trigger, restates the answer it gave before the trigger (the check
confirmed it). The answer is the trace's last.

Defaults (ours, sized for small models, since the paper's budgets are for long reasoning traces): first
budget 256 tokens, doubling, 1024 tokens in all (``max_tokens``), and a "Wait"-style trigger, the kind
of self-reflection phrase the paper inserts. Continuing the trace uses ``GenRequest.prefix``.
"""

from __future__ import annotations

from pydantic import Field

from ponder.backends.base import Generation
from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import Text
from ponder.core.types import Problem, Result, Usage
from ponder.strategies.base import STRATEGIES, Strategy
from ponder.tasks.equivalence import answers_equivalent

TRIGGER = "\n\nWait, let me double-check my reasoning and the final answer.\n"


class IterativeDeepeningOptions(SamplingOptions):
    initial: int = Field(256, ge=1)
    growth: float = Field(2.0, gt=1.0, le=16.0)
    trigger: Text = TRIGGER


@STRATEGIES.register("iterative-deepening", IterativeDeepeningOptions)
class IterativeDeepening(Strategy[IterativeDeepeningOptions]):
    """One trace, with a self-correction trigger at budgets initial, initial·growth, … up to max_tokens."""

    name = "iterative-deepening"

    def max_cost(self) -> Cost:
        """One trace of at most ``max_tokens``, continued after every trigger. No option bounds the
        number of triggers: a segment that stops early (without confirming) is continued, and only the
        token limit ends the trace, so the bound is one request per token."""
        options = self.options
        return Cost(calls=options.max_tokens, completion_tokens=options.max_tokens)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        request = ctx.request(problem, options)
        text, tokens, usage = "", 0, Usage()
        budget = min(options.initial, options.max_tokens)
        segments: list[dict[str, object]] = []
        while True:
            before = ctx.extract(text) if text else None
            wanted = request.with_(prefix=text or None, max_tokens=budget - tokens)
            [[generation]] = await ctx.generate([wanted])
            text, tokens = text + generation.text, tokens + generation.completion_tokens
            usage = usage + generation.usage
            restated = ctx.extract(generation.text)
            stopped = generation.finish_reason != "length"
            confirmed = (
                stopped
                and before is not None
                and restated is not None
                and answers_equivalent(before, restated)
            )
            segments.append({"budget": budget, "tokens": tokens, "answer": restated, "confirmed": confirmed})
            if confirmed or tokens >= options.max_tokens or not generation.completion_tokens:
                break
            text += options.trigger
            budget = min(max(int(budget * options.growth), tokens + 1), options.max_tokens)
        candidate = ctx.candidate(Generation(text, generation.finish_reason, tokens, usage))
        trace = {"segments": segments, "triggers": len(segments) - 1}
        return ctx.result(self.spec, [candidate], candidate.answer, candidate.text, trace=trace)
