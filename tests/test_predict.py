"""``ponder predict``: the scaling laws recover known parameters, validation errors, the verifier model,
tiny pass rates, and the command on a small run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from ponder.cli.main import main
from ponder.eval.metrics import mean, pass_at_k
from ponder.eval.predict import (
    PREDICT_FILE,
    AccuracyLaw,
    CoverageLaw,
    Curve,
    Laws,
    bank_coverage,
    clopper_pearson,
    fit_accuracy,
    fit_coverage,
    optimal_samples,
    pass_rates,
    predict_curve,
    resampling_outcome,
    sample_banks,
    saturation,
    verifier_ceiling,
    verifier_model,
    zero_success_bound,
)
from ponder.eval.runner import write_summary

BUDGETS = [1, 2, 4, 8, 16]


def test_the_coverage_fit_recovers_a_and_b_of_an_exponentiated_power_law() -> None:
    law = CoverageLaw(a=-0.9, b=-0.45)
    fitted, clipped = fit_coverage([(k, law.at(k)) for k in BUDGETS], problems=50)
    assert fitted.a == pytest.approx(-0.9, rel=1e-9)
    assert fitted.b == pytest.approx(-0.45, rel=1e-9)
    assert clipped == []


def test_a_coverage_of_zero_or_one_is_moved_half_a_problem_inside_and_named() -> None:
    fitted, clipped = fit_coverage([(1, 0.0), (2, 0.5), (4, 1.0)], problems=10)
    assert clipped == [1, 4]
    assert math.isfinite(fitted.a) and math.isfinite(fitted.b)
    assert 0.0 < fitted.at(1) < fitted.at(4) < 1.0  # still increasing, never exactly 0 or 1


def test_the_accuracy_fit_recovers_its_gain_per_doubling() -> None:
    fitted = fit_accuracy([(k, 0.4 + 0.03 * math.log2(k)) for k in BUDGETS])
    assert fitted.intercept == pytest.approx(0.4)
    assert fitted.slope == pytest.approx(0.03)


def test_predicted_accuracy_never_exceeds_the_predicted_coverage() -> None:
    laws = Laws(CoverageLaw(a=-1.0, b=-0.5), AccuracyLaw(intercept=0.3, slope=0.2))
    for budget in (1, 16, 1024, 2**20):
        assert laws.accuracy_at(budget) <= laws.coverage_at(budget) + 1e-12
    assert laws.accuracy_at(2**20) == pytest.approx(laws.coverage_at(2**20))


def test_saturation_is_the_first_budget_whose_doubling_gains_less_than_the_threshold() -> None:
    law = CoverageLaw(a=-0.9, b=-0.45)
    found = saturation(law.at, gain=0.01)
    assert found is not None
    assert law.at(2 * found) - law.at(found) < 0.01 <= law.at(found) - law.at(found // 2)
    assert saturation(lambda k: 0.02 * math.log2(k), gain=0.01) is None  # a straight line never saturates


def _curve(coverage: dict[int, float], accuracy: dict[int, float], problems: int = 20) -> Curve:
    """A curve whose problems all share the given values (so every bootstrap draw is the same)."""
    names = [f"p{i}" for i in range(problems)]
    budgets = sorted(coverage)
    return Curve(
        "best-of-n",
        budgets,
        names,
        {k: dict.fromkeys(names, coverage[k]) for k in budgets},
        {k: dict.fromkeys(names, accuracy[k]) for k in budgets},
        {k: 100.0 * k for k in budgets},
    )


def test_validation_fits_on_a_quarter_of_the_largest_budget_and_reports_the_error() -> None:
    law = CoverageLaw(a=-0.9, b=-0.45)
    coverage = {k: law.at(k) for k in BUDGETS}
    coverage[16] = law.at(16) - 0.05  # the largest budget falls short of the law by five points
    accuracy = {k: 0.4 + 0.02 * math.log2(k) for k in BUDGETS}
    accuracy[16] = 0.6
    result = predict_curve(_curve(coverage, accuracy), seed=0, iterations=50, gain=0.01)
    validation = result["validation"]
    assert validation["fit_budgets"] == [1, 2, 4] and validation["budget"] == 16
    assert validation["coverage"]["value"] == pytest.approx(law.at(16))
    assert validation["coverage"]["error"] == pytest.approx(0.05)
    assert validation["coverage"]["measured"] == pytest.approx(law.at(16) - 0.05)
    assert validation["accuracy"]["value"] == pytest.approx(0.48)
    assert validation["accuracy"]["error"] == pytest.approx(0.48 - 0.6)
    assert validation["accuracy"]["inside"] is False  # identical problems: the interval is the point


def test_validation_needs_two_budgets_at_most_a_quarter_of_the_largest() -> None:
    result = predict_curve(_curve({1: 0.4, 2: 0.5, 4: 0.6}, {1: 0.4, 2: 0.45, 4: 0.5}), 0, 20, 0.01)
    assert result["validation"] is None
    assert [p["budget"] for p in result["predictions"]] == [8, 16, 32]


def test_extrapolation_intervals_widen_when_problems_differ() -> None:
    names = [f"p{i}" for i in range(30)]  # problem p{i} solved by i of 30 samples
    coverage = {k: {f"p{i}": pass_at_k(30, i, k) for i in range(30)} for k in BUDGETS}
    accuracy = {k: {f"p{i}": i / 30 for i in range(30)} for k in BUDGETS}
    curve = Curve("vote", BUDGETS, names, coverage, accuracy, {k: 10.0 * k for k in BUDGETS})
    result = predict_curve(curve, seed=3, iterations=200, gain=0.01)
    for point in result["predictions"]:
        for key in ("coverage", "accuracy"):
            assert point[key]["low"] < point[key]["value"] < point[key]["high"]
        assert point["tokens"] == pytest.approx(10.0 * point["budget"])
    again = predict_curve(curve, seed=3, iterations=200, gain=0.01)
    assert again == result  # seeded: deterministic


def test_a_perfect_verifier_makes_resampling_reach_coverage() -> None:
    rates = [0.0, 0.1, 0.5, 1.0]
    right, wrong = resampling_outcome(rates, true_positive=1.0, false_positive=0.0, samples=8)
    assert right == pytest.approx(mean([1 - (1 - r) ** 8 for r in rates]))
    assert wrong == 0.0
    assert verifier_ceiling(rates, 1.0, 0.0) == pytest.approx(0.75)  # every problem with any success


def test_false_positives_bound_accuracy_below_coverage() -> None:
    rates = [0.05, 0.3, 0.9]
    ceiling = verifier_ceiling(rates, true_positive=0.9, false_positive=0.2)
    expected = mean([r * 0.9 / (r * 0.9 + (1 - r) * 0.2) for r in rates])
    assert ceiling == pytest.approx(expected)
    right, _ = resampling_outcome(rates, 0.9, 0.2, samples=1000)
    assert right == pytest.approx(ceiling, abs=1e-9)


def test_the_optimal_number_of_samples_maximises_the_expected_utility() -> None:
    rates = [0.02, 0.05, 0.2, 0.6, 0.95]
    best, utility = optimal_samples(rates, true_positive=0.8, false_positive=0.1, wrong_cost=2.0)

    def utility_of(samples: int) -> float:
        right, wrong = resampling_outcome(rates, 0.8, 0.1, samples)
        return right - 2.0 * wrong

    scanned = max(range(0, 200), key=lambda k: (round(utility_of(k), 12), -k))
    assert best == scanned and 1 < best < 200
    assert utility == pytest.approx(utility_of(best))


def test_abstaining_is_optimal_when_every_wrong_answer_costs_more_than_a_right_one_gains() -> None:
    best, utility = optimal_samples([0.3], true_positive=1.0, false_positive=1.0, wrong_cost=1.0)
    assert (best, utility) == (0, 0.0)


def test_a_problem_never_solved_is_bounded_by_the_rule_of_three() -> None:
    assert zero_success_bound(16) == pytest.approx(1 - 0.05 ** (1 / 16))
    assert zero_success_bound(3000) == pytest.approx(3 / 3000, rel=0.01)
    low, high = clopper_pearson(0, 16)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 16), rel=1e-9)


def test_clopper_pearson_matches_its_definition() -> None:
    low, high = clopper_pearson(3, 40)

    def tail(rate: float, at_least: int) -> float:
        return sum(math.comb(40, i) * rate**i * (1 - rate) ** (40 - i) for i in range(at_least, 41))

    assert tail(low, 3) == pytest.approx(0.025, rel=1e-6)
    assert 1 - tail(high, 4) == pytest.approx(0.025, rel=1e-6)


# ---------------------------------------------------------------- a run directory


FAMILY = "best-of-n:scorer=judge"


def _candidate(correct: bool, score: float) -> dict[str, Any]:
    usage = {
        "calls": 1,
        "prompt_tokens": 40,
        "cached_prompt_tokens": 0,
        "completion_tokens": 60,
        "seconds": 0.1,
        "flops": 0.0,
        "total_tokens": 100,
    }
    return {
        "text": f"so \\boxed{{{1 if correct else 2}}}",
        "answer": "1" if correct else "2",
        "score": score,
        "scores": {"judge": score},
        "correct": correct,
        "finish_reason": "stop",
        "completion_tokens": 60,
        "usage": usage,
        "scoring_usage": {**usage, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _record(problem: int, outcomes: list[bool]) -> dict[str, Any]:
    candidates = [_candidate(right, 0.9 if right or i % 3 == 0 else 0.2) for i, right in enumerate(outcomes)]
    return {
        "strategy": f"{FAMILY},n={len(outcomes)}",
        "family": FAMILY,
        "seed": 0,
        "budget": None,
        "problem": {"id": f"p{problem}", "question": f"q{problem}", "reference": "1"},
        "answer": "1" if any(outcomes) else "2",
        "correct": any(outcomes),
        "candidates": candidates,
        "votes": {},
        "usage": candidates[0]["usage"],
    }


def _outcomes(problem: int) -> list[bool]:
    """16 samples; problem 0 is never solved, problem 1 once (at the 6th sample), others more often."""
    if problem == 0:
        return [False] * 16
    if problem == 1:
        return [i == 5 for i in range(16)]
    return [(i * problem) % 7 < problem % 5 + 1 for i in range(16)]


@pytest.fixture
def run_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    records = [_record(problem, _outcomes(problem)) for problem in range(12)]
    (directory / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    manifest = {"dataset": "jsonl:tiny", "model": "m", "budgets": BUDGETS, "strategies": [FAMILY]}
    (directory / "run.json").write_text(json.dumps(manifest))
    write_summary(directory)  # the eval's own summary: rows per budget with per-problem accuracy
    return directory


def test_coverage_per_problem_is_the_unbiased_pass_at_k_of_each_bank(run_directory: Path) -> None:
    records = [json.loads(line) for line in (run_directory / "records.jsonl").read_text().splitlines()]
    coverage = bank_coverage(records, FAMILY, BUDGETS)
    for problem in range(12):
        outcomes = _outcomes(problem)
        for budget in BUDGETS:
            assert coverage[budget][f"p{problem}"] == pytest.approx(pass_at_k(16, sum(outcomes), budget))


def test_pass_rates_of_rarely_solved_problems(run_directory: Path) -> None:
    records = [json.loads(line) for line in (run_directory / "records.jsonl").read_text().splitlines()]
    rates = pass_rates(sample_banks(records)[FAMILY], FAMILY)
    assert rates is not None
    assert rates["samples_per_problem"] == 16
    assert rates["zero_success_problems"] == 1
    assert rates["rare_problems"] == 2  # p0 (0/16) and p1 (1/16): below 10%
    assert rates["zero_success_bound"] == pytest.approx(zero_success_bound(16))
    assert rates["mean_samples_to_first_success"] == 6
    assert rates["rare_pooled_rate"]["value"] == pytest.approx(1 / 32)
    solved = next(entry for entry in rates["per_problem"] if entry["problem"] == "p1")
    assert (solved["first_success"], solved["rate"]) == (6, 1 / 16)


def test_the_verifier_rates_are_read_off_the_scored_candidates(run_directory: Path) -> None:
    records = [json.loads(line) for line in (run_directory / "records.jsonl").read_text().splitlines()]
    verifier = verifier_model(
        sample_banks(records)[FAMILY], FAMILY, threshold=0.5, wrong_cost=1.0, seed=0, iterations=20
    )
    wrong = [(i, right) for p in range(12) for i, right in enumerate(_outcomes(p)) if not right]
    assert verifier["true_positive_rate"] == 1.0  # every correct candidate scores 0.9
    expected = sum(1 for i, _ in wrong if i % 3 == 0) / len(wrong)
    assert verifier["false_positive_rate"]["value"] == pytest.approx(expected)
    assert verifier["top_scored_wrong_rate"] is not None


def test_predict_prints_json_with_every_section(run_directory: Path, capsys) -> None:
    assert main(["predict", str(run_directory), "--json", "--no-plot"]) == 0
    prediction = json.loads(capsys.readouterr().out)
    assert set(prediction) == {"run", "settings", "curves", "verifiers", "pass_rates"}
    curve = prediction["curves"][0]
    assert curve["strategy"] == FAMILY and curve["budgets"] == BUDGETS
    assert set(curve) >= {
        "coverage_fit",
        "accuracy_fit",
        "saturation",
        "predictions",
        "validation",
        "measured",
        "fitted",
    }
    assert set(curve["coverage_fit"]) == {"a", "b", "clipped"}
    assert [p["budget"] for p in curve["predictions"]] == [32, 64, 128]
    assert set(curve["validation"]) == {"fit_budgets", "budget", "coverage", "accuracy"}
    assert set(prediction["verifiers"][0]) >= {"false_positive_rate", "ceiling", "optimal_samples"}
    assert prediction["pass_rates"][0]["zero_success_problems"] == 1
    assert not (run_directory / PREDICT_FILE).exists()


def test_predict_draws_its_plot_into_the_run_directory(run_directory: Path, capsys) -> None:
    assert main(["predict", str(run_directory), "--wrong-cost", "2"]) == 0
    out = capsys.readouterr().out
    assert "scaling fits" in out and "optimal samples" in out and "rarely solved" in out
    assert (run_directory / PREDICT_FILE).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing", lambda tmp: tmp])
def test_a_missing_or_empty_run_directory_is_one_line_of_error(tmp_path: Path, make, capsys) -> None:
    assert main(["predict", str(make(tmp_path))]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "summary.json" in error and "\n" not in error
