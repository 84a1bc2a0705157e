"""Thinking budget: cap a reasoning model's thinking at a token budget, then force the answer.

"Budget forcing" from "s1: Simple test-time scaling" (Muennighoff et al., 2025): when the thinking
reaches ``tokens`` it is cut there and the end-of-thinking delimiter plus "Final Answer:" are appended,
so the model answers from what it has thought so far; when the model ends its thinking early, the
delimiter can be suppressed and "Wait" appended (``wait`` times) to make it think on. The answer gets
``answer_tokens`` of its own. Works with any model whose thinking is closed by ``close`` (``</think>``)
behind any backend that continues a partial assistant message (``GenRequest.prefix``); a model with no
think section that answers within the budget is simply taken at its word.

``cuts > 1`` is the anytime variant: one trace is grown to tokens / 2^(cuts−1), tokens / 2^(cuts−2), …,
``tokens``, and at every cut the answer is forced from the thinking so far (the forced answers do not
enter the trace, which continues unforced). Each cut is one candidate, and ``trace["curve"]`` lists per
budget the thinking tokens, the answer and the completion tokens a run stopped there would have
spent: a whole accuracy-versus-budget curve from one trace.

Counting: every token generated while thinking counts against the budget, including, before a "Wait",
whatever the model wrote after closing its thinking (the API does not say which stop sequence ended a
generation, so the delimiter is not used as a stop sequence; those tokens are generated, billed and
dropped). Defaults: budget 2048 tokens (one of s1's budgets), no "Wait" (s1's plain budget forcing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from ponder.backends.base import Generation, GenRequest
from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import Text
from ponder.core.types import Candidate, Problem, Result, Usage
from ponder.strategies.base import STRATEGIES, Strategy

FORCE_ANSWER = "\n{close}\n\nFinal Answer:"
EXTEND = "Wait"


class ThinkingBudgetOptions(SamplingOptions):
    tokens: int = Field(2048, ge=1)
    wait: int = Field(0, ge=0, le=16)
    cuts: int = Field(1, ge=1, le=16)
    answer_tokens: int = Field(256, ge=1)
    close: Text = "</think>"


@dataclass
class Thought:
    """A trace grown so far: its text, the tokens spent thinking, and what it cost since the last cut."""

    text: str = ""
    tokens: int = 0
    closed: bool = False  # the model wrote the end-of-thinking delimiter
    finished: bool = False  # the model stopped on its own
    waits: int = 0
    usage: Usage = field(default_factory=Usage)


@STRATEGIES.register("thinking-budget", ThinkingBudgetOptions)
class ThinkingBudget(Strategy[ThinkingBudgetOptions]):
    """Think up to a token budget, then force the answer (s1); ``cuts`` answers at several budgets."""

    name = "thinking-budget"

    def budgets(self) -> list[int]:
        options = self.options
        cuts = [max(1, options.tokens // 2**power) for power in range(options.cuts - 1, -1, -1)]
        return sorted(set(cuts))

    def max_cost(self) -> Cost:
        """Per cut, one request that thinks up to the cut and one that forces the answer, plus one per
        "Wait"; thinking spends at most ``tokens`` in all, each answer ``answer_tokens``."""
        options = self.options
        cuts = len(self.budgets())
        thinking = Cost(calls=cuts + options.wait, completion_tokens=options.tokens)
        return thinking + Cost.sample(cuts, options.answer_tokens)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        request = ctx.request(problem, self.options)
        thought = Thought()
        candidates: list[Candidate] = []
        curve = []
        for budget in self.budgets():
            await self.think(request, thought, budget, ctx)
            candidate = await self.answer(request, thought, ctx)
            candidates.append(candidate)
            curve.append(
                {
                    "budget": budget,
                    "thinking_tokens": thought.tokens,
                    "answer": candidate.answer,
                    "completion_tokens": candidate.completion_tokens,
                }
            )
        final = candidates[-1]
        trace = {"curve": curve, "waits": thought.waits, "closed": thought.closed}
        return ctx.result(self.spec, candidates, final.answer, final.text, trace=trace)

    async def think(self, request: GenRequest, thought: Thought, budget: int, ctx: Context) -> None:
        """Grow the trace until the model stops, closes its thinking, or spends ``budget`` tokens."""
        options = self.options
        while not (thought.finished or thought.closed) and thought.tokens < budget:
            max_tokens = budget - thought.tokens
            [[generation]] = await ctx.generate(
                [request.with_(prefix=thought.text or None, max_tokens=max_tokens)]
            )
            thought.tokens += generation.completion_tokens
            thought.usage = thought.usage + generation.usage
            thinking, closed, _ = generation.text.partition(options.close)
            if closed and thought.waits < options.wait and thought.tokens < budget:
                thought.text += thinking + EXTEND  # s1: suppress the delimiter, think on
                thought.waits += 1
                continue
            thought.text += generation.text
            thought.closed = bool(closed)
            thought.finished = generation.finish_reason != "length" or not generation.completion_tokens

    async def answer(self, request: GenRequest, thought: Thought, ctx: Context) -> Candidate:
        """The answer at this point of the trace: the model's own if it finished, else a forced one."""
        options = self.options
        usage, thought.usage = thought.usage, Usage()
        if thought.finished:
            return ctx.candidate(Generation(thought.text, "stop", thought.tokens, usage))
        prefix = thought.text if thought.closed else thought.text + FORCE_ANSWER.format(close=options.close)
        [[generation]] = await ctx.generate([request.with_(prefix=prefix, max_tokens=options.answer_tokens)])
        tokens = thought.tokens + generation.completion_tokens
        text = prefix + generation.text
        return ctx.candidate(Generation(text, generation.finish_reason, tokens, usage + generation.usage))
