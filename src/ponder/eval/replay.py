"""What a configuration, or a probe followed by a configuration, scores and costs on one draw of a
problem's stored samples, replayed exactly as ``auto`` would run it live.

A probe of m samples reads the first m of a draw; a sampling configuration chosen after it reads the
first max(n, m) of the same draw (the probe's samples are reused), so the probe is never paid twice; a
configuration of another sampling setting draws its own. ``greedy`` after a probe costs the probe alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ponder.eval.banks import Bank, Config, ProbeOption, ProblemBank, sampling_of
from ponder.strategies import STRATEGIES, Strategy
from ponder.strategies.policy import scoring_calls


@dataclass(frozen=True)
class Outcome:
    correct: float
    tokens: float


@functools.lru_cache(maxsize=4096)
def _strategy(spec: str) -> Strategy[Any]:
    return STRATEGIES.build(spec)


def config_of(spec: str) -> Config:
    """The configuration a spec names (as a policy file stores it)."""
    strategy = _strategy(spec)
    if strategy.name == "greedy":
        return Config(strategy.spec, None, 1)
    key = tuple(sorted(sampling_of(strategy).items()))
    scorer = getattr(strategy.options, "scorer", None) if strategy.uses_scores else None
    return Config(strategy.spec, key, int(strategy.options.n), scorer)  # type: ignore[attr-defined]


def _selected(config: Config, bank: Bank, read: list[int]) -> float:
    """1.0 when the configuration's selection from the samples ``read`` is correct."""
    chosen = [bank.candidates[i] for i in read]
    vote = _strategy(config.spec).select(chosen)
    return float(vote.winner is not None and bank.correct[read[vote.winner]])


def outcome(config: Config, problem: ProblemBank, draw: int, probe: ProbeOption | None = None) -> Outcome:
    """The configuration's outcome on draw ``draw`` of the problem, after ``probe`` when one is given."""
    spent = 0.0
    probed: list[int] = []
    probe_bank: Bank | None = None
    if probe is not None:
        probe_bank = problem.banks[probe.key]
        probed = probe_bank.orders[draw][: probe.probe.samples]
        scored = probed if probe.probe.feature == "verifier" else []
        spent = problem.greedy_tokens + probe_bank.tokens(probed, scored)
    if config.bank is None:
        tokens = spent if probe is not None else problem.greedy_tokens
        return Outcome(float(problem.greedy_correct), tokens)
    bank = problem.banks[config.bank]
    if probe is not None and config.bank == probe.key:  # the probe's samples are the first ones read
        read = bank.orders[draw][: max(config.n, len(probed))]
        scored = set(read if config.scored else []) | set(probed if probe.probe.feature == "verifier" else [])
        return Outcome(
            _selected(config, bank, read), problem.greedy_tokens + bank.tokens(read, sorted(scored))
        )
    read = bank.orders[draw][: config.n]
    return Outcome(_selected(config, bank, read), spent + bank.tokens(read, read if config.scored else []))


def generations(config: Config, probe: ProbeOption | None = None) -> int:
    """Generations the configuration spends after ``probe`` (greedy, samples, verifier calls: one each)."""
    if probe is None:
        return config.generations
    m = probe.probe.samples
    probe_scoring = scoring_calls(probe.probe.scorer) if probe.probe.feature == "verifier" else 0
    if config.bank is None:
        return probe.probe.generations
    if config.bank == probe.key:
        read = max(config.n, m)
        scored = read * scoring_calls(config.scorer) if config.scored else m * probe_scoring
        return 1 + read + scored
    return probe.probe.generations + config.generations
