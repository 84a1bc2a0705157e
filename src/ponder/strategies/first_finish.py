"""First finish: launch n samples at once and answer with the first to finish.

After "First Finish Search: Efficient Test-Time Scaling in Large Language Models" (Agarwal et al.,
2025): among parallel reasoning traces the shorter ones are more often correct, so the first trace to
finish is kept and the others are stopped, saving the tokens they would have spent. With ``k > 1``
(ours, the "shortest k, then vote" variant) the first k to finish are kept and majority-voted.

All n requests start together when the backend allows that many in flight (``max_concurrency``); then
finishing first means being shortest. The rest are cancelled once k have finished: they are billed what
the server had produced by then, on the ledger line ``cancelled`` (they are streamed so that this is
known; see ``Context.as_completed``); the trace counts them. Samples that finished in the same instant
as the k-th are returned and billed, but not voted. Default n = 8 (the issue's spec; the paper reports
gains from a handful of traces).
"""

from __future__ import annotations

import contextlib

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.types import Candidate, Problem, Result
from ponder.scorers import majority_vote
from ponder.strategies.base import STRATEGIES, Strategy


class FirstFinishOptions(SamplingOptions):
    n: int = Field(8, ge=1, le=1024)
    k: int = Field(1, ge=1, le=1024)


@STRATEGIES.register("first-finish", FirstFinishOptions)
class FirstFinish(Strategy[FirstFinishOptions]):
    """n samples in parallel; the first to finish wins (or a vote among the first k)."""

    name = "first-finish"
    budget_option = "n"

    def max_cost(self) -> Cost:
        """All n samples: those cancelled after the first k may have been computed in full."""
        options = self.options
        return Cost.sample(options.n, options.max_tokens)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        request = ctx.request(problem, options, n=options.n)
        concurrency = min(options.n, ctx.backend.capabilities.max_concurrency)
        finished: list[Candidate] = []
        async with contextlib.aclosing(ctx.as_completed(request, concurrency)) as stream:
            async for candidate in stream:
                finished.append(candidate)
                if len(finished) >= options.k:
                    break
        vote = majority_vote(finished)
        # with k = 1 the first trace is the answer, even one with no extractable answer
        winner = 0 if options.k == 1 and finished else vote.winner
        chosen = finished[winner] if winner is not None else None
        trace = {
            "voted": len(finished),
            "finish_order_tokens": [c.completion_tokens for c in finished],
            "cancelled_requests": ctx.cancelled,
            "finished_unread": len(ctx.unread),
        }
        return ctx.result(
            self.spec,
            finished + ctx.unread,
            chosen.answer if chosen else None,
            chosen.text if chosen else None,
            vote.table,
            trace=trace,
        )
