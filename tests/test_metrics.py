"""Estimators against brute-force enumeration, and their edge cases."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ponder.eval.figures import calls, flops
from ponder.eval.metrics import (
    bootstrap_ci,
    difference_interval,
    interpolate_log,
    outcome_interval,
    pass_at_k,
    stable_seed,
    subsets,
    wilson_interval,
)
from ponder.eval.order import natural_key, problem_ranks


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


def test_wilson_interval_matches_published_values_at_0_at_1_and_in_the_middle() -> None:
    # Brown, Cai and DasGupta (2001); statsmodels' proportion_confint(method="wilson") gives the same
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(50, 50) == pytest.approx((0.92865, 1.0), abs=1e-5)
    assert wilson_interval(30, 50, level=0.9) == pytest.approx(
        (0.48375, 0.70598), abs=1e-5
    )  # by hand, z=1.645
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_outcomes_of_0_and_1_get_the_wilson_interval_never_a_point() -> None:
    assert outcome_interval([1.0] * 50) == wilson_interval(50, 50)  # was [1, 1] from the bootstrap
    assert outcome_interval([0.0] * 50) == wilson_interval(0, 50)
    assert outcome_interval([1.0] * 30 + [0.0] * 20) == wilson_interval(30, 50)
    low, high = outcome_interval([1.0] * 6)
    assert 0.6 < low < 0.62 and high == 1.0  # six of six: the humaneval-6 run's coverage at k=4


def test_fractional_outcomes_keep_the_bootstrap_and_fall_back_to_wilson_when_all_equal() -> None:
    mixed = [0.25, 0.5, 0.75, 1.0, 0.0, 0.5] * 5
    assert outcome_interval(mixed, seed=3) == bootstrap_ci(mixed, seed=3)
    assert bootstrap_ci([0.5] * 20) == (0.5, 0.5)  # what the bootstrap alone would print
    assert outcome_interval([0.5] * 20) == wilson_interval(10, 20)
    for value in (0.0, 0.5, 1.0):  # at 0, in the middle and at 1: a real width
        low, high = outcome_interval([value] * 20)
        assert low <= value <= high and high - low > 0.15
    with pytest.raises(ValueError):
        outcome_interval([1.5])


def test_paired_differences_that_all_agree_get_an_interval_of_the_problems_that_might_not() -> None:
    bound = wilson_interval(0, 50)[1]  # 0.071: at most this share of problems could differ
    assert difference_interval([0.0] * 50) == pytest.approx((-bound, bound))  # was [0, 0]
    low, high = difference_interval([1.0] * 50)  # right on every problem the baseline missed
    assert low == pytest.approx(1.0 - 2 * bound) and high == 1.0
    assert difference_interval([-1.0] * 50) == pytest.approx((-1.0, -1.0 + 2 * bound))
    mixed = [0.0, 0.5, -1.0, 1.0] * 5
    assert difference_interval(mixed, seed=2) == bootstrap_ci(mixed, seed=2)


@given(
    st.one_of(
        st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=40),
        st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
    )
)
def test_an_outcome_interval_has_width_and_stays_in_0_1(values: list[float]) -> None:
    low, high = outcome_interval(values, seed=1)
    assert 0.0 <= low < high <= 1.0


def test_interpolation_at_an_unknown_cost_is_unknown() -> None:
    assert interpolate_log([(1.0, 0.2), (4.0, 0.6)], None) is None
    assert interpolate_log([(None, 0.2), (4.0, 0.6)], 2.0) is None


def test_calls_per_problem_read_as_counts() -> None:
    assert [calls(v) for v in (2.0, 7.214765625, 11.333, 0.25, 0.04, 0.0, 1234.0, None)] == [
        *("2", "7.2", "11.3", "0.2", "<0.1", "0", "1,234", "—"),
    ]
    assert calls(2.96) == "3" and calls(3.04) == "3"  # whole to the digit shown


def test_flops_are_unknown_where_they_were_not_measured() -> None:
    assert flops(None) == "unknown"
    assert flops(0.0, tokens=120) == "unknown"  # tokens processed, 0 FLOPs billed: model size unknown
    assert flops(0.0, tokens=0) == "0"
    assert flops(2.4e11) == "2.4e+11"


def test_problems_follow_the_stored_dataset_position_else_their_numbered_ids() -> None:
    def record(problem_id: str, index: int | None = None) -> dict:
        problem: dict = {"id": problem_id}
        if index is not None:
            problem["index"] = index
        return {"problem": problem}

    indexed = [record("b", 0), record("c", 2), record("a", 1), record("b", 0)]
    assert list(problem_ranks(indexed)) == ["b", "a", "c"]
    assert problem_ranks(indexed) == {"b": 0, "a": 1, "c": 2}
    legacy = [record(f"gsm_symbolic-0-{i}") for i in (10, 2, 1, 0)]
    assert list(problem_ranks(legacy)) == [f"gsm_symbolic-0-{i}" for i in (0, 1, 2, 10)]
    mixed = [record("p-10", 0), record("p-2")]  # a run resumed across the change: one order for all
    assert list(problem_ranks(mixed)) == ["p-2", "p-10"]
    assert natural_key("HumanEval/10") > natural_key("HumanEval/9")
