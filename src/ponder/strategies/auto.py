"""Auto: probe the question, then spend the rest of the budget the way a tuned policy says.

The compute-optimal strategy of Snell et al. (2024), "Scaling LLM Test-Time Compute Optimally can be
More Effective than Scaling Model Parameters": no configuration wins on every question, so a policy
learned from the eval's records (``ponder tune``) maps a cheap, reference-free estimate of the
question's difficulty and the budget to a configuration. At run time:

1. the probe decodes greedily and draws a few samples (with the settings the chosen configurations
   sample with), scoring them when the probe reads a verifier;
2. its feature (agreement with the greedy answer, consensus, or the verifier's mean score) picks a
   predicted-difficulty bin;
3. the bin's configuration runs, reusing the probe's samples: ``self-consistency:n=8`` after a
   4-sample probe draws 4 more; ``greedy`` answers with the probe's greedy answer at no extra cost.

Everything the probe spends is on the ledger and in the result's candidates. ``budget`` counts
generations (greedy answer, samples, verifier calls), and ``policy`` is a file written by ``ponder
tune``; without it, the policy that ships for the embedded model in use.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.errors import UsageError
from ponder.core.registry import OperatorOnly, Options
from ponder.core.types import Candidate, Problem, Result
from ponder.scorers import SCORERS
from ponder.strategies.base import STRATEGIES, Strategy
from ponder.strategies.policy import (
    Plan,
    Policy,
    load_policy,
    probe_feature,
    shipped_policies,
    shipped_policy,
)


class AutoOptions(Options):
    #: most generations to spend (the greedy answer, each sample and each verifier call count one)
    budget: int = Field(8, ge=1, le=1024)
    #: a policy file from ``ponder tune``; default: the policy shipped for the embedded model in use
    policy: Annotated[str | None, OperatorOnly("file")] = None


@STRATEGIES.register("auto", AutoOptions)
class Auto(Strategy[AutoOptions]):
    """Probe, bin by predicted difficulty, run the policy's configuration for that bin and budget."""

    name = "auto"
    budget_option = "budget"

    def __init__(self, options: AutoOptions):
        super().__init__(options)
        self._policy = load_policy(options.policy) if options.policy else None

    def policy_for(self, model: str) -> Policy:
        """The policy this run follows: the named file, else the one shipped for ``model``."""
        if self._policy is not None:
            return self._policy
        policy = shipped_policy(model)
        if policy is None:
            raise UsageError(
                f"auto: no policy ships for model {model!r}; tune one on your own runs with "
                "`ponder tune RUN_DIR --out policy.json` and pass auto:policy=policy.json"
            )
        return policy

    async def run(self, problem: Problem, ctx: Context) -> Result:
        policy = self.policy_for(ctx.backend.model)
        plan = policy.plan(self.options.budget)
        sampling = SamplingOptions(**plan.sampling)
        greedy_options: SamplingOptions = STRATEGIES.build(policy.greedy).options
        greedy: Candidate | None = None
        samples: list[Candidate] = []
        choice, note = plan.choices[0], None
        if plan.probe is not None:
            greedy, samples = await self._probe(problem, ctx, plan, sampling, greedy_options)
            feature = probe_feature(plan.probe, greedy, samples)
            bin_ = plan.bin(feature)
            choice = plan.choices[bin_]
            note = f"auto: probe {plan.probe.feature}={feature:.2f}, bin {bin_ + 1} of {len(plan.choices)}"
        strategy = STRATEGIES.build(choice)
        note = f"{note + ' → ' if note else 'auto: '}{strategy.spec}"
        if strategy.name == "greedy":
            if greedy is None:
                greedy = await ctx.sample_one(ctx.request(problem, greedy_options))
            return ctx.result(self.spec, [greedy, *samples], greedy.answer, text=greedy.text, note=note)
        if strategy.sample_bank and _same_sampling(strategy, sampling):
            candidates = samples + await self._more(problem, ctx, strategy, sampling, len(samples))
            await _score(getattr(strategy, "scorer", None), problem, candidates, ctx)
            vote = strategy.select(candidates)
            made = ([greedy] if greedy is not None else []) + candidates
            text = candidates[vote.winner].text if vote.winner is not None else None
            return ctx.result(self.spec, made, vote.answer, text=text, votes=vote.table, note=note)
        result = await strategy.run(problem, ctx)  # a configuration that cannot reuse the probe
        probed = ([greedy] if greedy is not None else []) + samples
        return ctx.result(
            self.spec,
            probed + result.candidates,
            result.answer,
            text=result.text,
            votes=result.votes,
            note=note,
        )

    async def _probe(
        self,
        problem: Problem,
        ctx: Context,
        plan: Plan,
        sampling: SamplingOptions,
        greedy_options: SamplingOptions,
    ) -> tuple[Candidate, list[Candidate]]:
        """The greedy answer and the probe samples, drawn at once; scored when the probe reads a verifier."""
        assert plan.probe is not None
        greedy_call = ctx.sample_one(ctx.request(problem, greedy_options))
        if plan.probe.samples:
            logprobs = _logprobs(plan)
            draws = ctx.sample(ctx.request(problem, sampling, n=plan.probe.samples, logprobs=logprobs))
            greedy, samples = await asyncio.gather(greedy_call, draws)
        else:
            greedy, samples = await greedy_call, []
        if plan.probe.feature == "verifier":
            await _score(SCORERS.build(plan.probe.scorer or ""), problem, samples, ctx)
        return greedy, samples

    async def _more(
        self, problem: Problem, ctx: Context, strategy: Strategy[Any], sampling: SamplingOptions, have: int
    ) -> list[Candidate]:
        """The samples the chosen configuration needs beyond the probe's (seeds continue after them)."""
        wanted = int(getattr(strategy.options, strategy.budget_option or "n", 1)) - have
        if wanted <= 0:
            return []
        scorer = getattr(strategy, "scorer", None)
        request = ctx.request(problem, sampling, n=wanted, logprobs=scorer.needs_logprobs if scorer else None)
        if request.seed is not None:
            request = request.with_(seed=request.seed + have)
        return await ctx.sample(request)

    def max_cost(self) -> Cost:
        """The probe and the costliest configuration the plan can choose (as if none reused the probe);
        without a named policy, the most that any shipped policy's plan could cost."""
        policies = [self._policy] if self._policy is not None else shipped_policies()
        costs = [_plan_cost(policy, policy.plan(self.options.budget)) for policy in policies]
        if not costs:
            raise UsageError("auto: no policy is named and none ships with ponder")
        return max(costs, key=lambda cost: (cost.calls, cost.completion_tokens))


def _plan_cost(policy: Policy, plan: Plan) -> Cost:
    """A plan's probe and its costliest choice, as if the choice reused none of the probe's samples."""
    probe = Cost()
    if plan.probe is not None:
        greedy = STRATEGIES.build(policy.greedy).max_cost()
        probe = greedy + Cost.sample(plan.probe.samples, int(plan.sampling.get("max_tokens", 1024)))
        if plan.probe.feature == "verifier":
            probe = probe + SCORERS.build(plan.probe.scorer or "").max_cost(plan.probe.samples)
    choices = [STRATEGIES.build(choice).max_cost() for choice in plan.choices]
    return probe + max(choices, key=lambda cost: (cost.calls, cost.completion_tokens))


def _logprobs(plan: Plan) -> int | None:
    """Top-k logprobs the probe's samples must carry: for the probe's scorer (token confidence) and for
    any choice that reuses them with a scorer that reads logprobs."""
    scorers = [plan.probe.scorer] if plan.probe is not None and plan.probe.feature == "verifier" else []
    scorers += [getattr(STRATEGIES.build(choice).options, "scorer", None) for choice in plan.choices]
    needs = [SCORERS.build(s).needs_logprobs for s in scorers if s]
    known = [k for k in needs if k is not None]
    return max(known) if known else None


def _same_sampling(strategy: Strategy[Any], sampling: SamplingOptions) -> bool:
    """Whether the strategy draws its samples with the probe's settings (so it may reuse them)."""
    options = strategy.options
    keys = ("temperature", "top_p", "max_tokens")
    return all(getattr(options, key, None) == getattr(sampling, key) for key in keys)


async def _score(scorer: Any, problem: Problem, candidates: list[Candidate], ctx: Context) -> None:
    """Score with ``scorer`` the candidates it has not scored yet: the probe's samples for its feature,
    then the chosen configuration's, which may reuse those already scored."""
    if scorer is None:
        return
    unscored = [c for c in candidates if scorer.name not in c.scores]
    if unscored:
        for candidate, score in zip(unscored, await scorer.score(problem, unscored, ctx), strict=True):
            candidate.scores[scorer.name] = score
            candidate.score = score
