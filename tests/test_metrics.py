"""Estimators against brute-force enumeration, and their edge cases."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ponder.eval.metrics import bootstrap_ci, pass_at_k, stable_seed, subsets


def brute_force_pass_at_k(correct: list[bool], k: int) -> float:
    draws = list(itertools.combinations(range(len(correct)), k))
    return sum(any(correct[i] for i in draw) for draw in draws) / len(draws)


@given(st.lists(st.booleans(), min_size=1, max_size=10), st.data())
def test_pass_at_k_equals_brute_force(correct: list[bool], data: st.DataObject) -> None:
    k = data.draw(st.integers(1, len(correct)))
    assert pass_at_k(len(correct), sum(correct), k) == pytest.approx(
        brute_force_pass_at_k(correct, k), abs=1e-12
    )


def test_pass_at_k_edges() -> None:
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 8) == 1.0  # any 8 of 10 must include one of the 3 correct
    assert pass_at_k(4, 1, 1) == 0.25
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_subsets_enumerate_exactly_when_few() -> None:
    draws = subsets(5, 2, seed=1)
    assert draws == list(itertools.combinations(range(5), 2))


def test_subsets_sample_deterministically_when_many() -> None:
    first = subsets(16, 8, seed=3, limit=50)
    assert first == subsets(16, 8, seed=3, limit=50)
    assert first != subsets(16, 8, seed=4, limit=50)
    assert len(first) == 50 and all(len(set(d)) == 8 and list(d) == sorted(d) for d in first)
    assert math.comb(16, 8) > 50


def test_majority_at_k_by_enumeration_matches_brute_force() -> None:
    # answers of 5 samples; maj@3 = fraction of 3-subsets whose plurality answer (first-seen tie-break) is "a"
    answers = ["a", "b", "a", "c", "b"]

    def plurality(draw: tuple[int, ...]) -> str:
        counts: dict[str, int] = {}
        for i in draw:
            counts[answers[i]] = counts.get(answers[i], 0) + 1
        return max(counts, key=lambda a: (counts[a], -next(j for j, i in enumerate(draw) if answers[i] == a)))

    exact = [plurality(d) == "a" for d in subsets(5, 3, seed=0)]
    brute = [plurality(d) == "a" for d in itertools.combinations(range(5), 3)]
    assert sum(exact) / len(exact) == sum(brute) / len(brute) == 0.6


def test_bootstrap_interval_brackets_the_mean_and_is_deterministic() -> None:
    values = [1.0] * 30 + [0.0] * 20
    low, high = bootstrap_ci(values, seed=7)
    assert low < 0.6 < high and low > 0.4 and high < 0.8
    assert (low, high) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci([1.0, 1.0], seed=0) == (1.0, 1.0)


def test_stable_seed_is_stable() -> None:
    assert stable_seed("x", 1) == stable_seed("x", 1) != stable_seed("x", 2)
