"""Self-refine and critique-refine: feedback, then revision, for a few rounds; a vote across chains.

* ``self-refine`` ("Self-Refine: Iterative Refinement with Self-Feedback", Madaan et al., 2023): the
  model reviews its own solution, then rewrites it in the light of that feedback, until the feedback
  says the solution is correct or ``rounds`` revisions are made (the paper stops on the feedback's own
  stop signal and refines at most 4 times; default 3 here).
* ``critique-refine`` ("Enhancing LLM Reasoning via Critique Models with Test-Time and Training-Time
  Supervision", Xi et al., 2024): a critic, possibly another model (``critic_model``, with
  ``critic_base_url`` for an OpenAI-compatible server, taken from the run context's pool as the
  judge scorer does), points out the first wrong step; the actor revises; default 2 rounds (the issue's
  spec). The paper pairs critique-refine with a vote across parallel samples.

Both run ``n`` chains in parallel (default 1 for self-refine, 4 for critique-refine) and answer by
majority vote over the chains' final solutions; every draft is returned as a candidate (each was
billed on ``generate``). Feedback ends with "Verdict: correct" or "Verdict: incorrect", read by the
generative verifier's parser; an unreadable verdict counts as not correct. Feedback is billed on the
ledger line ``feedback`` (``critic`` for the critic).
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

from pydantic import Field

from ponder.backends import Backend
from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import BaseURL, ModelName
from ponder.core.types import Message, Problem, Result
from ponder.scorers import majority_vote
from ponder.scorers.base import review_request
from ponder.scorers.genverifier import parse_verdict
from ponder.strategies.base import STRATEGIES, Strategy

FEEDBACK_SYSTEM_PROMPT = "You review your own solutions carefully and honestly."
FEEDBACK_TEMPLATE = (
    "Problem:\n{question}\n\nYour solution:\n{solution}\n\n"
    "Review the solution step by step: recompute every step and the final answer. Say briefly what is "
    "wrong, if anything. End with one line, exactly 'Verdict: correct' or 'Verdict: incorrect'."
)
CRITIC_SYSTEM_PROMPT = "You are a critic. You find the first incorrect step of a solution, if there is one."
CRITIC_TEMPLATE = (
    "Problem:\n{question}\n\nProposed solution:\n{solution}\n\n"
    "Check each step in order. If a step is wrong, quote the first wrong step and explain the error. "
    "End with one line, exactly 'Verdict: correct' or 'Verdict: incorrect'."
)
REVISE_TEMPLATE = (
    "Feedback on your solution:\n{feedback}\n\n"
    "Write an improved solution that fixes the problems the feedback points out."
)


class SelfRefineOptions(SamplingOptions):
    rounds: int = Field(3, ge=0, le=16)
    n: int = Field(1, ge=1, le=64)
    feedback_tokens: int = Field(512, ge=1)
    max_solution_chars: int = Field(6000, ge=100)


class CritiqueRefineOptions(SelfRefineOptions):
    rounds: int = Field(2, ge=0, le=16)
    n: int = Field(4, ge=1, le=64)
    critic_model: ModelName = None
    critic_base_url: BaseURL = None


SelfRefineOptionsT = TypeVar("SelfRefineOptionsT", bound=SelfRefineOptions)


@STRATEGIES.register("self-refine", SelfRefineOptions)
class SelfRefine(Strategy[SelfRefineOptionsT], Generic[SelfRefineOptionsT]):
    """Solve, review, revise until the review says correct; majority vote over parallel chains."""

    name = "self-refine"
    depth_option = "rounds"
    line = "feedback"
    system_prompt = FEEDBACK_SYSTEM_PROMPT
    template = FEEDBACK_TEMPLATE

    async def critic(self, ctx: Context) -> Backend:
        return ctx.backend

    def max_cost(self) -> Cost:
        """n chains of a first solution and, per round, feedback and a revision."""
        options = self.options
        solution = Cost.sample(1, options.max_tokens)
        round_cost = Cost.sample(1, options.feedback_tokens) + solution
        return (solution + round_cost * options.rounds) * options.n

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        critic = await self.critic(ctx)
        chains = await asyncio.gather(
            *(self.chain(problem, ctx, critic, index) for index in range(options.n))
        )
        finals = [rounds[-1]["candidate"] for rounds in chains]
        vote = majority_vote(finals)
        text = finals[vote.winner].text if vote.winner is not None else None
        trace = {
            "chains": [
                [{k: v for k, v in r.items() if k != "candidate"} for r in rounds] for rounds in chains
            ]
        }
        drafts = [entry["candidate"] for rounds in chains for entry in rounds]
        return ctx.result(self.spec, drafts, vote.answer, text, vote.table, trace=trace)

    async def chain(
        self, problem: Problem, ctx: Context, critic: Backend, index: int
    ) -> list[dict[str, Any]]:
        """One solve-review-revise chain; each entry is a solution with the verdict on it."""
        options = self.options
        request = ctx.request(problem, options)
        request = request.with_(seed=None if request.seed is None else request.seed + index)
        solution = await ctx.sample_one(request)
        history: list[dict[str, Any]] = []
        for round_index in range(options.rounds + 1):
            entry: dict[str, Any] = {"candidate": solution, "answer": solution.answer, "verdict": None}
            history.append(entry)
            if round_index == options.rounds or ctx.ledger.exhausted:
                break
            review = review_request(
                problem,
                solution,
                self.system_prompt,
                self.template,
                options.max_solution_chars,
                temperature=0.0,
                max_tokens=options.feedback_tokens,
            )
            [[feedback]] = await ctx.generate([review], line=self.line, backend=critic)
            entry["verdict"] = parse_verdict(feedback.text)
            entry["feedback"] = feedback.text
            if entry["verdict"] == 1.0:
                break
            revision = [
                *request.messages,
                Message("assistant", solution.text),
                Message("user", REVISE_TEMPLATE.format(feedback=feedback.text)),
            ]
            solution = await ctx.sample_one(request.with_(messages=tuple(revision)))
        return history


@STRATEGIES.register("critique-refine", CritiqueRefineOptions)
class CritiqueRefine(SelfRefine[CritiqueRefineOptions]):
    """A critic (possibly another model) finds the first wrong step, the actor revises; vote over chains."""

    name = "critique-refine"
    depth_option = "rounds"
    line = "critic"
    system_prompt = CRITIC_SYSTEM_PROMPT
    template = CRITIC_TEMPLATE

    async def critic(self, ctx: Context) -> Backend:
        """The critic's own backend when ``critic_model`` or ``critic_base_url`` is set, else the actor's."""
        options = self.options
        return await ctx.backends.get(ctx.backend, options.critic_model, options.critic_base_url)
