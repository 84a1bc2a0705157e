"""A configuration search within a tuning budget: Bayesian optimisation over the space, an
accuracy–tokens Pareto frontier out (Archon's ITAS, Saad-Falcon et al., 2024, searched inference
architectures this way; here the space is ponder's own: strategy family, n, temperature, top_p, scorer
and aggregation rule).

optuna's multi-objective TPE proposes configurations (accuracy up, mean tokens down). A proposal whose
sampling setting already has samples on the tuning problems (in the given runs or drawn by an earlier
trial) is replayed from them for free (``ponder.eval.replay``). Otherwise ``ponder eval`` draws a bank
at that setting, at the space's largest n, on the tuning problems, reusing every unit the given runs
finished; each such bank spends one unit of the tuning budget, and once it is spent, proposals that
would need another are recorded as not evaluated. Every bank lands in ``OUT/banks/``, so ``ponder tune``
can learn a policy from it afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ponder.backends.base import Backend
from ponder.core.errors import UsageError
from ponder.core.extras import import_extra
from ponder.eval.banks import ProblemBank, load_records, problem_banks
from ponder.eval.replay import config_of, outcome
from ponder.eval.runner import EvalConfig, run_eval
from ponder.strategies import STRATEGIES


@dataclass(frozen=True)
class SearchSpace:
    """What a trial may choose."""

    sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    temperatures: tuple[float, ...] = (0.3, 0.5, 0.7, 1.0)
    top_ps: tuple[float, ...] = (0.9, 1.0)
    scorers: tuple[str, ...] = ("judge",)
    aggregates: tuple[str, ...] = ("argmax", "weighted", "top")
    max_tokens: int = 512

    def propose(self, trial: Any) -> str:
        """The canonical spec of the configuration optuna's ``trial`` asks for."""
        family = trial.suggest_categorical("family", ["greedy", "self-consistency", "best-of-n"])
        if family == "greedy":
            return STRATEGIES.build(f"greedy:max_tokens={self.max_tokens}").spec
        n = trial.suggest_categorical("n", list(self.sizes))
        temperature = trial.suggest_categorical("temperature", list(self.temperatures))
        top_p = trial.suggest_categorical("top_p", list(self.top_ps))
        spec = f"{family}:n={n},temperature={temperature},top_p={top_p},max_tokens={self.max_tokens}"
        if family == "best-of-n":
            scorer = trial.suggest_categorical("scorer", list(self.scorers))
            aggregate = trial.suggest_categorical("aggregate", list(self.aggregates))
            spec += f",scorer={scorer},aggregate={aggregate}"
        return STRATEGIES.build(spec).spec

    def bank_spec(self, spec: str) -> str:
        """The spec whose run at the largest n banks what ``spec`` (and every smaller n) replays from."""
        strategy = STRATEGIES.build(spec)
        if strategy.name == "greedy":
            return strategy.spec
        options = strategy.options
        scorer = f",scorer={options.scorer}" if strategy.uses_scores else ""  # type: ignore[attr-defined]
        family = "best-of-n" if scorer else "self-consistency"
        sampling = f"temperature={options.temperature},top_p={options.top_p},max_tokens={options.max_tokens}"  # type: ignore[attr-defined]
        return STRATEGIES.build(f"{family}:n={max(self.sizes)},{sampling}{scorer}").spec


@dataclass
class Trial:
    number: int
    config: str
    accuracy: float | None = None
    tokens: float | None = None
    #: how it was evaluated: replayed from stored samples, drawn (a new bank), or not evaluated
    how: str = "replayed"


@dataclass
class Search:
    """The state of one search: where banks go, what was drawn, every trial."""

    dataset: str
    runs: list[Path]
    out: Path
    banks_allowed: int
    limit: int | None = None
    model: str = ""
    space: SearchSpace = field(default_factory=SearchSpace)
    trials: list[Trial] = field(default_factory=list)
    banks_drawn: int = 0

    def problems(self) -> list[ProblemBank]:
        directories = [*self.runs, *sorted(p for p in (self.out / "banks").glob("*") if p.is_dir())]
        records, _ = load_records([d for d in directories if (d / "records.jsonl").exists()])
        return problem_banks(records, require_greedy=False)

    def score(self, spec: str, problems: list[ProblemBank]) -> tuple[float, float] | None:
        """Mean accuracy and tokens of ``spec`` replayed on every problem, or None if some lack samples."""
        config = config_of(spec)
        if config.bank is None:
            if not problems or any(p.greedy is None for p in problems):
                return None
        elif not problems or any(not _holds(p, config.bank, config.n, config.scorer) for p in problems):
            return None
        results = [
            [outcome(config, p, d) for d in range(len(next(iter(p.banks.values())).orders) if p.banks else 1)]
            for p in problems
        ]
        accuracy = float(np.mean([np.mean([r.correct for r in draws]) for draws in results]))
        tokens = float(np.mean([np.mean([r.tokens for r in draws]) for draws in results]))
        return accuracy, tokens

    async def evaluate(self, number: int, spec: str, backend: Backend) -> Trial:
        scored = self.score(spec, self.problems())
        if scored is not None:
            return Trial(number, spec, *scored, how="replayed")
        if self.banks_drawn >= self.banks_allowed:
            return Trial(number, spec, how="not evaluated: the tuning budget is spent")
        bank = self.space.bank_spec(spec)
        config = EvalConfig(
            dataset=self.dataset,
            strategies=[bank],
            budgets=[max(self.space.sizes)],
            limit=self.limit,
            model=self.model,
            reuse=[str(run) for run in self.runs],
        )
        await run_eval(config, backend, self.out / "banks" / _slug(bank), resume=True, show_progress=False)
        self.banks_drawn += 1
        scored = self.score(spec, self.problems())
        if scored is None:
            return Trial(number, spec, how="not evaluated: the drawn bank does not cover every problem")
        return Trial(number, spec, *scored, how="drawn")


def _holds(problem: ProblemBank, key: tuple[Any, ...], n: int, scorer: str | None) -> bool:
    bank = problem.banks.get(key)
    return bank is not None and len(bank.candidates) >= n and (scorer is None or scorer in bank.scorers)


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)[:120]


def pareto_trials(trials: list[Trial]) -> list[Trial]:
    """Evaluated trials no other evaluated trial beats on both accuracy and tokens, cheapest first (one
    per configuration)."""
    unique = {t.config: t for t in trials if t.accuracy is not None and t.tokens is not None}
    frontier: list[Trial] = []
    for trial in sorted(unique.values(), key=lambda t: (t.tokens, -(t.accuracy or 0.0))):
        if not frontier or (trial.accuracy or 0.0) > (frontier[-1].accuracy or 0.0):
            frontier.append(trial)
    return frontier


async def run_search(search: Search, trials: int, backend: Backend, seed: int = 0) -> list[Trial]:
    """Evaluate ``trials`` distinct configurations proposed by optuna's multi-objective TPE.

    A proposal of a configuration already evaluated is told its known result and asked again (it costs
    nothing and teaches the sampler), up to ``4 × trials`` proposals in all, so the trials are spent on
    distinct configurations rather than on repeats of the first good one.
    """
    optuna = import_extra("optuna", "tune", "ponder tune --search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if trials < 1:
        raise UsageError("--search: give at least one trial")
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(8, trials))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    seen: dict[str, Trial] = {}
    await backend.start()
    for _ in range(4 * trials):
        if len(search.trials) >= trials:
            break
        proposal = study.ask()
        spec = search.space.propose(proposal)
        result = seen.get(spec)
        if result is None:
            result = await search.evaluate(len(search.trials), spec, backend)
            seen[spec] = result
            search.trials.append(result)
        if result.accuracy is None:
            study.tell(proposal, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(proposal, [result.accuracy, result.tokens])
    return search.trials
