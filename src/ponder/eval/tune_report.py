"""What ``ponder tune`` shows: the accuracy–tokens frontier, how well the probes predict difficulty, and a
policy's evaluation on held-out runs against every fixed configuration, paired by problem.

The held-out evaluation replays the policy on the held-out runs' stored samples the way ``auto`` runs
live (``ponder.eval.replay``): the same probe draws, the same reuse, the same billing. The bars a policy
is held to are checked here and reported as measured, met or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ponder.core.errors import UsageError
from ponder.core.extras import import_extra
from ponder.eval.banks import Config, ProbeOption, ProblemBank
from ponder.eval.metrics import outcome_interval, stable_seed
from ponder.eval.replay import config_of, outcome
from ponder.eval.tune import BUDGETS, Space, paired
from ponder.strategies.policy import Policy, probe_feature

TUNE_PLOT = "tune.png"


@dataclass
class Point:
    """One configuration's per-problem correctness and tokens (expectations over draws)."""

    name: str
    correct: np.ndarray
    tokens: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def mean_tokens(self) -> float:
        return float(self.tokens.mean())

    def row(self, seed: int) -> dict[str, Any]:
        low, high = outcome_interval([float(x) for x in self.correct], seed=stable_seed(seed, self.name))
        return {"config": self.name, "accuracy": self.accuracy, "ci": [low, high], "tokens": self.mean_tokens}


def fixed_points(space: Space) -> list[Point]:
    table = space.tables[None]
    return [
        Point(config.spec, table.correct[c].mean(axis=1), table.tokens[c].mean(axis=1))
        for c, config in enumerate(space.configs)
    ]


def pareto(points: list[Point]) -> list[Point]:
    """The points no other point beats on both accuracy and tokens, cheapest first."""
    ordered = sorted(points, key=lambda p: (p.mean_tokens, -p.accuracy))
    frontier: list[Point] = []
    for point in ordered:
        if not frontier or point.accuracy > frontier[-1].accuracy:
            frontier.append(point)
    return frontier


def calibration(space: Space, option: ProbeOption) -> dict[str, float]:
    """How well a probe's feature tracks the oracle difficulty: Spearman's rank correlation with pass@1."""
    table = space.tables[option]
    assert table.feature is not None
    feature = table.feature.mean(axis=1)
    difficulty = space.difficulty
    if np.ptp(feature) == 0 or np.ptp(difficulty) == 0:
        return {"spearman": 0.0}
    ranks = [np.argsort(np.argsort(values)).astype(float) for values in (feature, difficulty)]
    return {"spearman": float(np.corrcoef(*ranks)[0, 1])}


def replay_policy(policy: Policy, problems: list[ProblemBank], budget: int) -> Point:
    """``auto:budget=B`` with this policy replayed on stored problems (they need its sampling setting)."""
    plan = policy.plan(budget)
    option = ProbeOption(tuple(sorted(plan.sampling.items())), plan.probe) if plan.probe else None
    configs: list[Config] = [config_of(spec) for spec in plan.choices]
    keys = {c.bank for c in configs if c.bank is not None} | ({option.key} if option else set())
    for key in keys:
        missing = [p.id for p in problems if key not in p.banks]
        if missing:
            setting = ", ".join(f"{k}={v}" for k, v in key)
            raise UsageError(
                f"the runs have no samples at {setting} for {len(missing)} problems (e.g. {missing[0]}): "
                f"the policy at budget {budget} needs them; run ponder eval with a sampling strategy "
                f"at {setting}"
            )
    correct, tokens = np.zeros(len(problems)), np.zeros(len(problems))
    for p, problem in enumerate(problems):
        draws = len(next(iter(problem.banks.values())).orders)
        values = [_draw(plan, option, configs, problem, d) for d in range(draws)]
        correct[p] = np.mean([v[0] for v in values])
        tokens[p] = np.mean([v[1] for v in values])
    return Point(f"auto:budget={budget}", correct, tokens)


def _draw(
    plan: Any, option: ProbeOption | None, configs: list[Config], problem: ProblemBank, draw: int
) -> tuple[float, float]:
    config = configs[0]
    if option is not None:
        bank = problem.banks[option.key]
        probed = [bank.candidates[i] for i in bank.orders[draw][: option.probe.samples]]
        config = configs[plan.bin(probe_feature(option.probe, problem.greedy, probed))]
    result = outcome(config, problem, draw, option)
    return result.correct, result.tokens


@dataclass
class Evaluation:
    """A policy replayed on held-out problems: the figures, and the points to plot."""

    figures: dict[str, Any]
    fixed: list[Point]
    autos: list[Point]


def evaluate_policy(
    policy: Policy, problems: list[ProblemBank], budgets: list[int] | None = None, seed: int = 0
) -> Evaluation:
    """The policy at each of its budgets against every fixed configuration the runs can replay, paired by
    problem, and the bars: never significantly below the best fixed configuration at its own tokens, at
    least greedy's accuracy, and greedy + 5 points within 8× greedy's tokens."""
    space = Space.of(problems, BUDGETS, probes=False)
    fixed = fixed_points(space)
    greedy = next(p for p, c in zip(fixed, space.configs, strict=True) if c.bank is None)
    results, autos = [], []
    for budget in budgets or [plan.budget for plan in policy.plans]:
        auto = replay_policy(policy, problems, budget)
        autos.append(auto)
        affordable = [p for p in fixed if p.mean_tokens <= auto.mean_tokens * (1 + 1e-9)]
        best = max(affordable, key=lambda p: (p.accuracy, -p.mean_tokens)) if affordable else None
        comparisons = [
            {
                **point.row(seed),
                "auto_minus": paired(auto.correct, point.correct, stable_seed(seed, budget, point.name)),
            }
            for point in fixed
        ]
        against_best = paired(auto.correct, best.correct, stable_seed(seed, budget, "best")) if best else None
        results.append(
            {
                "budget": budget,
                "auto": auto.row(seed),
                "best_fixed_at_its_tokens": best.name if best else None,
                "auto_minus_best": against_best,
                "fixed": comparisons,
                "bars": {
                    "not_below_best": against_best is None or against_best["ci"][1] >= 0,
                    "at_least_greedy": auto.accuracy >= greedy.accuracy,
                    "greedy_plus_5_within_8x": auto.accuracy >= greedy.accuracy + 0.05
                    and auto.mean_tokens <= 8 * greedy.mean_tokens,
                },
            }
        )
    figures = {
        "problems": len(problems),
        "greedy": greedy.row(seed),
        "budgets": results,
        "frontier": [p.name for p in pareto(fixed)],
    }
    return Evaluation(figures, fixed, autos)


def write_plot(path: Path, fixed: list[Point], autos: list[Point], title: str) -> Path:
    """The accuracy–tokens plane: every fixed configuration, their frontier, and ``auto`` at each budget."""
    import_extra("matplotlib", "eval", f"the tuning plot {path.name}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    families: dict[str, list[Point]] = {}
    for point in fixed:
        families.setdefault(point.name.split(":")[0], []).append(point)
    for family, points in sorted(families.items()):
        marker, size = ("D", 60) if family == "greedy" else ("o", 18)
        xs, ys = [p.mean_tokens for p in points], [p.accuracy for p in points]
        axes.scatter(xs, ys, s=size, marker=marker, alpha=0.7, label=family, zorder=3)
    frontier = pareto(fixed)
    axes.plot(
        [p.mean_tokens for p in frontier], [p.accuracy for p in frontier], "k--", lw=1, label="frontier"
    )
    if autos:  # hollow, so a fixed configuration at the same place stays visible
        axes.plot(
            [p.mean_tokens for p in autos],
            [p.accuracy for p in autos],
            "r-",
            marker="*",
            ms=13,
            mfc="none",
            lw=1,
            label="auto, by budget",
            zorder=4,
        )
    axes.set_xscale("log")
    axes.set_xlabel("mean tokens per problem (log)")
    axes.set_ylabel("accuracy")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def probe_summary(option: ProbeOption | None) -> str:
    """``greedy + 4 at T=0.7: agreement``: the probe in a table cell."""
    if option is None:
        return "none"
    probe, setting = option.probe, dict(option.key)
    feature = f"verifier {probe.scorer}" if probe.feature == "verifier" else probe.feature
    where = f"T={setting.get('temperature')}" + (
        f", top_p={setting['top_p']}" if setting.get("top_p", 1.0) != 1.0 else ""
    )
    return f"greedy + {probe.samples} at {where}: {feature}"
