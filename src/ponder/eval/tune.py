"""``ponder tune``: choose the configuration per predicted difficulty and budget, by cross-validation.

Snell et al. (2024), as summarised in ``shared/notes/choosing.md``: questions are binned by difficulty,
and for every bin and budget the configuration with the best accuracy on *other* questions is chosen.
Here:

* **Oracle difficulty** is pass@1 over a problem's stored samples (it needs the reference); its
  quantiles make the bins at tuning time.
* **Predicted difficulty** is a probe's feature (``ponder.strategies.policy``), which needs no
  reference. Cut points on the feature are *calibrated* against the oracle bins: each cut is the
  threshold that best separates the problems below an oracle boundary from those above it.
  Where a feature's order disagrees with the oracle's (greedy right on questions most samples get
  wrong), calibration would merge the bins that matter, so cut points at the feature's own quantiles
  (Snell et al.'s predicted-difficulty bins) are a candidate too.
* For each budget (in generations), the candidates are: no probe (the best single configuration), or a
  probe (sampling setting, samples, feature) with 2 or 3 bins, cut either way. Which one is chosen by 4-fold
  cross-validation inside the training problems; the whole procedure is scored by an outer 5-fold
  cross-validation over problems, so the reported accuracy, and its paired gain over the best single
  configuration chosen the same way, are never measured on the problems that chose them.

Every figure is an expectation over the stored draws (``ponder.eval.replay``), with tokens billed as a
live run would pay them, the probe included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ponder.eval.banks import Config, ProbeOption, ProblemBank, features, probe_options, search_space
from ponder.eval.metrics import difference_interval, stable_seed
from ponder.eval.replay import generations, outcome
from ponder.strategies.policy import Plan, Policy

BUDGETS = (1, 2, 4, 8, 16)
BIN_COUNTS = (2, 3)
#: how cut points are placed: calibrated against the oracle's pass@1 bins, or at the feature's quantiles
CUTTINGS = ("oracle", "quantile")
OUTER_FOLDS = 5
INNER_FOLDS = 4


@dataclass
class Table:
    """Per-draw outcomes of every configuration, without a probe or after one probe option."""

    probe: ProbeOption | None
    correct: np.ndarray  # [config, problem, draw]
    tokens: np.ndarray  # [config, problem, draw]
    generations: np.ndarray  # [config]
    feature: np.ndarray | None = None  # [problem, draw]


@dataclass
class Space:
    """The search space replayed on a set of problems: configurations, probes and their tables."""

    problems: list[ProblemBank]
    configs: list[Config]
    tables: dict[ProbeOption | None, Table] = field(default_factory=dict)

    @classmethod
    def of(cls, problems: list[ProblemBank], sizes: Sequence[int] = BUDGETS, probes: bool = True) -> Space:
        """The space the runs can replay, with a table per probe option (``probes``) and without one."""
        configs = search_space(problems, list(sizes))
        space = cls(problems, configs)
        for option in [None, *(probe_options(configs) if probes else [])]:
            space.tables[option] = space.table(option)
        return space

    def table(self, option: ProbeOption | None) -> Table:
        draws = len(next(iter(self.problems[0].banks.values())).orders)
        shape = (len(self.configs), len(self.problems), draws)
        correct, tokens = np.zeros(shape), np.zeros(shape)
        for c, config in enumerate(self.configs):
            for p, problem in enumerate(self.problems):
                for d in range(draws):
                    result = outcome(config, problem, d, option)
                    correct[c, p, d], tokens[c, p, d] = result.correct, result.tokens
        spent = np.array([generations(config, option) for config in self.configs])
        feature = None if option is None else np.array([features(option, p) for p in self.problems])
        return Table(option, correct, tokens, spent, feature)

    @property
    def difficulty(self) -> np.ndarray:
        return np.array([p.pass_at_1 for p in self.problems])


@dataclass
class Fitted:
    """A plan fitted on some problems: which probe, its cut points, and a configuration index per bin."""

    option: ProbeOption | None
    cuts: list[float]
    choices: list[int]
    cutting: str = "none"

    def per_problem(self, space: Space, problems: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean correctness and tokens on each of ``problems`` (indices), over the draws."""
        table = space.tables[self.option]
        if table.feature is None:
            c = self.choices[0]
            return table.correct[c, problems].mean(axis=1), table.tokens[c, problems].mean(axis=1)
        bins = np.searchsorted(np.array(self.cuts), table.feature[problems], side="right")
        chosen = np.array(self.choices)[bins]  # [problem, draw]
        draws = np.arange(bins.shape[1])[None, :]
        correct = table.correct[chosen, problems[:, None], draws]
        tokens = table.tokens[chosen, problems[:, None], draws]
        return correct.mean(axis=1), tokens.mean(axis=1)


def _best(
    correct: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    weight: np.ndarray | None = None,
) -> int:
    """The least costly allowed choice whose accuracy is within one standard error of the best one's
    (the most accurate of them where several cost the same).

    ``correct`` is [choice, problem]: per-problem means, or with ``weight`` (how many of each problem's
    draws count) per-problem sums; ``cost`` is per choice (generations, or mean tokens). The
    one-standard-error rule of cross-validated model selection (Breiman et al., 1984): a choice that
    beats a cheaper one by less than the noise of their paired difference over problems is not worth
    its cost, so small tuning sets fall back to cheap configurations (greedy) rather than chase noise.
    """
    weight = np.ones(correct.shape[1]) if weight is None else weight
    total = weight.sum()
    if not allowed.any():
        return int(np.argmin(cost))
    accuracy = np.where(allowed, correct.sum(axis=1) / total, -np.inf)
    best = int(np.argmax(accuracy))
    differences = correct[best] - correct  # [choice, problem]
    problems = correct.shape[1]
    spread = differences.std(axis=1, ddof=1) if problems > 1 else np.zeros(len(correct))
    near = allowed & (differences.sum(axis=1) / total <= spread * np.sqrt(problems) / total + 1e-12)
    cheapest = np.where(near, cost, np.inf).min()
    return int(np.argmax(np.where(near & (cost == cheapest), accuracy, -np.inf)))


def calibrated_cuts(feature: np.ndarray, difficulty: np.ndarray, bins: int) -> list[float]:
    """Cut points on the per-problem mean feature that best reproduce the oracle's quantile bins."""
    edges = np.quantile(difficulty, np.linspace(0, 1, bins + 1)[1:-1])
    oracle = np.searchsorted(edges, difficulty, side="right")
    values = np.unique(feature)
    thresholds = np.concatenate([values, [values[-1] + 1.0]]) if values.size else np.array([0.0])
    cuts: list[float] = []
    for boundary in range(1, bins):
        above = oracle >= boundary
        agreement = [np.mean((feature >= t) == above) for t in thresholds]
        cut = float(thresholds[int(np.argmax(agreement))])
        cuts.append(max(cut, cuts[-1]) if cuts else cut)
    return cuts


def quantile_cuts(feature: np.ndarray, bins: int) -> list[float]:
    """Cut points at the feature's own quantiles: bins of predicted difficulty with equal numbers of
    problems, for a feature whose order disagrees with the oracle's (which calibration would lose)."""
    return [float(q) for q in np.quantile(feature, np.linspace(0, 1, bins + 1)[1:-1])]


def fit(
    space: Space,
    option: ProbeOption | None,
    bins: int,
    train: np.ndarray,
    budget: int,
    cutting: str = "oracle",
) -> Fitted:
    """Fit one probe option, bin count and way of cutting on the ``train`` problems at ``budget``."""
    table = space.tables[option]
    allowed = table.generations <= budget
    overall = _best(table.correct[:, train].mean(axis=2), table.generations, allowed)
    if table.feature is None:
        return Fitted(None, [], [overall])
    feature = table.feature[train]
    means = feature.mean(axis=1)
    cuts = (
        calibrated_cuts(means, space.difficulty[train], bins)
        if cutting == "oracle"
        else quantile_cuts(means, bins)
    )
    cuts = sorted({cut for cut in cuts if cut > means.min()})  # no empty bottom bin, no repeated cut
    if not cuts:
        return Fitted(None, [], [overall])
    bins = len(cuts) + 1
    assigned = np.searchsorted(np.array(cuts), feature, side="right")  # [problem, draw]
    choices = []
    for b in range(bins):
        mask = assigned == b
        if not mask.any():
            choices.append(overall)
            continue
        present = mask.any(axis=1)  # the problems some of whose draws fall in this bin
        draws = mask[present]
        correct = (table.correct[:, train][:, present] * draws).sum(axis=2)  # per-problem sums over them
        choices.append(_best(correct, table.generations, allowed, draws.sum(axis=1)))
    if len(set(choices)) == 1:  # every bin runs the same: the probe would buy nothing
        return Fitted(None, [], choices[:1])
    return Fitted(option, cuts, choices, cutting)


def _folds(indices: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(indices)
    return [fold for fold in np.array_split(order, min(count, len(indices))) if fold.size]


Candidate = tuple[ProbeOption | None, int, str]


def _candidates(space: Space, budget: int) -> list[Candidate]:
    """No probe, and every probe that leaves room in the budget, with each bin count and way of cutting."""
    found: list[Candidate] = [(None, 1, "none")]
    for option in space.tables:
        if option is not None and option.probe.generations < budget:
            found += [(option, bins, cutting) for bins in BIN_COUNTS for cutting in CUTTINGS]
    return found


def cross_validated(
    space: Space,
    problems: np.ndarray,
    budget: int,
    candidates: list[tuple[ProbeOption | None, int]],
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem correctness and tokens of each candidate, each problem scored by a fit without it:
    arrays [candidate, problem]."""
    correct = np.zeros((len(candidates), len(problems)))
    tokens = np.zeros((len(candidates), len(problems)))
    position = {int(p): i for i, p in enumerate(problems)}
    for test in _folds(problems, INNER_FOLDS, seed):
        train = np.setdiff1d(problems, test)
        where = [position[int(p)] for p in test]
        for k, (option, bins, cutting) in enumerate(candidates):
            c, t = fit(space, option, bins, train, budget, cutting).per_problem(space, test)
            correct[k, where], tokens[k, where] = c, t
    return correct, tokens


def choose(space: Space, problems: np.ndarray, budget: int, seed: int) -> Fitted:
    """The probe and bin count that cross-validate best on ``problems``, fitted on all of them."""
    candidates = _candidates(space, budget)
    correct, tokens = cross_validated(space, problems, budget, candidates, seed)
    k = _best(correct, tokens.mean(axis=1), np.ones(len(candidates), dtype=bool))
    option, bins, cutting = candidates[k]
    return fit(space, option, bins, problems, budget, cutting)


@dataclass
class BudgetReport:
    budget: int
    fitted: Fitted
    auto: tuple[np.ndarray, np.ndarray]  # outer-CV per-problem correctness and tokens
    fixed: tuple[np.ndarray, np.ndarray]  # the best single configuration, chosen the same way
    fixed_choices: list[str]


def tune(space: Space, budgets: Sequence[int] = BUDGETS, seed: int = 0) -> list[BudgetReport]:
    """Per budget: the plan fitted on all problems, and the outer cross-validation of the procedure
    against the best single configuration chosen on the same training folds."""
    everything = np.arange(len(space.problems))
    reports = []
    for budget in budgets:
        auto_c, auto_t = np.zeros(len(everything)), np.zeros(len(everything))
        fixed_c, fixed_t = np.zeros(len(everything)), np.zeros(len(everything))
        fixed_choices = []
        for fold, test in enumerate(_folds(everything, OUTER_FOLDS, stable_seed(seed, "outer"))):
            train = np.setdiff1d(everything, test)
            fitted = choose(space, train, budget, stable_seed(seed, budget, fold))
            auto_c[test], auto_t[test] = fitted.per_problem(space, test)
            single = fit(space, None, 1, train, budget)
            fixed_c[test], fixed_t[test] = single.per_problem(space, test)
            fixed_choices.append(space.configs[single.choices[0]].spec)
        final = choose(space, everything, budget, stable_seed(seed, budget, "final"))
        reports.append(BudgetReport(budget, final, (auto_c, auto_t), (fixed_c, fixed_t), fixed_choices))
    return reports


def plan_of(space: Space, fitted: Fitted, budget: int) -> Plan:
    option = fitted.option
    return Plan(
        budget=budget,
        probe=option.probe if option else None,
        sampling=dict(option.key) if option else {},
        cuts=[round(cut, 6) for cut in fitted.cuts],
        choices=[space.configs[c].spec for c in fitted.choices],
    )


def paired(first: np.ndarray, second: np.ndarray, seed: int) -> dict[str, Any]:
    """Mean paired difference (first − second) over problems with its interval (``difference_interval``:
    a bootstrap, never a point where every problem agrees)."""
    differences = [float(x) for x in first - second]
    low, high = difference_interval(differences, seed=seed)
    return {"difference": float(np.mean(differences)) if differences else 0.0, "ci": [low, high]}


def policy_of(space: Space, reports: list[BudgetReport], meta: dict[str, Any], seed: int = 0) -> Policy:
    """The policy file: the plans, and what cross-validation expects of them at each budget."""
    greedy = [i for i, c in enumerate(space.configs) if c.bank is None][0]
    greedy_c = space.tables[None].correct[greedy].mean(axis=1)
    greedy_t = space.tables[None].tokens[greedy].mean(axis=1)
    expected = []
    for report in reports:
        auto_c, auto_t = report.auto
        fixed_c, fixed_t = report.fixed
        expected.append(
            {
                "budget": report.budget,
                "cut": report.fitted.cutting,
                "accuracy": float(auto_c.mean()),
                "tokens": float(auto_t.mean()),
                "best_single_accuracy": float(fixed_c.mean()),
                "best_single_tokens": float(fixed_t.mean()),
                "best_single_choices": sorted(set(report.fixed_choices)),
                "gain_over_best_single": paired(auto_c, fixed_c, stable_seed(seed, report.budget, "single")),
                "gain_over_greedy": paired(auto_c, greedy_c, stable_seed(seed, report.budget, "greedy")),
            }
        )
    tuning = {
        **meta,
        "problems": len(space.problems),
        "greedy": {"accuracy": float(greedy_c.mean()), "tokens": float(greedy_t.mean())},
        "cross_validation": f"{OUTER_FOLDS}-fold outer, {INNER_FOLDS}-fold inner, over problems",
        "expected": expected,
    }
    plans = [plan_of(space, report.fitted, report.budget) for report in reports]
    return Policy(model=meta.get("model", ""), greedy=space.configs[greedy].spec, plans=plans, tuning=tuning)
