"""What ``ponder tune`` learns from: each problem's greedy answer and sample banks, and what every
configuration would have scored and cost on them, draw by draw.

Only ``ponder eval``'s records are read, so a user's runs on their own model tune their own policy. A
*draw* is one seeded order of a bank's samples: a configuration of n samples reads the first n, a probe
of m samples the first m, and a policy that probes and then samples more reads one prefix of the same
order, exactly as ``auto`` reuses its probe's samples live. Outcomes are averaged over draws, as the
eval's summary averages over subsets.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.core.errors import UsageError
from ponder.core.types import Candidate
from ponder.eval.metrics import stable_seed
from ponder.eval.store import RecordStore
from ponder.eval.summary import BankPrices, stored_candidates
from ponder.strategies import STRATEGIES, Strategy
from ponder.strategies.policy import Probe, probe_feature, scoring_calls

#: the sampling settings that make two banks' samples interchangeable
SAMPLING_KEYS = ("temperature", "top_p", "max_tokens")
#: orders of each bank replayed per problem (more draws, smoother expectations, slower tuning)
DRAWS = 24


@dataclass
class Bank:
    """One problem's stored samples at one sampling setting, with their scores and prices."""

    spec: str
    sampling: dict[str, float | int]
    candidates: list[Candidate]
    correct: list[bool]
    prices: BankPrices
    orders: list[list[int]]

    @property
    def scorers(self) -> set[str]:
        """Scorers every sample of the bank was scored with."""
        sets = [set(c.scores) for c in self.candidates]
        return set.intersection(*sets) if sets else set()

    def tokens(self, read: Iterable[int], scored: Iterable[int] = ()) -> float:
        """Tokens a live run that drew the samples ``read`` (and scored ``scored``) would have spent."""
        chosen = [self.candidates[i] for i in read]
        total = self.prices.bill(chosen, with_scoring=False)["tokens"] if chosen else 0.0
        return total + sum(self.candidates[i].scoring_usage.total_tokens for i in scored)


@dataclass
class ProblemBank:
    """Everything stored about one problem: its greedy answer and its banks by sampling setting."""

    id: str
    greedy: Candidate | None = None
    greedy_correct: bool = False
    greedy_tokens: float = 0.0
    greedy_spec: str = "greedy"
    banks: dict[tuple[Any, ...], Bank] = field(default_factory=dict)

    @property
    def pass_at_1(self) -> float:
        """The oracle difficulty (needs the reference): the share of correct samples over all banks."""
        correct = [c for bank in self.banks.values() for c in bank.correct]
        return sum(correct) / len(correct) if correct else float(self.greedy_correct)


def sampling_of(strategy: Strategy[Any]) -> dict[str, float | int]:
    return {key: getattr(strategy.options, key) for key in SAMPLING_KEYS if hasattr(strategy.options, key)}


def load_records(directories: list[Path]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every record of the runs, with what they share (dataset and model); runs of different models or
    datasets would mix what the policy learns, so they are refused."""
    records: list[dict[str, Any]] = []
    manifests = []
    for directory in directories:
        store = RecordStore(directory)
        if not store.path.exists():
            raise UsageError(
                f"{directory} has no records.jsonl: give the --out directory of a ponder eval run"
            )
        records += store.load()
        manifest = directory / "run.json"
        manifests.append(_read_json(manifest) if manifest.exists() else {})
    models = {m.get("model") for m in manifests if m.get("model")}
    if len(models) > 1:
        raise UsageError(
            f"the runs are of different models ({', '.join(sorted(models))}): tune one model at a time"
        )
    datasets = sorted({m.get("dataset") for m in manifests if m.get("dataset")})
    return records, {"model": next(iter(models), ""), "datasets": datasets}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    return data if isinstance(data, dict) else {}


def problem_banks(
    records: list[dict[str, Any]],
    exclude: set[str] = frozenset(),
    draws: int = DRAWS,
    require_greedy: bool = True,
) -> list[ProblemBank]:
    """The problems that have a greedy record and at least one sample bank (seed 0 of each; any stored
    problem without ``require_greedy``), in the order they first appear. Problems whose question text
    is in ``exclude`` are left out (a held-out set must not repeat tuning questions)."""
    problems: dict[str, ProblemBank] = {}
    for record in records:
        if record.get("seed", 0) != 0 or record.get("budget") is not None:
            continue
        if record["problem"].get("question") in exclude:
            continue
        strategy = STRATEGIES.build(record["strategy"])
        problem = problems.setdefault(str(record["problem"]["id"]), ProblemBank(str(record["problem"]["id"])))
        stored = record["candidates"]
        if strategy.name == "greedy" and stored:
            problem.greedy = Candidate.from_dict(stored[0])
            problem.greedy_correct = bool(record.get("correct"))
            problem.greedy_tokens = float(record["usage"].get("total_tokens", 0))
            problem.greedy_spec = strategy.spec
        elif strategy.sample_bank and strategy.budget_option == "n" and stored:
            sampling = sampling_of(strategy)
            candidates = stored_candidates(stored)
            orders = [
                _order(len(candidates), stable_seed(record["strategy"], problem.id, draw))
                for draw in range(draws)
            ]
            problem.banks[tuple(sorted(sampling.items()))] = Bank(
                record["strategy"],
                sampling,
                candidates,
                [bool(c.get("correct")) for c in stored],
                BankPrices.of(candidates),
                orders,
            )
    if not require_greedy:
        return list(problems.values())
    return [p for p in problems.values() if p.greedy is not None and p.banks]


def _order(size: int, seed: int) -> list[int]:
    order = list(range(size))
    random.Random(seed).shuffle(order)
    return order


@dataclass(frozen=True)
class Config:
    """A fixed configuration of the search space: a strategy spec and the bank it draws from."""

    spec: str
    bank: tuple[Any, ...] | None  # None for greedy
    n: int
    scorer: str | None = None  # the scorer its selection reads

    @property
    def scored(self) -> bool:
        return self.scorer is not None

    @property
    def generations(self) -> int:
        return 1 if self.bank is None else self.n * (1 + scoring_calls(self.scorer))


def search_space(problems: list[ProblemBank], sizes: list[int]) -> list[Config]:
    """Every configuration the stored runs can replay: greedy; for each sampling setting, the vote, and
    best-of-n with each scorer every sample carries (argmax, weighted vote, top-half vote), at every
    size up to the smallest bank."""
    greedy_specs = Counter(p.greedy_spec for p in problems if p.greedy is not None)
    configs = [Config(greedy_specs.most_common(1)[0][0], None, 1)] if greedy_specs else []
    keys = set.intersection(*(set(p.banks) for p in problems)) if problems else set()
    for key in sorted(keys, key=str):
        banks = [p.banks[key] for p in problems]
        largest = min(len(b.candidates) for b in banks)
        scorers = set.intersection(*(b.scorers for b in banks))
        options = ",".join(f"{k}={v}" for k, v in dict(key).items())
        for n in [size for size in sizes if size <= largest]:
            configs.append(Config(STRATEGIES.build(f"self-consistency:n={n},{options}").spec, key, n))
            for scorer in sorted(scorers):
                for aggregate in ("argmax", "weighted", "top"):
                    spec = f"best-of-n:n={n},scorer={scorer},aggregate={aggregate},{options}"
                    configs.append(Config(STRATEGIES.build(spec).spec, key, n, scorer))
    return configs


@dataclass(frozen=True)
class ProbeOption:
    """A probe tuning may choose: ``samples`` from the bank ``key`` and the feature it reads."""

    key: tuple[Any, ...]
    probe: Probe


def probe_options(configs: list[Config], sizes: tuple[int, ...] = (1, 2, 4)) -> list[ProbeOption]:
    options = []
    for key in sorted({c.bank for c in configs if c.bank is not None}, key=str):
        scorers = sorted({c.scorer for c in configs if c.bank == key and c.scorer})
        for samples in sizes:
            options.append(ProbeOption(key, Probe(samples=samples, feature="agreement")))
            options.append(ProbeOption(key, Probe(samples=samples, feature="consensus")))
            options += [
                ProbeOption(key, Probe(samples=samples, feature="verifier", scorer=s)) for s in scorers
            ]
    return options


def features(option: ProbeOption, problem: ProblemBank) -> list[float]:
    """The probe's feature on each draw of the problem's bank."""
    bank = problem.banks[option.key]
    m = option.probe.samples
    return [
        probe_feature(option.probe, problem.greedy, [bank.candidates[i] for i in order[:m]])
        for order in bank.orders
    ]
