"""Selection rules: argmax, weighted vote, vote among the top fraction; in best-of-n and offline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ponder
from ponder.backends import Reply, ScriptedBackend
from ponder.core import Candidate, OptionError
from ponder.scorers import argmax, majority_vote, top_fraction_vote, weighted_vote
from ponder.strategies import STRATEGIES


def pool(*answers: str | None) -> list[Candidate]:
    return [Candidate(text=f"\\boxed{{{a}}}", answer=a) for a in answers]


def test_argmax_prefers_answers_then_score_then_earlier() -> None:
    candidates = pool("1", None, "2", "3")
    assert argmax(candidates, [0.2, 0.9, 0.5, 0.5]).winner == 2
    assert argmax(candidates, [0.2, 0.9, 0.5, 0.5]).answer == "2"
    assert argmax([], []).winner is None
    assert argmax(pool(None, None), [0.1, 0.3]).winner == 1


def test_weighted_vote_sums_scores_per_equivalence_class() -> None:
    candidates = pool("5", "6", "5.0", "6", "7")
    vote = weighted_vote(candidates, [0.1, 0.4, 0.2, 0.3, 0.6])
    assert (vote.answer, vote.winner) == ("6", 1)
    assert vote.table == pytest.approx({"6": 0.7, "7": 0.6, "5": 0.3})


def test_top_fraction_vote_filters_then_votes() -> None:
    candidates = pool("5", "5", "5", "6", "6", None)
    scores = [0.1, 0.2, 0.3, 0.9, 0.8, 1.0]
    # the plain vote says 5; the top half by score (6, 6 and the answerless one ranked last: 6, 6, 5)
    assert majority_vote(candidates).answer == "5"
    vote = top_fraction_vote(candidates, scores, 0.5)
    assert (vote.answer, vote.winner, vote.table) == ("6", 3, {"6": 2.0, "5": 1.0})
    assert top_fraction_vote(candidates, scores, 1.0).answer == "5"
    assert top_fraction_vote(candidates, scores, 0.01).winner == 3  # at least one is kept
    assert top_fraction_vote([], [], 0.5).winner is None
    with pytest.raises(ValueError):
        top_fraction_vote(candidates, scores, 0.0)


answers = st.lists(st.sampled_from(["1", "2", "2.0", "3", "\\frac{6}{2}", None]), min_size=0, max_size=12)


@given(answers, st.floats(min_value=0.01, max_value=100.0))
def test_weighted_vote_with_equal_weights_is_majority_vote(values: list[str | None], weight: float) -> None:
    candidates = pool(*values)
    weighted = weighted_vote(candidates, [weight] * len(candidates))
    plain = majority_vote(candidates)
    assert (weighted.answer, weighted.winner) == (plain.answer, plain.winner)
    assert list(weighted.table) == list(plain.table)


@given(answers, st.lists(st.floats(min_value=-5, max_value=5), min_size=12, max_size=12))
def test_top_fraction_of_one_is_majority_vote(values: list[str | None], scores: list[float]) -> None:
    candidates = pool(*values)
    assert top_fraction_vote(candidates, scores[: len(values)], 1.0) == majority_vote(candidates)


SCRIPT = [  # answer 5 is the majority; 6 carries the single highest confidence
    Reply("\\boxed{5}", logprob=-0.3),
    Reply("\\boxed{6}", logprob=-0.1),
    Reply("\\boxed{5}", logprob=-0.4),
    Reply("\\boxed{6}", logprob=-2.0),
    Reply("\\boxed{5}", logprob=-0.5),
]


@pytest.mark.parametrize(
    ("aggregate", "answer"),
    [
        ("", "6"),
        (",aggregate=argmax", "6"),
        (",aggregate=weighted", "5"),
        (",aggregate=top,keep=0.2", "6"),  # the top one
        (",aggregate=top,keep=0.6", "5"),  # the top three: 6, 5, 5
    ],
)
async def test_best_of_n_aggregates_and_reselects_offline(aggregate: str, answer: str) -> None:
    spec = f"best-of-n:n=5,scorer=confidence{aggregate}"
    result = await ponder.asolve("q", spec, backend=ScriptedBackend(script=SCRIPT))
    assert result.answer == answer
    # the eval's sample bank: stored candidates (no logprobs) re-selected by a freshly built strategy
    stored = [Candidate.from_dict(c.to_dict()) for c in result.candidates]
    assert STRATEGIES.build(spec).select(stored).answer == answer


def test_best_of_n_defaults_are_unchanged() -> None:
    strategy = STRATEGIES.build("best-of-n")
    assert strategy.spec == "best-of-n"
    assert (strategy.options.aggregate, strategy.options.keep) == ("argmax", 0.5)
    with pytest.raises(OptionError):
        STRATEGIES.build("best-of-n:aggregate=median")
