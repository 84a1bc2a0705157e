"""Token-confidence metrics against hand computations, and the confidence scorers on the scripted backend."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ponder
from ponder.backends import Reply, ScriptedBackend
from ponder.context import Context
from ponder.core import OptionError, Problem, TokenLogprob
from ponder.scorers import SCORERS
from ponder.scorers import token_confidence as tc

LN2 = math.log(2)


def token(*probabilities: float) -> TokenLogprob:
    top = {f"t{i}": math.log(p) for i, p in enumerate(probabilities)}
    return TokenLogprob("t0", math.log(probabilities[0]), top)


# with k = 2, the token confidences are 1.5, 2, 0 and 3 (in units of ln 2)
TRACE = [token(1 / 2, 1 / 4, 1 / 8), token(1 / 4, 1 / 4, 1 / 4), token(1.0), token(1 / 8, 1 / 8)]


def test_token_confidence_is_minus_mean_of_top_k() -> None:
    assert tc.token_confidences(TRACE, k=2) == pytest.approx([1.5 * LN2, 2 * LN2, 0.0, 3 * LN2])
    # k = 3 takes all three alternatives of the first token: (1 + 2 + 3) / 3
    assert tc.token_confidences(TRACE[:1], k=3) == pytest.approx([2 * LN2])
    # without alternatives, the chosen token's probability (−log p would rank unsure tokens as sure)
    assert tc.token_confidences([TokenLogprob("x", -0.7)], k=5) == pytest.approx([math.exp(-0.7)])


def test_trace_metrics_match_hand_computation() -> None:
    assert tc.mean_confidence(TRACE, k=2) == pytest.approx(1.625 * LN2)
    # windows of 2: (1.5+2)/2, (2+0)/2, (0+3)/2 = 1.75, 1.0, 1.5
    assert tc.group_confidences(tc.token_confidences(TRACE, 2), 2) == pytest.approx(
        [1.75 * LN2, 1.0 * LN2, 1.5 * LN2]
    )
    assert tc.lowest_group_confidence(TRACE, k=2, window=2) == pytest.approx(1.0 * LN2)
    assert tc.bottom_fraction_confidence(TRACE, k=2, window=2) == pytest.approx(1.0 * LN2)  # ceil(0.3) = 1
    assert tc.bottom_fraction_confidence(TRACE, k=2, window=2, fraction=0.5) == pytest.approx(1.25 * LN2)
    assert tc.lowest_group_confidence(TRACE, k=2, window=3) == pytest.approx(3.5 / 3 * LN2)
    # a window longer than the trace shrinks to it: one group, the mean
    assert tc.lowest_group_confidence(TRACE, k=2, window=2048) == pytest.approx(1.625 * LN2)
    assert tc.tail_confidence(TRACE, k=2, tail=2) == pytest.approx(1.5 * LN2)
    assert tc.tail_confidence(TRACE, k=2, tail=2048) == pytest.approx(1.625 * LN2)


def test_self_certainty_is_kl_from_uniform_over_renormalised_top_k() -> None:
    # token 1: top-2 (1/2, 1/4) renormalise to (2/3, 1/3): -(1/2)(ln(4/3) + ln(2/3)) = ln(9/8)/2;
    # the others are uniform over their top-k (or a single token): 0
    assert tc.self_certainty(TRACE, k=2) == pytest.approx(math.log(9 / 8) / 2 / 4)
    assert tc.self_certainty([], k=2) == 0.0


def test_empty_traces_score_zero() -> None:
    for metric in (tc.mean_confidence, tc.bottom_fraction_confidence, tc.lowest_group_confidence):
        assert metric([]) == 0.0
    assert tc.tail_confidence([]) == 0.0


logprob_lists = st.lists(
    st.lists(st.floats(min_value=-20.0, max_value=0.0), min_size=1, max_size=6), min_size=1, max_size=40
)


@given(logprob_lists, st.integers(1, 6), st.integers(1, 50))
def test_metric_properties(rows: list[list[float]], k: int, window: int) -> None:
    tokens = [TokenLogprob("x", row[0], {f"a{i}": v for i, v in enumerate(row)}) for row in rows]
    confidences = tc.token_confidences(tokens, k)
    assert all(c >= 0 for c in confidences)
    assert tc.group_confidences(confidences, 1) == pytest.approx(confidences)
    lowest = tc.lowest_group_confidence(tokens, k, window)
    bottom = tc.bottom_fraction_confidence(tokens, k, window)
    assert lowest <= bottom + 1e-9 <= max(tc.group_confidences(confidences, window)) + 2e-9
    assert tc.self_certainty(tokens, k) >= -1e-9


async def test_scorer_metrics_and_logprob_requests() -> None:
    problem = Problem("q")
    candidates = [ponder.Candidate("a b c d", logprobs=TRACE)]
    ctx = Context(backend=ScriptedBackend())
    expected = {
        "metric=mean_confidence,top_k=2": 1.625 * LN2,
        "metric=bottom10,top_k=2,window=2": 1.0 * LN2,
        "metric=lowest_window,top_k=2,window=3": 3.5 / 3 * LN2,
        "metric=tail,top_k=2,tail=2": 1.5 * LN2,
        "metric=self-certainty,top_k=2": math.log(9 / 8) / 8,
        "metric=mean": math.exp(sum(t.logprob for t in TRACE) / 4),
    }
    for options, value in expected.items():
        scorer = SCORERS.build(f"confidence:{options}")
        assert await scorer.score(problem, candidates, ctx) == [pytest.approx(value)], options
        assert scorer.needs_logprobs == (0 if options == "metric=mean" else 2)
    assert SCORERS.build("confidence").needs_logprobs == 0  # the default is unchanged
    certainty = SCORERS.build("self-certainty:top_k=2")
    assert certainty.name == "self-certainty" and certainty.needs_logprobs == 2
    assert await certainty.score(problem, candidates, ctx) == [pytest.approx(math.log(9 / 8) / 8)]
    with pytest.raises(OptionError):
        SCORERS.build("confidence:metric=loudest")


async def test_best_of_n_requests_top_k_logprobs_for_deepconf_metrics() -> None:
    peaked = {"a": math.log(0.9), "b": math.log(0.05), "c": math.log(0.05)}
    flat = {"a": math.log(0.4), "b": math.log(0.3), "c": math.log(0.3)}
    script = [Reply("\\boxed{1}", top=flat), Reply("\\boxed{2}", top=peaked), Reply("\\boxed{3}", top=flat)]
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve(
        "q", "best-of-n:n=3,scorer=[confidence:metric=bottom10,top_k=3]", backend=backend
    )
    assert backend.requests[0].logprobs == 3
    assert result.answer == "2"  # the peaked trace is the confident one
    assert set(result.usage_by_line) == {"generate"}
