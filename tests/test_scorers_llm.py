"""Scorers that call a model (judge, genverifier, grm) and the python callable scorer, on scripted backends.

Each checks exact scores, what was asked of the backend, and that the scoring cost lands on the
scorer's own ledger line and, split per candidate, in ``candidate.scoring_usage``.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable

import pytest

import ponder
from ponder.backends import Capabilities, GenRequest, Reply, ScriptedBackend
from ponder.context import Context
from ponder.core import Candidate, Problem, Usage, UsageError
from ponder.scorers import SCORERS
from ponder.scorers.genverifier import VERIFIER_SYSTEM_PROMPT, parse_verdict
from ponder.scorers.grm import GRM_SYSTEM_PROMPT, parse_score
from ponder.scorers.judge import JUDGE_SYSTEM_PROMPT, RATING_SYSTEM_PROMPT, verbal_rating

PROBLEM = Problem("What is 2+3?")


def solutions(*answers: str) -> list[Candidate]:
    return [Candidate(text=f"so \\boxed{{{a}}}", answer=a) for a in answers]


def per_solution(replies: dict[str, list[str | Reply]], solve: list[str] | None = None) -> Callable:
    """A script answering scorer prompts by the boxed answer in the solution (in turn, per solution)
    and solve prompts from ``solve``."""
    counters: dict[str, itertools.count] = defaultdict(itertools.count)
    solves = itertools.cycle(solve or ["\\boxed{5}"])

    def reply(request: GenRequest, index: int) -> str | Reply:
        if request.messages[0].content in (
            JUDGE_SYSTEM_PROMPT,
            RATING_SYSTEM_PROMPT,
            VERIFIER_SYSTEM_PROMPT,
            GRM_SYSTEM_PROMPT,
        ):
            prompt = request.messages[1].content
            answer = prompt.split("\\boxed{")[1].split("}")[0]
            turn = next(counters[answer])
            return replies[answer][turn % len(replies[answer])]
        return next(solves)

    return reply


def assert_scoring_billed(candidates: list[Candidate], ctx: Context, line: str) -> None:
    billed = Usage.total([c.scoring_usage for c in candidates])
    assert ctx.ledger.lines[line] == billed
    assert set(ctx.ledger.lines) == {line}


def scripted(script: Callable, logprobs: bool = True) -> ScriptedBackend:
    return ScriptedBackend(script=script, capabilities=Capabilities(logprobs=logprobs))


# -- judge ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "score"),
    [("Score: 7", 0.7), ("score=10", 1.0), ("8/10", 0.8), ("I rate it 3.", 0.3), ("0", 0.0)]
    + [("Score: 12", 0.5), ("no idea", 0.5), ("", 0.5)],
)
def test_verbal_rating_parsing(text: str, score: float) -> None:
    assert verbal_rating(text) == pytest.approx(score)


async def test_judge_falls_back_to_verbal_rating_without_logprobs() -> None:
    script = per_solution({"5": ["Score: 9"], "6": ["2/10"], "7": ["hard to say"]})
    ctx = Context(backend=scripted(script, logprobs=False))
    candidates = solutions("5", "6", "7")
    scores = await SCORERS.build("judge").score(PROBLEM, candidates, ctx)
    assert scores == pytest.approx([0.9, 0.2, 0.5])
    requests = ctx.backend.requests
    assert all(r.messages[0].content == RATING_SYSTEM_PROMPT for r in requests)
    assert all(r.logprobs is None and r.max_tokens == 8 and r.temperature == 0.0 for r in requests)
    assert ctx.ledger.lines["scorer:judge"].calls == 3
    assert_scoring_billed(candidates, ctx, "scorer:judge")


async def test_judge_verbal_mode_on_a_logprob_backend_and_logprob_mode_default() -> None:
    script = per_solution({"5": [Reply("Score: 6", top={"Yes": -0.1, "No": -2.0})]})
    ctx = Context(backend=scripted(script))
    assert await SCORERS.build("judge:mode=verbal").score(PROBLEM, solutions("5"), ctx) == [0.6]
    assert ctx.backend.requests[-1].logprobs is None
    [score] = await SCORERS.build("judge").score(PROBLEM, solutions("5"), ctx)
    assert score == pytest.approx(1 / (1 + 2.718281828459045**-1.9))  # P(Yes) from the top logprobs
    assert ctx.backend.requests[-1].logprobs == 10


async def test_judge_runs_on_its_own_model(monkeypatch: pytest.MonkeyPatch) -> None:
    judge_backend = scripted(per_solution({"5": ["Score: 8"], "6": ["Score: 1"]}), logprobs=False)
    built: list[dict] = []

    def make_backend(**kwargs: object) -> ScriptedBackend:
        built.append(kwargs)
        return judge_backend

    monkeypatch.setattr("ponder.backends.make_backend", make_backend)
    generator = ScriptedBackend(script=["\\boxed{6}", "\\boxed{5}"])  # declares logprobs
    result = await ponder.asolve("q", "best-of-n:n=2,scorer=[judge:model=judge-model]", backend=generator)
    assert built == [{"model": "judge-model", "base_url": None}]
    assert result.answer == "5"
    assert [c.score for c in result.candidates] == [0.1, 0.8]
    assert len(generator.requests) == 1  # the generator only solved
    assert len(judge_backend.requests) == 2  # the judge's backend judged, verbally (it has no logprobs)
    judged = Usage.total([c.scoring_usage for c in result.candidates])
    assert result.usage_by_line["scorer:judge"] == judged and judged.calls == 2


# -- genverifier ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("checks out.\nVerdict: correct", 1.0),
        ("Verdict: incorrect", 0.0),
        ("**Verdict:** **Correct**", 1.0),
        ("Verdict: the answer is not correct.", 0.0),
        ("Verdict: correct\n...on reflection\nVerdict: wrong", 0.0),
        ("VERDICT - yes", 1.0),
        ("The solution looks correct.", None),
        ("", None),
    ],
)
def test_verdict_parsing(text: str, verdict: float | None) -> None:
    assert parse_verdict(text) == verdict


async def test_genverifier_scores_the_mean_readable_verdict() -> None:
    script = per_solution(
        {
            "5": ["Recheck: 2+3=5.\nVerdict: correct", "Verdict: incorrect"],
            "6": ["Verdict: correct", "Verdict: correct"],
            "7": ["I am unsure.", "Verdict: incorrect"],  # the unreadable chain is left out
            "8": ["hmm", "hmm"],  # nothing readable: 0.5
        }
    )
    ctx = Context(backend=scripted(script), seed=3)
    candidates = solutions("5", "6", "7", "8")
    scores = await SCORERS.build("genverifier").score(PROBLEM, candidates, ctx)
    assert scores == [0.5, 1.0, 0.0, 0.5]
    requests = ctx.backend.requests
    assert all(r.n == 2 and r.temperature == 0.7 and r.seed == 3 for r in requests)
    assert all(r.messages[0].content == VERIFIER_SYSTEM_PROMPT for r in requests)
    assert_scoring_billed(candidates, ctx, "scorer:genverifier")
    assert ctx.ledger.lines["scorer:genverifier"].calls == 4  # one request of n=2 per candidate


async def test_genverifier_with_three_verifications() -> None:
    script = per_solution({"5": ["Verdict: correct", "Verdict: incorrect", "Verdict: correct"]})
    ctx = Context(backend=scripted(script))
    [score] = await SCORERS.build("genverifier:verifications=3").score(PROBLEM, solutions("5"), ctx)
    assert score == pytest.approx(2 / 3)


async def test_best_of_n_with_genverifier_reports_verifier_tokens_apart() -> None:
    script = per_solution(
        {"5": ["Verdict: incorrect"], "6": ["Verdict: correct"]}, solve=["\\boxed{5}", "\\boxed{6}"]
    )
    backend = scripted(script)
    result = await ponder.asolve("q", "best-of-n:n=4,scorer=genverifier", backend=backend)
    assert result.answer == "6"
    assert [c.score for c in result.candidates] == [0.0, 1.0, 0.0, 1.0]
    verifier = result.usage_by_line["scorer:genverifier"]
    assert verifier == Usage.total([c.scoring_usage for c in result.candidates])
    assert verifier.completion_tokens == 4 * 2 * 2  # 4 candidates × 2 chains × 2 words
    assert result.usage == result.usage_by_line["generate"] + verifier


# -- grm --------------------------------------------------------------------------------------------


def critique(score: str, logprob: float = -0.1) -> Reply:
    return Reply(f"Principles: arithmetic. Critique: fine. Score: {score}", logprob=logprob)


@pytest.mark.parametrize(
    ("text", "score"),
    [("Score: 7", 7.0), ("score: 3\n...\nScore: 9/10", 9.0), ("**Score**: 10", 10.0)]
    + [("Score: 0", None), ("Score: 11", None), ("no score", None)],
)
def test_grm_score_parsing(text: str, score: float | None) -> None:
    assert parse_score(text) == score


async def test_grm_sums_critique_scores_over_ten_k() -> None:
    script = per_solution(
        {
            "5": [critique("7")],
            "6": [critique("7"), critique("9"), Reply("I cannot judge."), critique("4")],
            "7": [Reply("no verdict")],
        }
    )
    ctx = Context(backend=scripted(script))
    candidates = solutions("5", "6", "7")
    scores = await SCORERS.build("grm").score(PROBLEM, candidates, ctx)
    assert scores == pytest.approx([28 / 40, 20 / 30, 0.5])
    assert all(r.n == 4 and r.temperature == 0.7 and r.logprobs is None for r in ctx.backend.requests)
    assert_scoring_billed(candidates, ctx, "scorer:grm")


async def test_grm_meta_filter_keeps_the_most_likely_half() -> None:
    replies = {"5": [critique("10", -2.0), critique("6", -0.1), critique("8", -0.2), critique("1", -3.0)]}
    ctx = Context(backend=scripted(per_solution(replies)))
    assert await SCORERS.build("grm:meta_filter=true").score(PROBLEM, solutions("5"), ctx) == [
        pytest.approx(14 / 20)  # 6 and 8 kept
    ]
    assert ctx.backend.requests[0].logprobs == 0
    # without logprobs the meta judgement is unavailable and every critique counts
    ctx = Context(backend=scripted(per_solution(replies), logprobs=False))
    assert await SCORERS.build("grm:meta_filter=true").score(PROBLEM, solutions("5"), ctx) == [
        pytest.approx(25 / 40)
    ]
    assert ctx.backend.requests[0].logprobs is None


# -- python:module:function -------------------------------------------------------------------------

NOT_CALLABLE = 3


def answer_is_five(problem: Problem, candidate: Candidate) -> float:
    return 1.0 if candidate.answer == "5" else 0.25


async def text_length(problem: Problem, candidate: Candidate) -> int:
    return len(candidate.text)


def says_hello(problem: Problem, candidate: Candidate) -> str:
    return "hello"


async def test_python_scorer_calls_sync_and_async_functions() -> None:
    ctx = Context(backend=ScriptedBackend())
    candidates = solutions("5", "6")
    assert await SCORERS.build(f"python:{__name__}:answer_is_five").score(PROBLEM, candidates, ctx) == [
        1,
        0.25,
    ]
    assert await SCORERS.build(f"python:{__name__}:text_length").score(PROBLEM, candidates, ctx) == [12, 12]
    assert ctx.ledger.lines == {}
    result = await ponder.asolve(
        "q",
        f"best-of-n:n=2,scorer=[python:{__name__}:answer_is_five]",
        backend=ScriptedBackend(script=["\\boxed{6}", "\\boxed{5}"]),
    )
    assert result.answer == "5"
    assert result.candidates[1].scores == {"python": 1.0}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:f", "cannot import module"),
        (f"{__name__}:missing", "has no attribute"),
        (f"{__name__}:NOT_CALLABLE", "is not callable"),
        ("just_a_module", "must be 'module:function'"),
    ],
)
def test_python_scorer_rejects_bad_targets(target: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SCORERS.build(f"python:{target}")


async def test_python_scorer_rejects_non_numbers() -> None:
    scorer = SCORERS.build(f"python:{__name__}:says_hello")
    with pytest.raises(UsageError, match="not a number"):
        await scorer.score(PROBLEM, solutions("5"), Context(backend=ScriptedBackend()))
