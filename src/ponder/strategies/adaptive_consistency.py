"""Adaptive consistency: self-consistency that stops sampling once the vote is settled.

Two stopping rules, checked after every finished sample:

* ``rule=beta`` ("Let's Sample Step by Step: Adaptive-Consistency for Efficient Reasoning and Coding
  with LLMs", Aggarwal et al., 2023): with v1 and v2 votes for the two leading answers and a uniform
  prior, the leader's share p1 / (p1 + p2) has posterior Beta(v1 + 1, v2 + 1); stop when
  P(p1 > p2) ≥ ``threshold``. The paper's defaults: threshold 0.95, at most 40 samples. With unanimous
  votes this stops after 4 samples (1 − 2⁻⁵ = 0.969).
* ``rule=window`` ("Escape Sky-high Cost: Early-stopping Self-Consistency for Multi-step Reasoning",
  Li et al., 2024): samples fall into consecutive windows of ``window`` (w = 5 in the paper's main
  runs); stop at the first window whose answers all agree.

The answer is the majority vote over the samples read when the rule fired. ``batch`` requests are kept
in flight (ours; a small batch wastes little after the stop); when the rule fires, those still running
are cancelled and billed what the server had produced by then, on the ledger line ``cancelled`` (see
``Context.as_completed``), and those that had finished unread are returned with the candidates and
billed, but not voted.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from typing import Literal

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.types import Candidate, Problem, Result
from ponder.scorers import Vote, majority_vote
from ponder.strategies.base import STRATEGIES, Strategy
from ponder.tasks.equivalence import group_equivalent


class AdaptiveConsistencyOptions(SamplingOptions):
    max_n: int = Field(40, ge=1, le=1024)
    batch: int = Field(4, ge=1, le=256)
    threshold: float = Field(0.95, gt=0.0, lt=1.0)
    rule: Literal["beta", "window"] = "beta"
    window: int = Field(5, ge=1, le=256)


def beta_probability(leader: int, runner_up: int) -> float:
    """P(p1 > p2) when p1 / (p1 + p2) ~ Beta(leader + 1, runner_up + 1): exactly, for vote counts.

    For integers a, b the Beta CDF at 1/2 is a binomial tail: P(X > 1/2) = P(Bin(a + b − 1, 1/2) < a).
    """
    trials = leader + runner_up + 1
    return sum(math.comb(trials, j) for j in range(leader + 1)) / 2**trials


def answer_classes(candidates: list[Candidate]) -> list[int | None]:
    """Each candidate's equivalence class (numbered by first appearance), None when it has no answer."""
    labels: list[int | None] = [None] * len(candidates)
    for number, members in enumerate(group_equivalent([c.answer for c in candidates])):
        for index in members:
            labels[index] = number
    return labels


def leading_counts(labels: list[int | None]) -> tuple[int, int]:
    """Votes for the leading answer and for the runner-up (0 when there is none)."""
    counts = sorted(Counter(label for label in labels if label is not None).values(), reverse=True)
    return (counts + [0, 0])[0], (counts + [0, 0])[1]


def window_is_unanimous(labels: list[int | None], window: int) -> bool:
    """Whether the samples just completed a window whose answers all agree."""
    if len(labels) % window:
        return False
    last = labels[-window:]
    return last[0] is not None and all(label == last[0] for label in last)


@STRATEGIES.register("adaptive-consistency", AdaptiveConsistencyOptions)
class AdaptiveConsistency(Strategy[AdaptiveConsistencyOptions]):
    """Majority vote that stops sampling when a Beta posterior or a unanimous window says it is settled."""

    name = "adaptive-consistency"
    budget_option = "max_n"

    def settled(self, candidates: list[Candidate]) -> tuple[bool, float | None]:
        """Whether to stop, and the Beta posterior probability (None under the window rule)."""
        return self.fires(answer_classes(candidates))

    def fires(self, labels: list[int | None]) -> tuple[bool, float | None]:
        """``settled`` on the samples' answer classes (so a replay groups the answers once)."""
        options = self.options
        if options.rule == "window":
            return window_is_unanimous(labels, options.window), None
        leader, runner_up = leading_counts(labels)
        probability = beta_probability(leader, runner_up) if leader else 0.0
        return probability >= options.threshold, probability

    def replay(self, candidates: list[Candidate]) -> tuple[Vote, int]:
        """Read stored samples in order until the rule fires: the eval's ``--rule adaptive-consistency``
        on a sample bank (``batch=1``: a live run may also bill up to ``batch - 1`` finished unread)."""
        labels = answer_classes(candidates)
        read = next(
            (count for count in range(1, len(labels) + 1) if self.fires(labels[:count])[0]), len(labels)
        )
        return majority_vote(candidates[:read]), read

    def select(self, candidates: list[Candidate]) -> Vote:
        return self.replay(candidates)[0]

    def max_cost(self) -> Cost:
        """``max_n`` samples, when the vote never settles."""
        options = self.options
        return Cost.sample(options.max_n, options.max_tokens)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        request = ctx.request(problem, options, n=options.max_n)
        concurrency = min(options.batch, ctx.backend.capabilities.max_concurrency)
        candidates: list[Candidate] = []
        posterior: list[float | None] = []
        stopped = False
        async with contextlib.aclosing(ctx.as_completed(request, concurrency)) as stream:
            async for candidate in stream:
                candidates.append(candidate)
                stopped, probability = self.settled(candidates)
                posterior.append(probability)
                if stopped:
                    break
        vote = majority_vote(candidates)
        text = candidates[vote.winner].text if vote.winner is not None else None
        trace = {
            "rule": options.rule,
            "stopped_early": stopped and len(candidates) < options.max_n,
            "samples_voted": len(candidates),
            "posterior": posterior,
            "cancelled_requests": ctx.cancelled,
            "finished_unread": len(ctx.unread),
        }
        return ctx.result(self.spec, candidates + ctx.unread, vote.answer, text, vote.table, trace=trace)
