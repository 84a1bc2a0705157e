"""Adaptive and sequential strategies on the scripted backend: where each stops, what it bills."""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
from pathlib import Path

import pytest

import ponder
from ponder.backends import GenRequest, Reply, ScriptedBackend
from ponder.context import Context
from ponder.core import Message, Usage
from ponder.core.errors import BackendError
from ponder.eval.runner import EvalConfig, run_eval
from ponder.scorers.genverifier import VERIFIER_SYSTEM_PROMPT
from ponder.strategies import STRATEGIES
from ponder.strategies.adaptive_consistency import beta_probability
from ponder.strategies.qalign import acceptance
from ponder.strategies.self_refine import CRITIC_SYSTEM_PROMPT, FEEDBACK_SYSTEM_PROMPT
from ponder.strategies.solve_detect_verify import DETECT_SYSTEM_PROMPT, HESITATIONS
from ponder.strategies.thinking_budget import FORCE_ANSWER

SPECS = [
    "adaptive-consistency:max_n=40,batch=4,threshold=0.95",
    "adaptive-consistency:rule=window,window=5",
    "deepconf:n=16,mode=online",
    "deepconf:n=16,mode=offline",
    "first-finish:n=8",
    "thinking-budget:tokens=2048",
    "iterative-deepening",
    "self-refine:rounds=3",
    "critique-refine:rounds=2",
    "solve-detect-verify",
    "qalign:steps=16",
]


def generated(result: ponder.Result) -> Usage:
    return result.usage_by_line["generate"]


def billed_candidates(result: ponder.Result) -> Usage:
    return Usage.total([c.usage for c in result.candidates])


def assert_candidates_carry_the_bill(result: ponder.Result) -> None:
    """Every generation billed on the ``generate`` line belongs to a returned candidate, and back."""
    line, candidates = generated(result), billed_candidates(result)
    assert (line.calls, line.prompt_tokens, line.completion_tokens) == (
        candidates.calls,
        candidates.prompt_tokens,
        candidates.completion_tokens,
    )


@pytest.mark.parametrize("spec", SPECS)
def test_every_spec_of_the_issue_builds(spec: str) -> None:
    assert STRATEGIES.build(spec).name == spec.partition(":")[0]


# -- adaptive-consistency ------------------------------------------------------------------------------


def numeric_beta_tail(a: int, b: int, steps: int = 200_000) -> float:
    """P(X > 1/2) for X ~ Beta(a, b), by the midpoint rule on the density."""
    norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    width = 0.5 / steps
    total = 0.0
    for i in range(steps):
        x = 0.5 + (i + 0.5) * width
        total += math.exp(norm + (a - 1) * math.log(x) + (b - 1) * math.log(1 - x))
    return total * width


@pytest.mark.parametrize("leader,runner_up", [(1, 0), (4, 0), (3, 1), (6, 1), (5, 3), (12, 7), (2, 2)])
def test_beta_probability_matches_numeric_integration(leader: int, runner_up: int) -> None:
    assert beta_probability(leader, runner_up) == pytest.approx(
        numeric_beta_tail(leader + 1, runner_up + 1), abs=1e-7
    )


def test_beta_probability_of_unanimous_votes() -> None:
    assert [beta_probability(k, 0) for k in range(1, 6)] == [1 - 2 ** -(k + 1) for k in range(1, 6)]


async def test_adaptive_consistency_stops_after_four_unanimous_samples() -> None:
    backend = ScriptedBackend(script=["\\boxed{7}"])
    result = await ponder.asolve("What is 3+4?", "adaptive-consistency", backend=backend, seed=10)
    assert result.answer == "7"
    assert result.trace["posterior"] == [0.75, 0.875, 0.9375, 0.96875]
    assert result.trace["stopped_early"] and result.trace["samples_voted"] == 4
    assert [r.n for r in backend.requests] == [1, 1, 1, 1]
    assert [r.seed for r in backend.requests] == [10, 11, 12, 13]
    assert result.usage.calls == 4 and result.usage.completion_tokens == 4
    assert_candidates_carry_the_bill(result)


async def test_adaptive_consistency_beta_rule_fires_exactly_at_threshold() -> None:
    script = ["\\boxed{7}", "\\boxed{3}"] + ["\\boxed{7}"] * 10
    result = await ponder.asolve("q", "adaptive-consistency:batch=4", backend=ScriptedBackend(script=script))
    # 6 votes to 1: P = 247/256 = 0.9648 >= 0.95, one sample earlier 5 to 1 gave 0.9375
    assert result.trace["posterior"][-2:] == [0.9375, 0.96484375]
    assert result.trace["samples_voted"] == 7
    assert result.votes == {"7": 6.0, "3": 1.0}
    # the 8th sample of the second batch had finished too: billed and returned, not voted
    assert result.trace["finished_unread"] == 1 and len(result.candidates) == 8
    assert result.usage.calls == 8
    assert_candidates_carry_the_bill(result)


async def test_adaptive_consistency_threshold_is_an_option() -> None:
    backend = ScriptedBackend(script=["\\boxed{7}"])
    result = await ponder.asolve("q", "adaptive-consistency:threshold=0.99,batch=1", backend=backend)
    assert result.trace["samples_voted"] == 6  # 1 - 2^-7 = 0.992; 1 - 2^-6 = 0.984
    assert result.usage.calls == 6


async def test_adaptive_consistency_runs_to_max_n_without_agreement() -> None:
    script = [f"\\boxed{{{i}}}" for i in range(10)]
    result = await ponder.asolve(
        "q", "adaptive-consistency:max_n=6,batch=2", backend=ScriptedBackend(script=script)
    )
    assert len(result.candidates) == 6 and not result.trace["stopped_early"]
    assert result.answer == "0"


async def test_window_rule_stops_at_the_first_unanimous_window() -> None:
    script = ["\\boxed{1}", "\\boxed{2}", "\\boxed{1}", "\\boxed{5}", "no answer", "\\boxed{5}"] + [
        "\\boxed{5}"
    ] * 3
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "adaptive-consistency:rule=window,window=3,batch=3", backend=backend)
    # windows [1,2,1] and [5,None,5] are not unanimous; [5,5,5] is
    assert result.trace["samples_voted"] == 9 and result.trace["posterior"] == [None] * 9
    assert result.answer == "5" and result.votes == {"5": 5.0, "1": 2.0, "2": 1.0}
    assert result.usage.calls == 9


async def test_stopping_cancels_requests_in_flight_and_bills_only_finished_ones() -> None:
    # all answer 2; request i takes 0.05·(i+1) s: four finish while three more are still running
    script = [Reply("\\boxed{2}", delay=0.05 * (i + 1)) for i in range(40)]
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "adaptive-consistency:batch=4", backend=backend)
    assert result.trace["samples_voted"] == 4
    assert len(backend.requests) == 7  # 4, then one new request as each of the first three finished
    assert result.trace["cancelled_requests"] == 3
    assert len(result.candidates) == 4
    assert result.usage.calls == 4 and result.usage.completion_tokens == 4
    assert_candidates_carry_the_bill(result)


async def test_as_completed_raises_a_failure_and_cancels_the_rest() -> None:
    def script(request: GenRequest, index: int) -> Reply:
        if index == 1:
            raise BackendError("boom")
        return Reply("\\boxed{1}", delay=0.3)

    ctx = Context(backend=ScriptedBackend(script=script))
    request = GenRequest(messages=(Message("user", "q"),), n=3)
    with pytest.raises(BackendError, match="boom"):
        async with contextlib.aclosing(ctx.as_completed(request)) as stream:
            async for _ in stream:
                pass
    assert ctx.cancelled == 2 and ctx.ledger.total.calls == 0


async def test_as_completed_starts_nothing_once_the_budget_is_met() -> None:
    backend = ScriptedBackend(script=["\\boxed{1}"])
    result = await ponder.asolve("q", "adaptive-consistency:batch=1", backend=backend, budget="calls=2")
    assert len(backend.requests) == 2 and result.budget_exhausted
    assert result.trace["samples_voted"] == 2 and result.answer == "1"


# -- first-finish --------------------------------------------------------------------------------------


async def test_first_finish_returns_the_first_to_finish_and_cancels_the_rest() -> None:
    delays = [0.4, 0.25, 0.05, 0.5]
    script = [Reply(f"a b c \\boxed{{{i}}}", delay=d) for i, d in enumerate(delays)]
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "first-finish:n=4", backend=backend)
    assert result.answer == "2" and result.text == "a b c \\boxed{2}"
    assert len(backend.requests) == 4
    assert result.trace["cancelled_requests"] == 3
    assert result.usage.calls == 1 and result.usage.completion_tokens == 4
    assert_candidates_carry_the_bill(result)


async def test_first_finish_votes_over_the_first_k() -> None:
    delays = [0.3, 0.1, 0.05, 0.5, 0.15]
    answers = [9, 4, 3, 9, 4]
    script = [Reply(f"\\boxed{{{a}}}", delay=d) for a, d in zip(answers, delays, strict=True)]
    result = await ponder.asolve("q", "first-finish:n=5,k=3", backend=ScriptedBackend(script=script))
    assert result.answer == "4" and result.votes == {"4": 2.0, "3": 1.0}
    assert [c.answer for c in result.candidates] == ["3", "4", "4"]
    assert result.trace["cancelled_requests"] == 2 and result.usage.calls == 3


async def test_first_finish_returns_ties_billed_not_hidden() -> None:
    backend = ScriptedBackend(script=["\\boxed{1}", "\\boxed{2}", "\\boxed{3}"])
    result = await ponder.asolve("q", "first-finish:n=3", backend=backend)
    # no delays: all three finish together; the first launched wins, the others are billed and returned
    assert result.answer == "1"
    assert result.trace["finished_unread"] == 2 and result.trace["cancelled_requests"] == 0
    assert result.usage.calls == 3 and len(result.candidates) == 3
    assert_candidates_carry_the_bill(result)


# -- deepconf ------------------------------------------------------------------------------------------

CONFIDENT = {"x": -0.01, "y": -6.0}  # token confidence C = 3.005
VERY_CONFIDENT = {"x": -0.4, "y": -6.0}  # C = 3.2
UNSURE = {"x": -1.0, "y": -2.0}  # C = 1.5


async def test_deepconf_offline_filters_then_weights_by_confidence() -> None:
    script = [Reply("\\boxed{5}", top=UNSURE)] * 3 + [Reply("\\boxed{7}", top=CONFIDENT)]
    kept = await ponder.asolve(
        "q", "deepconf:n=4,mode=offline,keep=0.25", backend=ScriptedBackend(script=script)
    )
    backend = ScriptedBackend(script=script)
    everyone = await ponder.asolve("q", "deepconf:n=4,mode=offline,keep=1", backend=backend)
    assert kept.answer == "7" and kept.votes == {"7": pytest.approx(3.005)}
    assert everyone.answer == "5" and everyone.votes == {"5": pytest.approx(4.5), "7": pytest.approx(3.005)}
    assert backend.requests[0].logprobs == 5
    assert [c.score for c in everyone.candidates] == pytest.approx([1.5, 1.5, 1.5, 3.005])


def deepconf_script(request: GenRequest, index: int) -> Reply:
    """Warm-up (seed 0, one request of n=4), then later traces told apart by their seeds 4, 5, 6, 7."""
    if request.seed == 0:
        return [
            Reply("\\boxed{7}", top=CONFIDENT),
            Reply("\\boxed{9}", top=VERY_CONFIDENT),
            Reply("\\boxed{5}", top=UNSURE),
            Reply("\\boxed{5}", top=UNSURE),
        ][index]
    full = {4: "w w w w w w \\boxed{5}", 5: "w w w \\boxed{9}"}.get(request.seed, "w w \\boxed{9}")
    done = len((request.prefix or "").split())
    top = UNSURE if request.seed == 4 else VERY_CONFIDENT
    return Reply(" " + " ".join(full.split()[done:]), top=top, delay=0.5 if request.seed >= 6 else 0.0)


async def test_deepconf_online_threshold_early_stop_and_consensus() -> None:
    backend = ScriptedBackend(script=deepconf_script)
    spec = "deepconf:n=8,warmup=4,keep=0.5,chunk=2,consensus=0.6"
    result = await ponder.asolve("q", spec, backend=backend, seed=0)
    # warm-up confidences 3.005, 3.2, 1.5, 1.5: the top half's lowest sets the threshold
    assert result.trace["threshold"] == pytest.approx(3.005)
    seeds = [r.seed for r in backend.requests]
    # trace 4 is unsure: stopped after its first chunk of 2 tokens
    assert seeds.count(4) == 1 and backend.requests[1].max_tokens == 2
    [stopped] = [c for c in result.candidates if c.finish_reason == "low-confidence"]
    assert stopped.completion_tokens == 2
    # trace 5 grows in two chunks (continuing its own text) and finishes
    five = [r for r in backend.requests if r.seed == 5]
    assert [r.prefix for r in five] == [None, " w w"]
    # 9 then holds 6.4 of 9.405 of the weight (>= 0.6): traces 6 and 7 are cancelled, never billed
    assert result.answer == "9"
    assert result.votes == {"9": pytest.approx(6.4), "7": pytest.approx(3.005)}
    assert result.trace["cancelled_requests"] == 2 and result.trace["stopped_traces"] == 1
    assert result.usage.completion_tokens == 4 + 2 + 4
    assert result.usage.calls == 1 + 1 + 2
    assert_candidates_carry_the_bill(result)


async def test_deepconf_online_skips_sampling_when_warmup_agrees() -> None:
    script = [Reply("\\boxed{3}", top=CONFIDENT)]
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "deepconf:n=16,warmup=4", backend=backend)
    assert result.answer == "3" and len(result.candidates) == 4 and len(backend.requests) == 1


# -- thinking-budget -----------------------------------------------------------------------------------


def thinking_script(trace: str) -> object:
    """Continues ``trace`` from wherever the prefix left it; a forced answer restates the last number."""

    def reply(request: GenRequest, index: int) -> str:
        prefix = request.prefix or ""
        if prefix.endswith("Final Answer:"):
            last_number = re.findall(r"\d+", prefix)[-1]  # in the thinking, which answers never come from
            return f" \\boxed{{{last_number}}}"
        return " " + " ".join(trace.split()[len(prefix.split()) :])

    return reply


async def test_budget_forcing_cuts_thinking_at_exactly_the_cap() -> None:
    trace = "<think> " + " ".join(["think 5"] * 20) + " </think> \\boxed{9}"
    backend = ScriptedBackend(script=thinking_script(trace))
    result = await ponder.asolve("q", "thinking-budget:tokens=10", backend=backend)
    first, forced = backend.requests
    assert (first.prefix, first.max_tokens) == (None, 10)
    thinking = " " + " ".join(trace.split()[:10])
    assert forced.prefix == thinking + FORCE_ANSWER.format(close="</think>")
    assert forced.max_tokens == 256
    assert result.answer == "5" and result.text.endswith("</think>\n\nFinal Answer: \\boxed{5}")
    assert result.trace["curve"] == [
        {"budget": 10, "thinking_tokens": 10, "answer": "5", "completion_tokens": 11}
    ]
    assert result.usage.completion_tokens == 11 and result.usage.calls == 2
    assert_candidates_carry_the_bill(result)


async def test_budget_forcing_leaves_a_model_that_stops_early_alone() -> None:
    backend = ScriptedBackend(script=["<think> short </think> \\boxed{4}"])
    result = await ponder.asolve("q", "thinking-budget:tokens=100", backend=backend)
    assert result.answer == "4" and len(backend.requests) == 1
    backend = ScriptedBackend(script=["no think section, \\boxed{4}"])  # a non-reasoning model
    result = await ponder.asolve("q", "thinking-budget:tokens=100", backend=backend)
    assert result.answer == "4" and len(backend.requests) == 1


async def test_wait_extends_thinking_that_ends_early() -> None:
    script = ["<think> a b </think> \\boxed{1}", " c d </think> \\boxed{2}"]
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "thinking-budget:tokens=100,wait=1", backend=backend)
    first, extended = backend.requests
    assert extended.prefix == "<think> a b Wait" and extended.max_tokens == 100 - 5
    assert result.answer == "2" and result.trace["waits"] == 1
    assert result.text == "<think> a b Wait c d </think> \\boxed{2}"
    assert result.usage.completion_tokens == 5 + 4


async def test_anytime_curve_from_one_trace_per_problem_is_monotone() -> None:
    # the thinking reaches the right answer (42) after 3, 7 and 13 words; before that it guesses 5
    traces = [
        "<think> 5 x 42" + " x" * 20 + " </think> \\boxed{42}",
        "<think> 5 x x x x 42" + " x" * 20 + " </think> \\boxed{42}",
        "<think> 5 x x x x x x x x x x 42" + " x" * 20 + " </think> \\boxed{42}",
    ]
    curves = []
    for trace in traces:
        backend = ScriptedBackend(script=thinking_script(trace))
        result = await ponder.asolve("q", "thinking-budget:tokens=16,cuts=3", backend=backend)
        curve = result.trace["curve"]
        assert [p["budget"] for p in curve] == [4, 8, 16]
        assert [p["thinking_tokens"] for p in curve] == [4, 8, 16]
        assert [p["completion_tokens"] for p in curve] == [5, 9, 17]
        # one trace: thinking continues from the last cut, never from the forced answers
        thinking = [r for r in backend.requests if not (r.prefix or "").endswith("Final Answer:")]
        assert [r.max_tokens for r in thinking] == [4, 4, 8]
        assert result.usage.completion_tokens == 16 + 3 and result.usage.calls == 6
        assert_candidates_carry_the_bill(result)
        curves.append([p["answer"] == "42" for p in curve])
    accuracy = [sum(column) / len(traces) for column in zip(*curves, strict=True)]
    assert accuracy == [pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]
    assert accuracy == sorted(accuracy)


# -- iterative-deepening -------------------------------------------------------------------------------


async def test_iterative_deepening_triggers_until_the_answer_is_confirmed() -> None:
    script = ["first \\boxed{3}", "recheck \\boxed{4}", "yes \\boxed{4}"]
    backend = ScriptedBackend(script=script)
    spec = "iterative-deepening:initial=4,growth=2,max_tokens=64,trigger=[ Wait, check. ]"
    result = await ponder.asolve("q", spec, backend=backend)
    assert [r.max_tokens for r in backend.requests] == [4, 8 - 2, 16 - 4]
    assert backend.requests[1].prefix == "first \\boxed{3} Wait, check. "
    assert result.answer == "4" and result.trace["triggers"] == 2
    assert [s["confirmed"] for s in result.trace["segments"]] == [False, False, True]
    assert result.usage.completion_tokens == 6
    assert_candidates_carry_the_bill(result)


async def test_iterative_deepening_stops_at_max_tokens() -> None:
    backend = ScriptedBackend(script=[" ".join(["w"] * 30)])
    result = await ponder.asolve("q", "iterative-deepening:initial=4,max_tokens=10", backend=backend)
    assert [r.max_tokens for r in backend.requests] == [4, 4, 2]
    assert result.candidates[0].completion_tokens == 10 and result.usage.completion_tokens == 10


# -- self-refine and critique-refine ------------------------------------------------------------------


def refine_script(feedback: list[str], solutions: list[str], system: str) -> object:
    said: list[int] = [0, 0]

    def reply(request: GenRequest, index: int) -> str:
        if request.messages[0].content == system:
            said[0] += 1
            return feedback[said[0] - 1]
        said[1] += 1
        return solutions[said[1] - 1]

    return reply


async def test_self_refine_stops_when_feedback_says_correct() -> None:
    feedback = ["Step 2 is wrong. Verdict: incorrect", "All steps check out. Verdict: correct"]
    script = refine_script(feedback, ["\\boxed{5}", "\\boxed{6}"], FEEDBACK_SYSTEM_PROMPT)
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "self-refine:rounds=3", backend=backend)
    assert result.answer == "6"
    [chain] = result.trace["chains"]
    assert [(r["answer"], r["verdict"]) for r in chain] == [("5", 0.0), ("6", 1.0)]
    assert len(backend.requests) == 4  # solve, feedback, revise, feedback: no third round
    revise = backend.requests[2]
    assert [m.role for m in revise.messages[-2:]] == ["assistant", "user"]
    assert revise.messages[-2].content == "\\boxed{5}" and feedback[0] in revise.messages[-1].content
    assert result.usage_by_line["feedback"].calls == 2 and result.usage_by_line["generate"].calls == 2
    assert [c.answer for c in result.candidates] == ["5", "6"]
    assert_candidates_carry_the_bill(result)


async def test_self_refine_stops_after_rounds() -> None:
    script = refine_script(
        ["Verdict: incorrect"] * 5, [f"\\boxed{{{i}}}" for i in range(5)], FEEDBACK_SYSTEM_PROMPT
    )
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "self-refine:rounds=2", backend=backend)
    assert result.answer == "2" and len(backend.requests) == 2 + 2 + 1


async def test_critique_refine_on_another_model_votes_over_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    critic = ScriptedBackend(model="critic", script=["Verdict: correct"])
    made: list[tuple[str | None, str | None]] = []

    def make_backend(model: str | None = None, base_url: str | None = None) -> ScriptedBackend:
        made.append((model, base_url))
        return critic

    monkeypatch.setattr("ponder.backends.make_backend", make_backend)
    actor = ScriptedBackend(script=["\\boxed{8}", "\\boxed{8}", "\\boxed{3}"])
    spec = "critique-refine:n=3,critic_model=big,critic_base_url=http://127.0.0.1:9/v1"
    result = await ponder.asolve("q", spec, backend=actor, seed=1)
    assert made == [("big", "http://127.0.0.1:9/v1")]
    assert result.answer == "8" and result.votes == {"8": 2.0, "3": 1.0}
    assert len(actor.requests) == 3 and len(critic.requests) == 3
    assert all(r.messages[0].content == CRITIC_SYSTEM_PROMPT for r in critic.requests)
    assert sorted(r.seed for r in actor.requests) == [1, 2, 3]
    assert result.usage_by_line["critic"].calls == 3


# -- solve-detect-verify -------------------------------------------------------------------------------


def flexive_script(request: GenRequest, index: int) -> str | Reply:
    system = request.messages[0].content
    if system == DETECT_SYSTEM_PROMPT:
        return (
            "No"
            if "Wait" not in request.messages[1].content and "\\boxed{2}" in request.messages[1].content
            else "Yes"
        )
    if system == VERIFIER_SYSTEM_PROMPT:
        solution = request.messages[1].content
        if "\\boxed{3}" in solution:  # short checks disagree, the long check finds the error
            return [
                "Verdict: correct",
                "Verdict: incorrect",
                "Verdict: correct",
                "Step 2 is off. Verdict: incorrect",
            ][
                flexive_script.checks.pop(0)  # type: ignore[attr-defined]
            ]
        return "Verdict: correct"
    # every solving request stops at a hesitation string, as the server reports
    if len(request.messages) > 2:  # the revision
        return Reply("fixed \\boxed{4}", stop_sequence="Wait")
    return Reply("x = 2, \\boxed{2}" if request.prefix is None else " no, \\boxed{3}", stop_sequence="Wait")


async def test_solve_detect_verify_detects_verifies_escalates_and_revises() -> None:
    flexive_script.checks = [0, 1, 2, 3]  # type: ignore[attr-defined]
    backend = ScriptedBackend(script=flexive_script)
    result = await ponder.asolve("q", "solve-detect-verify", backend=backend)
    solves = [r for r in backend.requests if r.stop == HESITATIONS]
    assert [r.prefix for r in solves] == [None, "x = 2, \\boxed{2}Wait", None]
    [first, second] = result.trace["attempts"]
    assert first == {"answer": "3", "probes": 2, "verdict": 0.0, "long_check": True}
    assert second == {"answer": "4", "probes": 1, "verdict": 1.0, "long_check": False}
    assert result.answer == "4"
    checks = [r for r in backend.requests if r.messages[0].content == VERIFIER_SYSTEM_PROMPT]
    assert [(r.n, r.max_tokens) for r in checks] == [(3, 256), (1, 1024), (3, 256)]
    assert "Step 2 is off" in solves[-1].messages[-1].content
    assert result.usage_by_line["detect"].calls == 3 and result.usage_by_line["verify"].calls == 3
    assert_candidates_carry_the_bill(result)


# -- qalign --------------------------------------------------------------------------------------------


def qalign_script(request: GenRequest, index: int) -> Reply:
    # alternate good (logprob -0.1) and poor (-2.0) proposals of different lengths
    if index % 2:
        return Reply("more words here \\boxed{1}", logprob=-2.0)
    return Reply("fine \\boxed{2}", logprob=-0.1)


async def test_qalign_metropolis_hastings_acceptance_with_a_seeded_rng() -> None:
    backend = ScriptedBackend(script=qalign_script)
    steps, beta, seed = 8, 0.5, 3
    result = await ponder.asolve(
        "q", f"qalign:steps={steps},scorer=confidence,beta={beta}", backend=backend, seed=seed
    )
    # replay the chain by hand with the same RNG stream
    rng = random.Random(seed)
    text, reward, chain, index = "fine \\boxed{2}", math.exp(-0.1), [0], 0
    for step in range(steps):
        words = text.split(" ")
        cut = rng.randrange(len(words))
        reply = qalign_script(GenRequest(messages=()), step + 1)
        proposal = " ".join(words[:cut]) + " " + reply.text if cut else reply.text
        proposed = math.exp(reply.logprob)
        probability = min(1.0, math.exp((proposed - reward) / beta) * len(words) / len(proposal.split(" ")))
        assert result.trace["steps"][step]["cut"] == cut
        assert result.trace["steps"][step]["acceptance"] == pytest.approx(probability)
        assert result.candidates[step + 1].text == proposal
        if rng.random() < probability:
            text, reward, index = proposal, proposed, step + 1
        chain.append(index)
    assert result.trace["chain"] == chain
    assert 0 < result.trace["accepted"] < steps
    assert backend.requests[1].prefix is None or backend.requests[1].prefix.endswith(" ")
    assert result.usage.calls == steps + 1 and len(result.candidates) == steps + 1
    states = [result.candidates[i].answer for i in chain]
    assert result.answer == max(set(states), key=lambda a: (states.count(a), -states.index(a)))
    assert_candidates_carry_the_bill(result)


def test_qalign_acceptance_ratio() -> None:
    assert acceptance(0.2, 0.9, 10, 10, 0.1) == 1.0
    assert acceptance(0.9, 0.2, 10, 10, 0.1) == pytest.approx(math.exp(-7))
    assert acceptance(0.5, 0.5, 10, 20, 1.0) == pytest.approx(0.5)


async def test_qalign_judge_reward_is_billed_on_its_own_line() -> None:
    def script(request: GenRequest, index: int) -> Reply:
        if request.max_tokens == 1:  # the judge's logprob verdict
            return Reply("Yes", top={"Yes": -0.1, "No": -2.0})
        return Reply("a b \\boxed{1}")

    result = await ponder.asolve("q", "qalign:steps=3", backend=ScriptedBackend(script=script), seed=0)
    assert result.answer == "1"
    assert result.usage_by_line["scorer:judge"].calls == 4 and result.usage_by_line["generate"].calls == 4


# -- in the eval ---------------------------------------------------------------------------------------


async def test_eval_measures_adaptive_consistency_against_self_consistency(tmp_path: Path) -> None:
    """Problem 1: every sample agrees (the Beta rule stops at 4 of 8); problem 2: answers alternate 2, 9."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"question": f"problem {i}", "answer": i}) + "\n" for i in (1, 2)))

    served = {"1": 0, "2": 0}

    def script(request: GenRequest, index: int) -> Reply:
        number = request.messages[-1].content.split()[-1]
        served[number] += 1
        answer = number if number == "1" or served[number] % 2 else "9"
        return Reply(f"work \\boxed{{{answer}}}")

    specs = ["adaptive-consistency:max_n=8", "self-consistency:n=8"]
    config = EvalConfig(dataset=f"jsonl:{data}", strategies=specs, budgets=[8], model="scripted")
    summary = await run_eval(config, ScriptedBackend(script=script), tmp_path / "run", show_progress=False)
    rows = {row["strategy"]: row for row in summary["rows"]}
    adaptive, plain = rows["adaptive-consistency"], rows["self-consistency"]
    assert adaptive["accuracy"] == plain["accuracy"] == 1.0
    # problem 1: 4 samples instead of 8; problem 2 never settles (4 to 4 after 8): all 8
    assert adaptive["mean_completion_tokens"] == pytest.approx((4 * 2 + 8 * 2) / 2)
    assert plain["mean_completion_tokens"] == pytest.approx(8 * 2)
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert {r["trace"]["samples_voted"] for r in records if "trace" in r} == {4, 8}


# -- on the real embedded model ------------------------------------------------------------------------


@pytest.mark.integration
async def test_cancellation_and_continuation_on_the_embedded_model() -> None:
    """first-finish cancels real HTTP requests and the server keeps serving; thinking-budget continues.

    Bounded by construction: at most 3 × 16 + 8 + 4 generated tokens on the 135M model.
    """
    from ponder.backends.embedded.backend import embedded_backend

    backend = embedded_backend("smollm2-135m")
    await backend.start()
    try:
        first = await ponder.asolve("What is 2+3?", "first-finish:n=3,max_tokens=16", backend=backend, seed=1)
        assert first.trace["cancelled_requests"] + first.trace["finished_unread"] + 1 == 3
        # requests stopped after the server took them on are billed too, on their own line
        stopped = first.usage_by_line["cancelled"].calls if "cancelled" in first.usage_by_line else 0
        assert first.usage.calls == len(first.candidates) + stopped and len(first.candidates) >= 1
        assert stopped <= first.trace["cancelled_requests"]
        spec = "thinking-budget:tokens=8,answer_tokens=4"
        forced = await ponder.asolve("What is 2+3?", spec, backend=backend)
        [candidate] = forced.candidates
        assert forced.trace["curve"][0]["thinking_tokens"] <= 8
        assert candidate.completion_tokens <= 12 and forced.usage.calls in (1, 2)
    finally:
        await backend.close()
