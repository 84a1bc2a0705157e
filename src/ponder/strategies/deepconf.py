"""DeepConf: vote over the traces the model was confident in, and stop the unconfident ones early.

After "Deep Think with Confidence" (Fu, Wang, Tian and Zhao, 2025). The confidence math is
``ponder.scorers.token_confidence`` (token confidence C_i = −mean top-k logprob, or the chosen token's
probability where the server returned no alternatives, so that a sure trace still outranks an unsure
one; group confidence = mean C_i over a sliding window; a trace's lowest group confidence), reached
through the ``confidence`` scorer.

* ``mode=offline``: sample ``n`` traces, score each (``metric``, default ``lowest_window``), keep the
  top ``keep`` fraction and take a confidence-weighted majority vote among them.
* ``mode=online``: ``warmup`` traces set a threshold s, the lowest confidence among the top ``keep``
  fraction of them; every later trace is grown ``chunk`` tokens at a time (continuing its own partial
  message) and stopped as soon as its lowest group confidence falls below s; traces that finish join a
  confidence-weighted vote (with the warm-up traces at or above s), and sampling stops once the leading
  answer holds ``consensus`` of the vote weight, cancelling traces still in flight.

Defaults: k = 5 alternatives, windows of 2048 tokens (shrunk to the trace length, so on a short trace
the group confidence is its running mean), consensus τ = 0.95, keep η = 90% ("DeepConf-high"; 10% is
"DeepConf-low") are the paper's. It warms up on 16 traces out of a budget of 512; with ``n=16`` here a
warm-up of 4 (ours) leaves room to stop early. ``chunk=128`` tokens (ours): the paper checks every
token while streaming; without streaming, the check falls at chunk ends, so up to a chunk is generated
(and billed) past the point where a trace would have stopped. A backend that cannot continue a partial
message gets whole traces, checked once they finish.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal

from pydantic import Field

from ponder.backends.base import Generation, GenRequest
from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.types import Candidate, Problem, Result, TokenLogprob, Usage
from ponder.scorers import Vote, weighted_vote
from ponder.scorers.confidence import ConfidenceOptions, ConfidenceScorer, Metric
from ponder.scorers.token_confidence import lowest_group_confidence
from ponder.strategies.base import STRATEGIES, Strategy

STOPPED = "low-confidence"


class DeepConfOptions(SamplingOptions):
    n: int = Field(16, ge=1, le=1024)
    mode: Literal["online", "offline"] = "online"
    warmup: int = Field(4, ge=1, le=1024)
    keep: float = Field(0.9, gt=0.0, le=1.0)
    consensus: float = Field(0.95, gt=0.0, le=1.0)
    metric: Metric = "lowest_window"
    top_k: int = Field(5, ge=1, le=20)
    window: int = Field(2048, ge=1)
    chunk: int = Field(128, ge=1)


def kept_count(total: int, fraction: float) -> int:
    return max(1, math.ceil(fraction * total - 1e-9))


def filtered_vote(candidates: list[Candidate], scores: list[float], keep: float) -> Vote:
    """Confidence-weighted majority vote among the top ``keep`` fraction of candidates by score."""
    if not candidates:
        return Vote(None, None, {})
    ranked = sorted(range(len(candidates)), key=lambda i: (candidates[i].answer is None, -scores[i], i))
    kept = sorted(ranked[: kept_count(len(candidates), keep)])
    vote = weighted_vote([candidates[i] for i in kept], [scores[i] for i in kept])
    return Vote(vote.answer, kept[vote.winner] if vote.winner is not None else None, vote.table)


@STRATEGIES.register("deepconf", DeepConfOptions)
class DeepConf(Strategy[DeepConfOptions]):
    """Confidence-filtered, confidence-weighted voting; online, unconfident traces stop early."""

    name = "deepconf"
    budget_option = "n"

    def __init__(self, options: DeepConfOptions):
        super().__init__(options)
        self.scorer = ConfidenceScorer(
            ConfidenceOptions(metric=options.metric, top_k=options.top_k, window=options.window)
        )

    def max_cost(self) -> Cost:
        """n traces of at most ``max_tokens``; online, each trace after the warm-up is grown in up to
        ⌈max_tokens / chunk⌉ requests. Confidence is read from logprobs (no scorer calls)."""
        options = self.options
        traces = Cost.sample(options.n, options.max_tokens)
        if options.mode == "offline":
            return traces
        later = options.n - min(options.warmup, options.n)
        pieces = -(-options.max_tokens // options.chunk) - 1  # requests beyond one per trace
        return traces + Cost(calls=later * pieces)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        request = ctx.request(problem, options, n=options.n, logprobs=options.top_k)
        if options.mode == "offline":
            candidates = await ctx.sample(request)
            scores = await self.score(problem, candidates, ctx)
            vote = filtered_vote(candidates, scores, options.keep)
            trace = {
                "mode": "offline",
                "kept": kept_count(len(candidates), options.keep) if candidates else 0,
            }
            return self.answer(ctx, candidates, vote, trace)
        return await self.online(problem, request, ctx)

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        scores = await self.scorer.score(problem, candidates, ctx)
        for candidate, score in zip(candidates, scores, strict=True):
            candidate.score = candidate.scores[self.scorer.name] = score
        return scores

    async def online(self, problem: Problem, request: GenRequest, ctx: Context) -> Result:
        options = self.options
        warmup = await ctx.sample(request.with_(n=min(options.warmup, options.n)))
        await self.score(problem, warmup, ctx)
        lowest = [self.lowest(c.logprobs or []) for c in warmup]
        ranked = sorted(lowest, reverse=True)
        threshold = ranked[kept_count(len(ranked), options.keep) - 1] if ranked else 0.0
        voters = [c for c, confidence in zip(warmup, lowest, strict=True) if confidence >= threshold]
        later: list[Candidate] = []

        async def grow(single: GenRequest) -> Candidate:
            return await self.grow(single, threshold, ctx)

        vote = self.vote(voters)
        remaining = options.n - len(warmup)
        if remaining > 0 and not self.agreed(vote):
            stream = ctx.as_completed(request.with_(n=remaining, seed=self.later_seed(request)), draw=grow)
            async with contextlib.aclosing(stream) as traces:
                async for trace in traces:
                    later.append(trace)
                    if trace.finish_reason == STOPPED:
                        continue
                    await self.score(problem, [trace], ctx)
                    voters.append(trace)
                    vote = self.vote(voters)
                    if self.agreed(vote):
                        break
        candidates = warmup + later + ctx.unread
        chosen = voters[vote.winner] if vote.winner is not None else None
        winner = next((i for i, c in enumerate(candidates) if c is chosen), None)
        trace = {
            "mode": "online",
            "threshold": threshold,
            "warmup": len(warmup),
            "stopped_traces": sum(c.finish_reason == STOPPED for c in later),
            "voters": len(voters),
            "cancelled_requests": ctx.cancelled,
            "finished_unread": len(ctx.unread),
        }
        return self.answer(ctx, candidates, Vote(vote.answer, winner, vote.table), trace)

    def lowest(self, logprobs: list[TokenLogprob]) -> float:
        """The trace's lowest sliding-window group confidence (what the online threshold compares)."""
        options = self.options
        return lowest_group_confidence(logprobs, options.top_k, options.window)

    def later_seed(self, request: GenRequest) -> int | None:
        options = self.options
        return None if request.seed is None else request.seed + options.warmup

    def vote(self, voters: list[Candidate]) -> Vote:
        return weighted_vote(voters, [c.scores[self.scorer.name] for c in voters])

    def agreed(self, vote: Vote) -> bool:
        options = self.options
        total = sum(vote.table.values())
        return total > 0 and next(iter(vote.table.values())) / total >= options.consensus

    async def grow(self, request: GenRequest, threshold: float, ctx: Context) -> Candidate:
        """One trace, ``chunk`` tokens at a time, stopped once its lowest group confidence is below s."""
        options = self.options
        chunk = options.chunk if ctx.backend.capabilities.continuation else options.max_tokens
        text, tokens, usage = "", 0, Usage()
        logprobs: list[TokenLogprob] = []
        while True:
            size = min(chunk, options.max_tokens - tokens)
            [[generation]] = await ctx.generate([request.with_(prefix=text or None, max_tokens=size)])
            text, tokens = text + generation.text, tokens + generation.completion_tokens
            usage, logprobs = usage + generation.usage, logprobs + (generation.logprobs or [])
            finish = generation.finish_reason
            if self.lowest(logprobs) < threshold:
                finish = STOPPED
                break
            if finish != "length" or tokens >= options.max_tokens or not generation.completion_tokens:
                break
        return ctx.candidate(Generation(text, finish, tokens, usage, logprobs))

    def answer(
        self, ctx: Context, candidates: list[Candidate], vote: Vote, trace: dict[str, object]
    ) -> Result:
        text = candidates[vote.winner].text if vote.winner is not None else None
        return ctx.result(self.spec, candidates, vote.answer, text, vote.table, trace=trace)
