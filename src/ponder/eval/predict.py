"""Scaling laws read off an eval run: how far more samples would go, where they stop paying, and what an
imperfect verifier allows (``ponder predict RUN_DIR``).

Four models, each from the paper that proposed it, each fitted to the run's own records:

- **Coverage** (pass@k) as an exponentiated power law, ``coverage(k) = exp(a·k^b)`` with a, b < 0
  ("Large Language Monkeys", Brown et al., 2024), fitted as they fit it: a straight line through
  ``log(−log coverage)`` against ``log k``. A coverage of 0 or 1 has no logarithm there; it is moved half
  a problem inside (``1/(2·problems)`` from the edge) and the budget is listed as clipped.
- **Accuracy** linear in ``log₂ k`` (gain per doubling), and never above the fitted coverage, since no
  selection rule picks a correct answer that was never sampled.
- **Optimal samples under an imperfect verifier** ("Inference Scaling fLaws", Stroebl, Kapoor and
  Narayanan, 2024): samples are drawn until the verifier accepts one, at most K. A sample of problem i is
  correct with probability pᵢ (its share of correct samples); the verifier accepts a correct one with the
  true-positive rate and a wrong one with the false-positive rate measured on the stored scored candidates
  (accepted: score ≥ a threshold). Returning a correct answer gains 1, a wrong one costs ``wrong_cost``,
  abstaining (no sample accepted) 0. Accuracy is bounded by ``mean pᵢ·TPR / (pᵢ·TPR + (1−pᵢ)·FPR)``
  however many samples are drawn, and the K with the highest expected utility is the optimal one.
- **Tiny pass rates** ("Predicting Emergent Abilities with Infinite Resolution Evaluation", Hu et al.,
  2023, PassUntil): for problems with few or no correct samples, the per-sample pass rate and its exact
  (Clopper–Pearson) interval, the samples drawn until the first success, and, for problems never solved,
  the rate that many failures still allow.

Intervals are percentile bootstraps over problems: the problems are resampled and the law refitted, so an
interval says what another draw of equally many problems could have given, not what the model got wrong.
Every fit is validated on the run itself: fitted on budgets up to a quarter of the largest, it predicts
the largest, and the error against the measured value is reported.
"""

from __future__ import annotations

import io
import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ponder.core.errors import UsageError
from ponder.eval.identity import StrategyId
from ponder.eval.metrics import mean, pass_at_k, stable_seed
from ponder.eval.report import check_plotting, load_records, load_summary, rows_by_strategy
from ponder.strategies import STRATEGIES

PREDICT_FILE = "predict.png"

#: budgets predicted beyond the largest measured one, as multiples of it
EXTRAPOLATION = (2, 4, 8)
#: a strategy saturates where a doubling of its budget gains less than this (one point of accuracy)
SATURATION_GAIN = 0.01
#: the largest budget searched for saturation; beyond it a curve is reported as not saturating
SATURATION_HORIZON = 2**30
BOOTSTRAP_ITERATIONS = 1000
LEVEL = 0.95
#: a candidate whose score is at least this is accepted by the verifier (scores in [0, 1])
VERIFIER_THRESHOLD = 0.5
#: the utility of a wrong answer returned, against 1 for a right one and 0 for abstaining
WRONG_COST = 1.0
#: the most samples the verifier model considers when it looks for the optimal number
MAX_VERIFIED_SAMPLES = 1024
#: problems whose measured pass rate is below this count as rarely solved (PassUntil's regime)
RARE_RATE = 0.1


# ---------------------------------------------------------------- the laws


@dataclass(frozen=True)
class CoverageLaw:
    """``coverage(k) = exp(a·k^b)``: Brown et al.'s exponentiated power law."""

    a: float
    b: float

    def at(self, budget: float) -> float:
        return math.exp(self.a * budget**self.b)


@dataclass(frozen=True)
class AccuracyLaw:
    """``accuracy(k) = intercept + slope·log₂ k``: a constant gain per doubling of the budget."""

    intercept: float
    slope: float

    def at(self, budget: float) -> float:
        return self.intercept + self.slope * math.log2(budget)


@dataclass(frozen=True)
class Laws:
    """A curve's two fitted laws; its accuracy is capped by its coverage (and kept within [0, 1])."""

    coverage: CoverageLaw
    accuracy: AccuracyLaw

    def coverage_at(self, budget: float) -> float:
        return self.coverage.at(budget)

    def accuracy_at(self, budget: float) -> float:
        return min(max(self.accuracy.at(budget), 0.0), 1.0, self.coverage.at(budget))


def least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Intercept and slope of the least-squares line through the points (at least two distinct xs)."""
    x_mean, y_mean = mean(xs), mean(ys)
    spread = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / spread
    return y_mean - slope * x_mean, slope


def fit_coverage(points: Sequence[tuple[int, float]], problems: int) -> tuple[CoverageLaw, list[int]]:
    """The law through (budget, coverage) points, fitted in log(−log) space, and the budgets clipped.

    A coverage of exactly 0 or 1 has no place on that scale; it is moved half a problem inside the range
    (the smallest change a run of ``problems`` problems could not tell apart), and named as clipped.
    """
    edge = 1.0 / (2 * max(problems, 1))
    xs, ys, clipped = [], [], []
    for budget, coverage in points:
        bounded = min(max(coverage, edge), 1.0 - edge)
        if bounded != coverage:
            clipped.append(budget)
        xs.append(math.log(budget))
        ys.append(math.log(-math.log(bounded)))
    intercept, slope = least_squares(xs, ys)
    return CoverageLaw(a=-math.exp(intercept), b=slope), clipped


def fit_accuracy(points: Sequence[tuple[int, float]]) -> AccuracyLaw:
    """The least-squares line of accuracy against log₂ budget."""
    intercept, slope = least_squares([math.log2(k) for k, _ in points], [value for _, value in points])
    return AccuracyLaw(intercept, slope)


def saturation(curve: Callable[[float], float], gain: float = SATURATION_GAIN) -> int | None:
    """The first power-of-two budget from which one more doubling gains less than ``gain``; None if the
    curve still gains that much at ``SATURATION_HORIZON``."""
    budget = 1
    while budget <= SATURATION_HORIZON:
        if curve(2 * budget) - curve(budget) < gain:
            return budget
        budget *= 2
    return None


def percentile_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap values (the same percentiles as ``bootstrap_ci``)."""
    ordered = sorted(values)
    last = len(ordered) - 1
    tail = (1.0 - level) / 2.0
    return ordered[int(math.floor(tail * last))], ordered[int(math.ceil((1.0 - tail) * last))]


# ---------------------------------------------------------------- curves from a run


@dataclass
class Curve:
    """One strategy's measured points, per problem: what the fits and their bootstraps read."""

    name: str
    budgets: list[int]
    problems: list[str]
    coverage: dict[int, dict[str, float]]
    accuracy: dict[int, dict[str, float]]
    tokens: dict[int, float]

    def means(self, problems: Sequence[str]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """Mean coverage and accuracy per budget over ``problems`` (repeats count: a bootstrap draw)."""
        coverage = [(k, mean([self.coverage[k][p] for p in problems])) for k in self.budgets]
        accuracy = [(k, mean([self.accuracy[k][p] for p in problems])) for k in self.budgets]
        return coverage, accuracy

    def fit(self, problems: Sequence[str], budgets: Sequence[int] | None = None) -> tuple[Laws, list[int]]:
        """Both laws on ``problems`` and the given budgets (all by default), and the clipped budgets."""
        coverage, accuracy = self.means(problems)
        if budgets is not None:
            coverage = [point for point in coverage if point[0] in budgets]
            accuracy = [point for point in accuracy if point[0] in budgets]
        coverage_law, clipped = fit_coverage(coverage, len(problems))
        return Laws(coverage_law, fit_accuracy(accuracy)), clipped

    def bootstrap(self, budgets: Sequence[int], seed: int, iterations: int) -> list[Laws]:
        """The laws refitted on problems resampled with replacement (paired across budgets)."""
        rng = random.Random(stable_seed(seed, self.name, tuple(budgets)))
        size = len(self.problems)
        return [self.fit(rng.choices(self.problems, k=size), budgets)[0] for _ in range(iterations)]


def bank_coverage(
    records: list[dict[str, Any]], family: str, budgets: Sequence[int]
) -> dict[int, dict[str, float]]:
    """Per budget, each problem's coverage (pass@k, averaged over seeds), as the summary computes it: the
    unbiased estimator over a sample bank, or whether any candidate was correct in a run at one budget."""
    values: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.get("family") != family:
            continue
        problem = str(record["problem"]["id"])
        correct = [bool(c.get("correct")) for c in record.get("candidates") or []]
        if record.get("budget") is not None:
            values[int(record["budget"])][problem].append(float(any(correct)))
            continue
        for budget in budgets:
            if 1 <= budget <= len(correct):
                values[budget][problem].append(pass_at_k(len(correct), sum(correct), budget))
    return {budget: {p: mean(v) for p, v in per_problem.items()} for budget, per_problem in values.items()}


def curves_of(summary: dict[str, Any], records: list[dict[str, Any]]) -> list[Curve]:
    """The run's curves with at least two budgets, on the problems measured at every budget."""
    curves = []
    for name, rows in rows_by_strategy(summary).items():
        rows = [row for row in rows if row.get("budget") is not None]
        if len({row["budget"] for row in rows}) < 2:
            continue
        if any("per_problem" not in row for row in rows):
            raise UsageError(f"summary rows of {name} carry no per_problem values: run ponder report first")
        budgets = [int(row["budget"]) for row in rows]
        coverage = bank_coverage(records, StrategyId.parse(name).family, budgets)
        accuracy = {
            int(row["budget"]): {p: v["accuracy"] for p, v in row["per_problem"].items()} for row in rows
        }
        common = set.intersection(*(set(accuracy[k]) & set(coverage.get(k, {})) for k in budgets))
        if not common:
            continue
        tokens = {int(row["budget"]): float(row.get("mean_tokens") or 0.0) for row in rows}
        curves.append(Curve(name, budgets, sorted(common), coverage, accuracy, tokens))
    return curves


# ---------------------------------------------------------------- predictions


def _point(value: float, draws: Sequence[float]) -> dict[str, float]:
    low, high = percentile_interval(draws)
    return {"value": value, "low": low, "high": high}


def _validation(curve: Curve, seed: int, iterations: int) -> dict[str, Any] | None:
    """Fit on budgets up to a quarter of the largest, predict the largest, compare with its measurement."""
    largest = max(curve.budgets)
    early = [k for k in curve.budgets if k <= largest / 4]
    if len(early) < 2:
        return None
    laws, _ = curve.fit(curve.problems, early)
    draws = curve.bootstrap(early, seed, iterations)
    coverage, accuracy = curve.means(curve.problems)
    measured = {"coverage": dict(coverage)[largest], "accuracy": dict(accuracy)[largest]}
    result: dict[str, Any] = {"fit_budgets": early, "budget": largest}
    for key, predict in (("coverage", Laws.coverage_at), ("accuracy", Laws.accuracy_at)):
        point = _point(predict(laws, largest), [predict(draw, largest) for draw in draws])
        point["measured"] = measured[key]
        point["error"] = point["value"] - measured[key]
        point["inside"] = point["low"] <= measured[key] <= point["high"]
        result[key] = point
    return result


def _grid(largest: int) -> list[float]:
    """Budgets from 1 to 8× the largest, 4 per doubling: where the fitted curves are tabulated (plots)."""
    top = math.log2(largest * max(EXTRAPOLATION))
    steps = round(top * 4)
    return [2 ** (top * i / steps) for i in range(steps + 1)]


def predict_curve(curve: Curve, seed: int, iterations: int, gain: float) -> dict[str, Any]:
    """The fits of one curve, its extrapolation with intervals, its saturation budgets and its validation."""
    laws, clipped = curve.fit(curve.problems)
    draws = curve.bootstrap(curve.budgets, seed, iterations)
    largest = max(curve.budgets)
    per_sample_tokens = curve.tokens[largest] / largest
    coverage, accuracy = curve.means(curve.problems)
    predictions = []
    for multiple in EXTRAPOLATION:
        budget = largest * multiple
        predictions.append(
            {
                "budget": budget,
                "coverage": _point(laws.coverage_at(budget), [d.coverage_at(budget) for d in draws]),
                "accuracy": _point(laws.accuracy_at(budget), [d.accuracy_at(budget) for d in draws]),
                "tokens": per_sample_tokens * budget,  # proportional to the largest measured budget
            }
        )
    return {
        "strategy": curve.name,
        "problems": len(curve.problems),
        "budgets": curve.budgets,
        "measured": [
            {"budget": k, "coverage": c, "accuracy": a, "tokens": curve.tokens[k]}
            for (k, c), (_, a) in zip(coverage, accuracy, strict=True)
        ],
        "coverage_fit": {"a": laws.coverage.a, "b": laws.coverage.b, "clipped": clipped},
        "accuracy_fit": {"intercept": laws.accuracy.intercept, "gain_per_doubling": laws.accuracy.slope},
        "saturation": {
            "coverage": saturation(laws.coverage_at, gain),
            "accuracy": saturation(laws.accuracy_at, gain),
        },
        "predictions": predictions,
        "fitted": [
            {
                "budget": budget,
                "coverage": _point(laws.coverage_at(budget), [d.coverage_at(budget) for d in draws]),
                "accuracy": _point(laws.accuracy_at(budget), [d.accuracy_at(budget) for d in draws]),
            }
            for budget in _grid(largest)
        ],
        "validation": _validation(curve, seed, iterations),
    }


# ---------------------------------------------------------------- verifier (fLaws)


def resampling_outcome(
    rates: Sequence[float], true_positive: float, false_positive: float, samples: int
) -> tuple[float, float]:
    """Expected rates of right and wrong answers returned by drawing up to ``samples`` samples until the
    verifier accepts one (Stroebl et al.'s resampling model), averaged over problems of pass rates ``rates``
    (the model's name for them: p)."""
    right, wrong = [], []
    for rate in rates:
        accept_right, accept_wrong = rate * true_positive, (1.0 - rate) * false_positive
        accepted = accept_right + accept_wrong
        share = 1.0 - (1.0 - accepted) ** samples if accepted > 0 else 0.0
        right.append(accept_right / accepted * share if accepted > 0 else 0.0)
        wrong.append(accept_wrong / accepted * share if accepted > 0 else 0.0)
    return mean(right), mean(wrong)


def optimal_samples(
    rates: Sequence[float], true_positive: float, false_positive: float, wrong_cost: float
) -> tuple[int, float]:
    """The number of samples (0: abstain) with the highest expected utility, and that utility.

    Each problem adds ``weight · (1 − missed^K)`` to the utility of K samples, where ``missed`` is the
    chance that a sample is rejected; the scan stops once every ``missed^K`` is negligible (more samples
    change nothing), or at ``MAX_VERIFIED_SAMPLES``.
    """
    terms = []
    for rate in rates:
        accept_right, accept_wrong = rate * true_positive, (1.0 - rate) * false_positive
        accepted = accept_right + accept_wrong
        if accepted > 0:
            terms.append(((accept_right - wrong_cost * accept_wrong) / accepted / len(rates), 1.0 - accepted))
    best, best_utility, utility = 0, 0.0, 0.0
    for samples in range(1, MAX_VERIFIED_SAMPLES + 1):
        utility = sum(weight * (1.0 - missed**samples) for weight, missed in terms)
        if utility > best_utility + 1e-12:
            best, best_utility = samples, utility
        if all(missed**samples < 1e-12 for _, missed in terms):
            break
    return best, best_utility


def verifier_ceiling(rates: Sequence[float], true_positive: float, false_positive: float) -> float:
    """The accuracy resampling tends to with unlimited samples: each problem's share of accepted samples
    that are correct (a problem whose samples are never accepted contributes 0)."""
    shares = []
    for rate in rates:
        accepted = rate * true_positive + (1.0 - rate) * false_positive
        shares.append(rate * true_positive / accepted if accepted > 0 else 0.0)
    return mean(shares)


@dataclass
class ScoredProblem:
    """One problem's scored candidates pooled over seeds: correctness and acceptance counts."""

    correct: int = 0
    wrong: int = 0
    accepted_correct: int = 0
    accepted_wrong: int = 0


def _rates(problems: Sequence[ScoredProblem]) -> tuple[list[float], float, float]:
    """Pass rates per problem and the pooled true- and false-positive rates of the verifier."""
    correct = sum(p.correct for p in problems)
    wrong = sum(p.wrong for p in problems)
    true_positive = sum(p.accepted_correct for p in problems) / correct if correct else 0.0
    false_positive = sum(p.accepted_wrong for p in problems) / wrong if wrong else 0.0
    return [p.correct / (p.correct + p.wrong) for p in problems], true_positive, false_positive


def sample_banks(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The records of sample-banked strategies (independent samples, the strategy selects among them),
    by family: the only candidates the verifier and pass-rate models, which assume independent samples,
    can read. A search's finished candidates or a debate's rounds are not such samples."""
    banked: dict[str, bool] = {}
    banks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        spec = str(record.get("strategy"))
        if spec not in banked:
            banked[spec] = STRATEGIES.build(spec).sample_bank
        if banked[spec] and record.get("budget") is None:
            banks[str(record.get("family"))].append(record)
    return dict(banks)


def verifier_model(
    bank: list[dict[str, Any]],
    family: str,
    threshold: float,
    wrong_cost: float,
    seed: int,
    iterations: int,
) -> dict[str, Any] | None:
    """fLaws' optimal number of samples for a family whose candidates carry scores; None if none do.

    Also reported: how often the top-scored candidate is wrong on problems where a correct one was
    among the candidates (the best-of-n view of a false positive). Scores outside [0, 1] have no
    threshold to accept at: only that rate is reported for them.
    """
    problems: dict[str, ScoredProblem] = defaultdict(ScoredProblem)
    contested = top_wrong = 0
    bounded = True
    for record in bank:
        scored = [c for c in record.get("candidates") or [] if isinstance(c.get("score"), int | float)]
        if not scored:
            continue
        outcomes = [bool(c.get("correct")) for c in scored]
        if any(outcomes) and not all(outcomes):
            contested += 1
            top_wrong += not outcomes[max(range(len(scored)), key=lambda i: scored[i]["score"])]
        problem = problems[str(record["problem"]["id"])]
        for candidate, right in zip(scored, outcomes, strict=True):
            bounded = bounded and 0.0 <= candidate["score"] <= 1.0
            accepted = candidate["score"] >= threshold
            problem.correct += right
            problem.wrong += not right
            problem.accepted_correct += right and accepted
            problem.accepted_wrong += accepted and not right
    if not problems:
        return None
    result: dict[str, Any] = {
        "family": family,
        "problems": len(problems),
        "top_scored_wrong_rate": top_wrong / contested if contested else None,
        "contested_records": contested,
        "threshold": threshold if bounded else None,
        "wrong_cost": wrong_cost,
    }
    if not bounded:
        result["model"] = None
        return result
    result.update(_verifier_fit(list(problems.values()), wrong_cost, seed, family, iterations))
    return result


def _verifier_fit(
    problems: list[ScoredProblem], wrong_cost: float, seed: int, family: str, iterations: int
) -> dict[str, Any]:
    """The rates, ceiling and optimal samples, with bootstrap intervals over problems."""
    rates, true_positive, false_positive = _rates(problems)
    best, utility = optimal_samples(rates, true_positive, false_positive, wrong_cost)
    rng = random.Random(stable_seed(seed, family, "verifier"))
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(iterations):
        sample = _rates(rng.choices(problems, k=len(problems)))
        draws["false_positive_rate"].append(sample[2])
        draws["ceiling"].append(verifier_ceiling(*sample))
        draws["optimal_samples"].append(optimal_samples(*sample, wrong_cost)[0])
    curve = []
    samples = 1
    while samples <= MAX_VERIFIED_SAMPLES:
        right, wrong = resampling_outcome(rates, true_positive, false_positive, samples)
        curve.append(
            {"samples": samples, "accuracy": right, "wrong": wrong, "utility": right - wrong_cost * wrong}
        )
        samples *= 4
    return {
        "model": "resample until accepted (Stroebl et al., 2024)",
        "true_positive_rate": true_positive,
        "false_positive_rate": _point(false_positive, draws["false_positive_rate"]),
        "ceiling": _point(verifier_ceiling(rates, true_positive, false_positive), draws["ceiling"]),
        "optimal_samples": _point(best, draws["optimal_samples"]),
        "optimal_utility": utility,
        "curve": curve,
    }


# ---------------------------------------------------------------- tiny pass rates (PassUntil)


def binomial_cdf(successes: int, trials: int, rate: float) -> float:
    """P(X ≤ successes) for X ~ Binomial(trials, rate), summed in log space (large trials stay finite)."""
    if successes < 0:
        return 0.0
    if successes >= trials or rate <= 0.0:
        return 1.0
    if rate >= 1.0:
        return 0.0
    log_rate, log_miss = math.log(rate), math.log1p(-rate)
    base = math.lgamma(trials + 1)
    return min(
        1.0,
        sum(
            math.exp(
                base
                - math.lgamma(i + 1)
                - math.lgamma(trials - i + 1)
                + i * log_rate
                + (trials - i) * log_miss
            )
            for i in range(successes + 1)
        ),
    )


def _bisect(decreasing: Callable[[float], float], target: float) -> float:
    """The rate in [0, 1] where a decreasing function of the rate crosses ``target``."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if decreasing(middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def clopper_pearson(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact two-sided interval of a binomial rate (Clopper and Pearson, 1934)."""
    tail = (1.0 - level) / 2.0
    low = 0.0 if successes == 0 else _bisect(lambda r: binomial_cdf(successes - 1, trials, r), 1.0 - tail)
    high = 1.0 if successes == trials else _bisect(lambda r: binomial_cdf(successes, trials, r), tail)
    return low, high


def zero_success_bound(trials: int, level: float = LEVEL) -> float:
    """The largest pass rate still consistent (one-sided, at ``level``) with ``trials`` failures in a row:
    1 − (1 − level)^(1/trials), about 3/trials at 95% (the rule of three)."""
    return 1.0 - (1.0 - level) ** (1.0 / trials)


def pass_rates(bank: list[dict[str, Any]], family: str) -> dict[str, Any] | None:
    """PassUntil-style estimates for a sample-banked family's rarely solved problems; None if it drew one
    sample per problem (which says nothing about rates below one)."""
    drawn: dict[str, list[bool]] = defaultdict(list)
    for record in bank:
        drawn[str(record["problem"]["id"])] += [
            bool(c.get("correct")) for c in record.get("candidates") or []
        ]
    if not drawn or max(len(outcomes) for outcomes in drawn.values()) < 2:
        return None
    rare = []
    for problem, outcomes in drawn.items():
        successes, samples = sum(outcomes), len(outcomes)
        if not samples or successes / samples >= RARE_RATE:
            continue
        low, high = clopper_pearson(successes, samples)
        rare.append(
            {
                "problem": problem,
                "samples": samples,
                "correct": successes,
                "first_success": outcomes.index(True) + 1 if successes else None,
                "rate": successes / samples,
                "low": low,
                "high": high,
            }
        )
    solved = [entry for entry in rare if entry["correct"]]
    unsolved = [entry for entry in rare if not entry["correct"]]
    pooled_correct = sum(entry["correct"] for entry in rare)
    pooled_samples = sum(entry["samples"] for entry in rare)
    pooled = None
    if rare:
        low, high = clopper_pearson(pooled_correct, pooled_samples)
        pooled = {"value": pooled_correct / pooled_samples, "low": low, "high": high}
    return {
        "family": family,
        "problems": len(drawn),
        "samples_per_problem": max(len(outcomes) for outcomes in drawn.values()),
        "rare_problems": len(rare),
        "zero_success_problems": len(unsolved),
        "rare_pooled_rate": pooled,
        "zero_success_bound": zero_success_bound(sum(e["samples"] for e in unsolved)) if unsolved else None,
        "mean_samples_to_first_success": mean([e["first_success"] for e in solved]) if solved else None,
        "per_problem": rare,
    }


# ---------------------------------------------------------------- the whole run


def predict_run(
    directory: Path,
    gain: float = SATURATION_GAIN,
    threshold: float = VERIFIER_THRESHOLD,
    wrong_cost: float = WRONG_COST,
    seed: int = 0,
    iterations: int = BOOTSTRAP_ITERATIONS,
) -> dict[str, Any]:
    """Every prediction for the run in ``directory``: what ``ponder predict`` prints and ``--json`` writes."""
    summary = load_summary(directory)
    records, _ = load_records(directory)
    if not summary.get("rows") or not records:
        raise UsageError(f"{directory} holds no summary rows or no records: nothing to predict from")
    banks = sample_banks(records)
    run = summary.get("run", {})
    verifiers = [
        verifier_model(bank, f, threshold, wrong_cost, seed, iterations) for f, bank in banks.items()
    ]
    rates = [pass_rates(bank, family) for family, bank in banks.items()]
    return {
        "run": {key: run.get(key) for key in ("dataset", "model", "problems")},
        "settings": {
            "saturation_gain": gain,
            "verifier_threshold": threshold,
            "wrong_cost": wrong_cost,
            "bootstrap_iterations": iterations,
            "level": LEVEL,
        },
        "curves": [predict_curve(curve, seed, iterations, gain) for curve in curves_of(summary, records)],
        "verifiers": [verifier for verifier in verifiers if verifier is not None],
        "pass_rates": [rate for rate in rates if rate is not None],
    }


# ---------------------------------------------------------------- terminal


def _value(point: dict[str, float] | None, spec: str = ".3f") -> str:
    if point is None:
        return "—"
    return f"{point['value']:{spec}} [{point['low']:{spec}}, {point['high']:{spec}}]"


def _budget(value: int | None, largest: int) -> str:
    """A saturation budget in words: within the run's budgets, beyond them, or never within the horizon."""
    if value is None:
        return f"> {SATURATION_HORIZON:,}"
    return f"{value:,} (measured)" if value <= largest else f"{value:,}"


def _validation_cell(validation: dict[str, Any] | None, key: str) -> str:
    if validation is None:
        return "— (needs two budgets ≤ k/4)"
    point = validation[key]
    mark = "inside" if point["inside"] else "outside"
    return f"{point['error']:+.3f} (k={validation['budget']}, {mark})"


def render_predictions(prediction: dict[str, Any], console: Console) -> None:
    """The predictions as rich tables: fits, extrapolations, the verifier model and tiny pass rates."""
    settings = prediction["settings"]
    run = prediction["run"]
    title = (
        " · ".join(str(run.get(key, "?")) for key in ("dataset", "model"))
        + f" · {run.get('problems')} problems"
    )
    fits = Table(title=f"scaling fits: {escape(title)}", title_justify="left")
    for column in ("strategy", "coverage exp(a·k^b)", "accuracy per doubling", "saturates at k (cov / acc)"):
        fits.add_column(column, overflow="fold")
    fits.add_column("validation: coverage error", justify="right")
    fits.add_column("accuracy error", justify="right")
    extrapolated = _table(
        f"extrapolated ({LEVEL:.0%} bootstrap intervals over problems)",
        ("strategy", "budget", "coverage", "accuracy", "tokens (proportional)"),
    )
    for curve in prediction["curves"]:
        name = escape(curve["strategy"])
        largest = max(curve["budgets"])
        coverage_fit = curve["coverage_fit"]
        clipped = (
            f" (clipped at k={','.join(map(str, coverage_fit['clipped']))})"
            if coverage_fit["clipped"]
            else ""
        )
        fits.add_row(
            name,
            f"a={coverage_fit['a']:.3f}, b={coverage_fit['b']:.3f}{clipped}",
            f"{curve['accuracy_fit']['gain_per_doubling']:+.3f}",
            " / ".join(_budget(curve["saturation"][key], largest) for key in ("coverage", "accuracy")),
            _validation_cell(curve["validation"], "coverage"),
            _validation_cell(curve["validation"], "accuracy"),
        )
        for point in curve["predictions"]:
            extrapolated.add_row(
                name,
                str(point["budget"]),
                _value(point["coverage"]),
                _value(point["accuracy"]),
                f"{point['tokens']:,.0f}",
            )
    console.print(fits)
    console.print(
        f"saturation: the budget from which one more doubling gains < {settings['saturation_gain']:.3f}"
    )
    console.print(extrapolated)
    _render_verifiers(prediction["verifiers"], settings, console)
    _render_pass_rates(prediction["pass_rates"], console)


def _render_verifiers(verifiers: list[dict[str, Any]], settings: dict[str, Any], console: Console) -> None:
    if not verifiers:
        return
    table = _table(
        f"verifier: resample until score ≥ {settings['verifier_threshold']:g} "
        f"(a wrong answer costs {settings['wrong_cost']:g}, a right one gains 1)",
        ("family", "top-scored wrong", "TPR", "FPR", "accuracy ceiling", "optimal samples", "utility"),
    )
    for verifier in verifiers:
        top = verifier["top_scored_wrong_rate"]
        top_cell = "—" if top is None else f"{top:.3f} of {verifier['contested_records']}"
        if verifier["model"] is None:
            table.add_row(
                escape(verifier["family"]), top_cell, "scores outside [0, 1]: no threshold", "", "", "", ""
            )
            continue
        table.add_row(
            escape(verifier["family"]),
            top_cell,
            f"{verifier['true_positive_rate']:.3f}",
            _value(verifier["false_positive_rate"]),
            _value(verifier["ceiling"]),
            _value(verifier["optimal_samples"], ".0f"),
            f"{verifier['optimal_utility']:.3f}",
        )
    console.print(table)


def _table(title: str, columns: tuple[str, ...]) -> Table:
    """A table whose first column names the strategy (left) and the rest are figures (right)."""
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if index else "left", overflow="fold")
    return table


def _render_pass_rates(rates: list[dict[str, Any]], console: Console) -> None:
    if not rates:
        return
    table = _table(
        f"rarely solved problems (pass rate < {RARE_RATE:.0%}; PassUntil)",
        (
            "family",
            "samples/problem",
            "rare",
            "never solved",
            "pooled rate",
            "bound if never solved",
            "first success after",
        ),
    )
    for rate in rates:
        bound = rate["zero_success_bound"]
        first = rate["mean_samples_to_first_success"]
        table.add_row(
            escape(rate["family"]),
            str(rate["samples_per_problem"]),
            f"{rate['rare_problems']} of {rate['problems']}",
            str(rate["zero_success_problems"]),
            _value(rate["rare_pooled_rate"], ".4f"),
            "—" if bound is None else f"< {bound:.4f}",
            "—" if first is None else f"{first:.1f} samples",
        )
    console.print(table)


# ---------------------------------------------------------------- plot


def _predict_png(prediction: dict[str, Any]) -> bytes:
    """Coverage and accuracy against budget: measured points, fitted curves (dashed beyond the largest
    measured budget) and their bootstrap bands, like the report's curves."""
    check_plotting()
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=(13, 5.2), dpi=150)
    panels = figure.subplots(1, 2)
    banks: set[str] = set()  # rules re-selecting from one family's samples share its coverage: draw it once
    for index, curve in enumerate(prediction["curves"]):
        color = f"C{index % 10}"
        largest = max(curve["budgets"])
        family = StrategyId.parse(curve["strategy"]).family
        panels_to_draw = [(panels[1], "accuracy", curve["strategy"])]
        if family not in banks:
            banks.add(family)
            panels_to_draw.insert(0, (panels[0], "coverage", family))
        for axes, key, label in panels_to_draw:
            measured = [(point["budget"], point[key]) for point in curve["measured"]]
            axes.plot(*zip(*measured, strict=True), "o", color=color, label=label)
            fitted = [(point["budget"], point[key]) for point in curve["fitted"]]
            within = [point for point in fitted if point[0] <= largest]
            beyond = [point for point in fitted if point[0] >= largest]
            for part, style in ((within, "-"), (beyond, "--")):
                axes.plot([k for k, _ in part], [p["value"] for _, p in part], style, color=color)
            budgets = [k for k, _ in fitted]
            lows, highs = [p["low"] for _, p in fitted], [p["high"] for _, p in fitted]
            axes.fill_between(budgets, lows, highs, color=color, alpha=0.12, linewidth=0)
    titles = ("coverage (pass@k): exp(a·k^b)", "accuracy: linear in log k, at most coverage")
    for axes, title in zip(panels, titles, strict=True):
        axes.set_xscale("log", base=2)
        axes.set_title(title, fontsize=11)
        axes.set_xlabel("budget k (samples, log scale); dashed: extrapolated, shaded: bootstrap interval")
        axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        axes.set_ylim(-0.02, 1.02)
        axes.grid(True, alpha=0.3)
        if prediction["curves"]:
            axes.legend(loc="lower right", fontsize=8, framealpha=0.85)
        else:
            axes.text(
                0.5, 0.5, "no curve with two budgets", ha="center", va="center", transform=axes.transAxes
            )
    run = prediction["run"]
    figure.suptitle(
        f"{run.get('dataset')} · {run.get('model')} · {run.get('problems')} problems", fontsize=12
    )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def write_plot(directory: Path, prediction: dict[str, Any]) -> Path:
    """Draw ``predict.png`` into the run directory and return its path."""
    path = Path(directory) / PREDICT_FILE
    path.write_bytes(_predict_png(prediction))
    return path
