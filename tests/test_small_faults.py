"""The smaller faults of issue 16, each pinned by a test that failed before its fix.

* solve-detect-verify resumes only a trace that stopped at a hesitation string, never a finished one;
* token confidence without top-k alternatives still ranks sure traces above unsure ones (deepconf);
* the eval's sample bank groups a subset's answers exactly as a live vote over those answers does.
"""

from __future__ import annotations

import itertools
import math

import pytest

import ponder
from ponder.backends import GenRequest, Reply, ScriptedBackend
from ponder.context import Context
from ponder.core import TokenLogprob
from ponder.eval.summary import bank_outcome, stored_candidates
from ponder.scorers import SCORERS
from ponder.scorers.genverifier import VERIFIER_SYSTEM_PROMPT
from ponder.strategies import STRATEGIES
from ponder.strategies.solve_detect_verify import DETECT_SYSTEM_PROMPT, HESITATIONS, RESUME
from ponder.tasks.equivalence import is_correct

# -- (a) solve-detect-verify: a generation that ended on its own is done -------------------------------


def solver(*solutions: Reply) -> ScriptedBackend:
    """The solver writes ``solutions`` in turn; the completion probe says Yes, every check says correct."""
    replies = iter(solutions)

    def reply(request: GenRequest, index: int) -> Reply | str:
        system = request.messages[0].content
        if system == DETECT_SYSTEM_PROMPT:
            return "Yes"
        if system == VERIFIER_SYSTEM_PROMPT:
            return "Verdict: correct"
        return next(replies)

    return ScriptedBackend(script=reply)


def solving_requests(backend: ScriptedBackend) -> list[GenRequest]:
    return [r for r in backend.requests if r.stop == HESITATIONS]


async def test_a_finished_answer_goes_to_verification_without_a_probe() -> None:
    backend = solver(Reply("x = 2, so \\boxed{2}"))  # finish "stop", no stop string: the model ended
    result = await ponder.asolve("q", "solve-detect-verify", backend=backend)
    assert result.answer == "2"
    assert len(solving_requests(backend)) == 1
    assert result.trace["attempts"][0]["probes"] == 0
    assert "detect" not in result.usage_by_line
    assert RESUME not in result.candidates[0].text


async def test_an_answerless_finished_trace_is_not_resumed() -> None:
    backend = solver(Reply("I cannot tell."))
    result = await ponder.asolve("q", "solve-detect-verify:max_tokens=64,revisions=0", backend=backend)
    assert len(solving_requests(backend)) == 1
    assert result.candidates[0].text == "I cannot tell."
    assert result.answer is None


async def test_a_stop_at_a_hesitation_string_is_still_probed_and_resumed() -> None:
    # first the solver hesitates before any answer (resumed without a probe), then after one (probed)
    backend = solver(Reply("x is", stop_sequence="Hmm"), Reply(" 2, \\boxed{2}", stop_sequence="Wait"))
    result = await ponder.asolve("q", "solve-detect-verify:revisions=0", backend=backend)
    assert [r.prefix for r in solving_requests(backend)] == [None, "x is" + RESUME]
    assert result.trace["attempts"][0]["probes"] == 1
    assert result.answer == "2"


# -- (b) token confidence without top-k alternatives -----------------------------------------------------

SURE, UNSURE = -0.05, -2.5  # chosen-token logprobs; no alternatives returned


def chosen_only(logprob: float, length: int = 6) -> list[TokenLogprob]:
    return [TokenLogprob("w", logprob) for _ in range(length)]


@pytest.mark.parametrize(
    "metric", ["mean", "mean_confidence", "bottom10", "lowest_window", "tail", "lowest_window,window=2"]
)
async def test_every_confidence_metric_ranks_a_sure_trace_above_an_unsure_one(metric: str) -> None:
    scorer = SCORERS.build(f"confidence:metric={metric}")
    sure, unsure = (
        ponder.Candidate("s", logprobs=chosen_only(SURE)),
        ponder.Candidate("u", logprobs=chosen_only(UNSURE)),
    )
    scores = await scorer.score(ponder.Problem("q"), [sure, unsure], Context(backend=ScriptedBackend()))
    assert scores[0] > scores[1] >= 0.0


async def test_deepconf_offline_keeps_the_confident_answer_without_alternatives() -> None:
    script = [Reply("\\boxed{5}", logprob=UNSURE)] * 3 + [Reply("\\boxed{7}", logprob=SURE)]
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "deepconf:n=4,mode=offline,keep=0.25", backend=backend)
    assert backend.requests[0].logprobs == 5 and not result.candidates[0].logprobs[0].top
    assert result.answer == "7"
    assert result.votes == {"7": pytest.approx(math.exp(SURE))}


async def test_deepconf_online_threshold_stops_the_unsure_traces_without_alternatives() -> None:
    def script(request: GenRequest, index: int) -> Reply:
        if request.seed == 0:  # the warm-up: two sure traces that disagree, one unsure trace
            warmup = [("7", SURE), ("9", 2 * SURE), ("5", UNSURE)]
            answer, logprob = warmup[index]
            return Reply(f"\\boxed{{{answer}}}", logprob=logprob)
        return Reply("\\boxed{5}", logprob=UNSURE)

    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "deepconf:n=5,warmup=3,keep=0.6", backend=backend, seed=0)
    assert result.trace["threshold"] == pytest.approx(math.exp(2 * SURE))
    assert result.trace["stopped_traces"] == 2
    assert result.answer == "7"
    assert result.votes == {"7": pytest.approx(math.exp(SURE)), "9": pytest.approx(math.exp(2 * SURE))}


# -- (c) one equivalence for the sample bank and a live vote ------------------------------------------

# 1.0000007 is within 1e-6 of both 1.0000001 and 1.0000012, which are not within 1e-6 of each other
BANK = ["1.0000007", "1.0000001", "1.0000012", "1.0000012"]
REFERENCE = "1.0000012"


async def live_self_consistency(answers: list[str]) -> ponder.Result:
    script = [f"\\boxed{{{answer}}}" for answer in answers]
    return await ponder.asolve(
        "q", f"self-consistency:n={len(answers)}", backend=ScriptedBackend(script=script)
    )


async def test_bank_reselection_groups_a_subset_as_a_live_vote_over_it_does() -> None:
    bank = await live_self_consistency(BANK)
    record = {
        "strategy": "self-consistency:n=4",
        "seed": 0,
        "problem": {"id": "p"},
        "candidates": [{**c.to_dict(), "correct": is_correct(c.answer, REFERENCE)} for c in bank.candidates],
    }
    strategy = STRATEGIES.build("self-consistency:n=4")
    candidates = stored_candidates(record["candidates"])
    live_correct = []
    for draw in itertools.combinations(range(len(BANK)), 3):
        live = await live_self_consistency([BANK[i] for i in draw])
        vote, _ = strategy.replay([candidates[i] for i in draw])
        assert (vote.answer, vote.table) == (live.answer, live.votes), draw
        live_correct.append(is_correct(live.answer, REFERENCE))
    # the subset (1.0000001, 1.0000012, 1.0000012) is two classes live, one in the whole bank
    assert (await live_self_consistency(BANK[1:])).votes == {"1.0000012": 2.0, "1.0000001": 1.0}
    outcome = bank_outcome(strategy, record, candidates, 3)
    assert outcome.accuracy == pytest.approx(sum(live_correct) / len(live_correct))


async def test_answers_within_the_tolerance_are_one_class_in_the_bank_and_live() -> None:
    answers = ["1.0000001", "1.0000002", "1.0000002", "3"]
    live = await live_self_consistency(answers)
    record_candidates = [{**c.to_dict(), "correct": False} for c in live.candidates]
    vote, _ = STRATEGIES.build("self-consistency:n=4").replay(stored_candidates(record_candidates))
    assert live.votes == vote.table == {"1.0000001": 3.0, "3": 1.0}
    assert live.answer == vote.answer == "1.0000001"
