"""A budget is a hard cap: every strategy (and every scorer through best-of-n) under every kind of cap.

Each run uses the replies that make a strategy work hardest (``test_cost_bounds.hardest``) on a scripted
backend, under caps on calls, tokens, completion tokens, FLOPs and seconds, and must end without an
exception or a hang, with what it spent within the cap, ``budget_exhausted`` set and its note saying why.
"""

from __future__ import annotations

import asyncio

import pytest
from test_cost_bounds import CODE, CODE_PROBLEM, MATH_PROBLEM, SMALL, defaults, hardest

import ponder
from ponder.backends.scripted import ScriptedBackend
from ponder.core.ledger import Budget
from ponder.scorers import SCORERS

CAPS = ["calls=1", "calls=4", "tokens=120", "completion_tokens=40", "flops=2e8", "seconds=0"]
PARAMETERS = 1e6  # so that a FLOPs cap means 100 tokens per 2e8
#: how each scorer is named through best-of-n; a reward model needs weights or a server of its own (its
#: budget check: test_a_reward_model_checks_the_budget_before_it_runs; its scoring: test_reward_models,
#: test_prm_http)
SCORER_OPTIONS = {"tests": "tests:tests=generated", "python": "python:operator:eq"}
SCORER_SPECS = [
    f"best-of-n:n=4,scorer=[{SCORER_OPTIONS.get(name, name)}],max_tokens=16"
    for name in SCORERS.names()
    if name not in ("prm", "orm", "prm-http")
]


async def solve_under(spec: str, cap: str, long: bool = False, code: bool = False) -> ponder.Result:
    backend = ScriptedBackend(script=hardest(long, code), parameters=PARAMETERS)
    problem = CODE_PROBLEM if code else MATH_PROBLEM
    return await asyncio.wait_for(ponder.asolve(problem, spec, backend=backend, seed=0, budget=cap), 60)


def assert_within(spec: str, cap: str, result: ponder.Result) -> None:
    budget, spent = Budget.parse(cap), result.usage
    where = f"{spec} under {cap}"
    if budget.calls is not None:
        assert spent.calls <= budget.calls, f"{where}: {spent.calls} calls"
    if budget.completion_tokens is not None:
        assert spent.completion_tokens <= budget.completion_tokens, f"{where}: {spent.completion_tokens}"
    if budget.tokens is not None:  # only the prompt can go over, and the note says by how much
        over = spent.total_tokens - budget.tokens
        assert over <= 0 or "over the budget's tokens" in (result.note or ""), f"{where}: over by {over}"
    if budget.flops is not None:
        over = spent.flops - budget.flops
        assert over <= 0 or "over the budget's" in (result.note or ""), f"{where}: over by {over:g}"
    if budget.seconds == 0:
        assert spent.calls == 0, where
    if result.budget_exhausted:
        assert "budget" in (result.note or ""), f"{where}: stopped without saying why"


@pytest.mark.parametrize("cap", CAPS)
@pytest.mark.parametrize("spec", SMALL + SCORER_SPECS + defaults())
async def test_every_strategy_holds_every_cap(spec: str, cap: str) -> None:
    result = await solve_under(spec, cap)
    assert_within(spec, cap, result)


@pytest.mark.parametrize("cap", ["calls=2", "completion_tokens=30"])
@pytest.mark.parametrize("spec", CODE)
async def test_code_strategies_hold_caps(spec: str, cap: str) -> None:
    assert_within(spec, cap, await solve_under(spec, cap, code=True))


@pytest.mark.parametrize(
    "spec", ["self-refine:rounds=2,max_tokens=16", "critique-refine:rounds=2,max_tokens=16"]
)
@pytest.mark.parametrize("cap", ["tokens=100", "calls=1", "calls=4"])
async def test_refinement_under_a_budget_answers_instead_of_crashing(spec: str, cap: str) -> None:
    result = await solve_under(spec, cap)
    assert result.budget_exhausted and result.usage.calls <= max(Budget.parse(cap).calls or 99, 1)


async def test_max_tokens_is_clipped_to_what_remains_and_shared_among_calls() -> None:
    backend = ScriptedBackend(script=lambda request, index: " ".join(["w"] * 50))
    result = await ponder.asolve(
        "q", "self-consistency:n=4,max_tokens=50", backend=backend, budget="completion_tokens=60"
    )
    assert result.usage.completion_tokens <= 60
    assert all(request.max_tokens <= 60 // request.n for request in backend.requests)
    assert result.budget_exhausted


async def test_a_fanned_out_request_is_trimmed_to_the_calls_left() -> None:
    from ponder.backends import Capabilities

    backend = ScriptedBackend(script=["\\boxed{1}"], capabilities=Capabilities(honours_n=False))
    result = await ponder.asolve("q", "self-consistency:n=8", backend=backend, budget="calls=3")
    assert result.usage.calls == 3 and len(result.candidates) == 3 and result.answer == "1"
    assert "calls budget" in (result.note or "")


async def test_truncated_candidates_do_not_vote_unless_allowed() -> None:
    script = ["So \\boxed{7} and then more words", "\\boxed{3}", "\\boxed{3}"]
    cut = ScriptedBackend(script=script)  # the first reply is longer than max_tokens=4
    result = await ponder.asolve("q", "self-consistency:n=3,max_tokens=4", backend=cut)
    assert result.candidates[0].finish_reason == "length" and result.candidates[0].answer is None
    assert result.answer == "3" and "1 of 3 candidates were cut off" in (result.note or "")
    allowed = await ponder.asolve(
        "q", "self-consistency:n=3,max_tokens=4,allow_truncated=true", backend=ScriptedBackend(script=script)
    )
    assert allowed.candidates[0].answer == "7" and "still voted" in (allowed.note or "")


async def test_a_reward_model_checks_the_budget_before_it_runs() -> None:
    """Scorers that are not generations (a PRM's forward passes) are refused when the budget is met."""
    from ponder.context import Context
    from ponder.core.errors import BudgetExhaustedError
    from ponder.core.ledger import Ledger
    from ponder.core.types import Usage

    ctx = Context(backend=ScriptedBackend(), ledger=Ledger(Budget(calls=3)))
    ctx.ledger.record("generate", Usage(calls=2))
    ctx.admit_calls(1)
    with pytest.raises(BudgetExhaustedError, match="2 more calls"):
        ctx.admit_calls(2)
    assert ctx.budget_exhausted and "calls budget" in (ctx.stop_reason or "")
