"""From stored records to scaling-curve rows: accuracy, coverage and cost at every budget.

Sampling strategies were run once at the largest budget; the row for budget k is the expectation over
k-subsets of each record's samples of what the strategy would have selected from just those samples
(``Strategy.select``), billed what those samples (and their scoring) really cost. Strategies that are
not sample-banked have one record per budget. Values are averaged over seeds within a problem, then
over problems, with an interval over problems (``outcome_interval``: Wilson for outcomes that are 0
or 1, a bootstrap for fractional ones). Problems are listed in the dataset's order
(``ponder.eval.order``), and a figure that was not measured (FLOPs of a model of unknown size) is
None, never 0.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ponder.core.types import Candidate, Usage
from ponder.eval.identity import StrategyId
from ponder.eval.metrics import (
    difference_interval,
    log_position,
    mean,
    outcome_interval,
    pass_at_k,
    stable_seed,
    subsets,
)
from ponder.eval.order import problem_ranks
from ponder.eval.rescore import Rescores, apply_rescores
from ponder.eval.store import record_key
from ponder.strategies import STRATEGIES, Strategy

USAGE_KEYS = ("prompt_tokens", "cached_prompt_tokens", "completion_tokens", "calls", "seconds", "flops")


@dataclass
class Outcome:
    """Expected outcome of one record at one budget."""

    accuracy: float
    no_answer: float
    usage: dict[str, float]
    coverage: float | None = None
    #: fraction of the candidates read that were cut off by ``max_tokens`` (they have no answer)
    truncated: float = 0.0


NO_OUTCOME = Outcome(0.0, 1.0, {key: 0.0 for key in (*USAGE_KEYS, "tokens")}, 0.0)


@dataclass
class Row:
    """The outcomes of one curve at one budget (``identity.budget``), per problem."""

    identity: StrategyId
    per_problem: dict[str, list[Outcome]] = field(default_factory=lambda: defaultdict(list))

    @property
    def budget(self) -> int:
        """The row's budget (``summarize`` places a strategy that no budget scales at 1)."""
        return self.identity.budget or 1


def stored_candidates(stored: list[dict[str, Any]]) -> list[Candidate]:
    """The record's candidates with their answers as stored, not merged into the whole bank's classes.

    Equivalence within a tolerance is not transitive (1.0000001 and 1.0000012 are each within 1e-6 of
    1.0000007, not of each other), so classes formed over the whole bank can join answers that a live
    vote over a subset keeps apart. Each subset is grouped by the strategy's own vote instead, with the
    same ``group_equivalent`` a live run uses (its comparisons are cached).
    """
    return [Candidate.from_dict(c) for c in stored]


@dataclass(frozen=True)
class BankPrices:
    """What a sample bank's requests cost, so that k of its samples are billed as a live k-sample run on
    the same server would cost.

    A server that honours ``n`` draws many samples in one request and bills its call and prompt once (to
    the first sample); one that does not gets a request per sample. A live run of k samples therefore
    makes ⌈k / batch⌉ requests, ``batch`` being how many samples the bank's requests held (all of them,
    or ``max_concurrency`` when drawn under a budget; one on a fanned-out server), each paying a call
    and the whole prompt. The completion tokens and seconds are the samples' own.
    """

    batch: int
    #: one request's calls, prompt and cached prompt tokens (the mean over the bank's requests)
    calls: float
    prompt_tokens: float
    cached_prompt_tokens: float
    #: FLOPs per processed token (2 × parameters), read off the bank
    flops_per_token: float

    @classmethod
    def of(cls, bank: list[Candidate]) -> BankPrices:
        """The prices of a bank stored in draw order (a sample billed a call starts a request; the samples
        after it that were billed none came in the same request)."""
        sizes: list[int] = []
        for candidate in bank:
            if candidate.usage.calls or not sizes:
                sizes.append(0)
            sizes[-1] += 1
        total = Usage.total([c.usage for c in bank])
        requests = max(len(sizes), 1)
        processed = max(total.prompt_tokens - total.cached_prompt_tokens, 0) + total.completion_tokens
        return cls(
            batch=max(sizes, default=1),
            calls=total.calls / requests,
            prompt_tokens=total.prompt_tokens / requests,
            cached_prompt_tokens=total.cached_prompt_tokens / requests,
            flops_per_token=total.flops / processed if processed else 0.0,
        )

    def bill(self, read: list[Candidate], with_scoring: bool) -> dict[str, float]:
        """What a live run that drew ``read`` would have cost (and their scoring, when it reads scores)."""
        requests = -(-len(read) // self.batch)
        prompt = requests * self.prompt_tokens
        cached = requests * self.cached_prompt_tokens
        completion = sum(c.usage.completion_tokens for c in read)
        values = {
            "calls": requests * self.calls,
            "prompt_tokens": prompt,
            "cached_prompt_tokens": cached,
            "completion_tokens": float(completion),
            "seconds": sum(c.usage.seconds for c in read),
            "flops": self.flops_per_token * (max(prompt - cached, 0.0) + completion),
        }
        if with_scoring:
            scoring = Usage.total([c.scoring_usage for c in read])
            values = {key: value + float(getattr(scoring, key)) for key, value in values.items()}
        values["tokens"] = values["prompt_tokens"] + values["completion_tokens"]
        return values


def bank_outcome(
    strategy: Strategy, record: dict[str, Any], candidates: list[Candidate], budget: int
) -> Outcome:
    """Expected outcome of ``strategy.replay`` over k-subsets of the record's samples, and their cost as a
    live run of that many samples would have paid (``BankPrices``; only the samples it read: an
    early-stopping rule is billed the prefix it used).

    ``candidates`` are the record's ``stored_candidates``, built once per record for all budgets.
    """
    stored = record["candidates"]
    correct = [bool(c.get("correct")) for c in stored]
    draws = subsets(
        len(candidates),
        budget,
        stable_seed(record["strategy"], record["seed"], record["problem"]["id"], budget),
    )
    prices = BankPrices.of(candidates)
    accuracies, no_answers, truncated, usages = [], [], [], []
    for draw in draws:
        chosen = [candidates[i] for i in draw]
        choice, read = strategy.replay(chosen)
        accuracies.append(float(choice.winner is not None and correct[draw[choice.winner]]))
        no_answers.append(float(choice.answer is None))
        truncated.append(truncated_rate([c.finish_reason for c in chosen[:read]]))
        usages.append(prices.bill(chosen[:read], with_scoring=strategy.uses_scores))
    usage = {key: mean([u[key] for u in usages]) for key in usages[0]}
    coverage = pass_at_k(len(candidates), sum(correct), budget)
    return Outcome(mean(accuracies), mean(no_answers), usage, coverage, mean(truncated))


def truncated_rate(finish_reasons: list[str | None]) -> float:
    """The fraction of candidates (given by their finish reasons) cut off by ``max_tokens``."""
    return mean([float(reason == "length") for reason in finish_reasons]) if finish_reasons else 0.0


def direct_outcome(record: dict[str, Any]) -> Outcome:
    usage = Usage.from_dict(record["usage"])
    values = {key: float(getattr(usage, key)) for key in USAGE_KEYS}
    values["tokens"] = float(usage.total_tokens)
    coverage = float(any(c.get("correct") for c in record["candidates"])) if record["candidates"] else 0.0
    truncated = truncated_rate([c.get("finish_reason") for c in record["candidates"]])
    answered = float(record.get("answer") is None)
    return Outcome(float(bool(record.get("correct"))), answered, values, coverage, truncated)


def summarize(
    records: list[dict[str, Any]],
    budgets: list[int],
    rules: list[str] = (),
    seed: int = 0,
    rescores: Rescores | None = None,
) -> list[dict[str, Any]]:
    """One row per (strategy family, budget) with accuracy, coverage, intervals and mean cost.

    ``rules`` re-aggregate stored samples offline: each rule (a sample-banked strategy spec such as
    ``self-consistency``) is applied to the samples of every sample-banked family, giving rows named
    ``RULE on FAMILY`` at no new generation cost (billed scoring only if the rule reads scores). A rule
    whose scorer the samples were not scored with reads ``rescores`` (``ponder rescore``); records not
    rescored (yet) are left out of its rows.
    """
    rescores = rescores or {}
    rows: dict[StrategyId, Row] = {}
    strategies: dict[str, Strategy] = {}

    def strategy_for(spec: str) -> Strategy:
        if spec not in strategies:
            strategies[spec] = STRATEGIES.build(spec)
        return strategies[spec]

    def add(identity: StrategyId, problem: str, outcome: Outcome) -> None:
        rows.setdefault(identity, Row(identity)).per_problem[problem].append(outcome)

    for record in records:
        strategy = strategy_for(record["strategy"])
        family = StrategyId(record["family"], strategy.budget_option)  # as recorded, whatever made it
        problem = str(record["problem"]["id"])
        if record.get("budget") is not None:
            add(family.at(int(record["budget"])), problem, direct_outcome(record))
            continue
        if strategy.budget_option is None and not strategy.sample_bank:  # one run: its own answer
            add(family.at(1), problem, direct_outcome(record))
            continue
        candidates = stored_candidates(record["candidates"])
        if strategy.budget_option is None:
            outcome = bank_outcome(strategy, record, candidates, 1) if candidates else NO_OUTCOME
            add(family.at(1), problem, outcome)
            continue
        ruled = {}
        for rule in rules:
            rule_candidates = _rule_candidates(strategy_for(rule), strategy, record, candidates, rescores)
            if rule_candidates is not None:
                ruled[rule] = rule_candidates
        for budget in budgets:
            if budget > len(candidates):
                continue
            add(family.at(budget), problem, bank_outcome(strategy, record, candidates, budget))
            for rule, rule_candidates in ruled.items():
                outcome = bank_outcome(strategy_for(rule), record, rule_candidates, budget)
                add(family.ruled_by(rule).at(budget), problem, outcome)
    ranks = problem_ranks(records)
    ordered = sorted(rows.values(), key=lambda r: (r.identity.name, r.budget))
    return [_row_dict(row, seed, ranks) for row in ordered]


def _rule_candidates(
    rule: Strategy,
    strategy: Strategy,
    record: dict[str, Any],
    candidates: list[Candidate],
    rescores: Rescores,
) -> list[Candidate] | None:
    """The candidates a rule selects from: as stored, or with its scorer's rescored scores; None when
    the rule reads scores these samples were never given."""
    scorer = getattr(rule, "scorer", None)
    if scorer is None:
        return candidates
    spec = rule.options.scorer  # type: ignore[attr-defined]
    rescored = rescores.get((spec, record_key(record)))
    if rescored is not None:
        return apply_rescores(candidates, rescored, scorer)
    return candidates if getattr(strategy.options, "scorer", None) == spec else None


def known_flops(outcome: Outcome) -> float | None:
    """The outcome's FLOPs, or None where they are unknown: a backend that does not know its model's size
    bills tokens and 0 FLOPs (``Usage.flops``), and 0 must not read as free."""
    flops = outcome.usage["flops"]
    return None if flops <= 0 and outcome.usage["tokens"] > 0 else flops


def _row_dict(row: Row, seed: int, ranks: dict[str, int]) -> dict[str, Any]:
    problems = sorted(row.per_problem, key=lambda problem: ranks.get(problem, len(ranks)))

    def per_problem(get: Any) -> list[float]:
        return [mean([get(outcome) for outcome in row.per_problem[p]]) for p in problems]

    accuracy = per_problem(lambda o: o.accuracy)
    coverage = per_problem(lambda o: o.coverage if o.coverage is not None else 0.0)
    name = row.identity.name
    low, high = outcome_interval(accuracy, seed=stable_seed(seed, name, row.budget))
    coverage_low, coverage_high = outcome_interval(
        coverage, seed=stable_seed(seed, name, row.budget, "coverage")
    )
    seeds = max(len(outcomes) for outcomes in row.per_problem.values())
    result: dict[str, Any] = {
        "strategy": name,
        "budget": row.budget,
        "accuracy": mean(accuracy),
        "ci_low": low,
        "ci_high": high,
        "coverage": mean(coverage),
        "coverage_ci_low": coverage_low,
        "coverage_ci_high": coverage_high,
        "no_answer_rate": mean(per_problem(lambda o: o.no_answer)),
        "truncated_rate": mean(per_problem(lambda o: o.truncated)),
        "problems": len(problems),
        "seeds": seeds,
    }
    for key in ("tokens", *USAGE_KEYS):
        result[f"mean_{key}"] = mean(per_problem(lambda o, key=key: o.usage[key]))
    tokens = per_problem(lambda o: o.usage["tokens"])
    unknown = {p for p in problems if any(known_flops(o) is None for o in row.per_problem[p])}
    flops: list[float | None] = [
        None if p in unknown else mean([o.usage["flops"] for o in row.per_problem[p]]) for p in problems
    ]
    if unknown:
        result["mean_flops"] = None  # a mean over some problems' FLOPs would read as the whole row's
    result["per_problem"] = {  # what a paired comparison on the same problems reads
        problem: {"accuracy": accuracy[i], "tokens": tokens[i], "flops": flops[i]}
        for i, problem in enumerate(problems)
    }
    return result


def match_baseline(rows: list[dict[str, Any]], baseline: str = "self-consistency", seed: int = 0) -> None:
    """Compare every row with the baseline at the row's own cost, on the row's own problems.

    Strategies that spend compute differently (debate, search, pipelines) are compared with
    self-consistency where it is fair: on the same problems, at equal measured cost, read off the first
    self-consistency curve of the run (its own family, else a ``self-consistency on ...`` re-selection)
    in log(cost). The curve is re-averaged over the row's problems, so a strategy that covered fewer
    problems (a run stopped early, a baseline reused from a larger run) is not measured against other
    problems' accuracy. Two costs, because they part for prompt-heavy strategies: tokens count every
    prompt token, while FLOPs leave out the prompt tokens the server's cache served (a search that
    re-reads its partial solution at every step pays for it in tokens, hardly in compute).

    Each row gets, for tokens and (suffix ``_flops``) FLOPs: ``baseline_accuracy``, and the paired
    difference ``baseline_difference`` (row minus baseline) with a bootstrap interval over problems
    ``baseline_difference_ci``. The interpolation is linear in accuracy, so each problem's baseline is
    the same mix of its two neighbouring budgets; the per-problem differences are what the interval
    resamples (``difference_interval``: never a point where they are all equal). None where the row's
    cost falls outside the curve's measured range, the cost is unknown, or the baseline lacks some of
    its problems.
    """
    curves = [StrategyId.parse(r["strategy"]) for r in rows]
    candidates = [identity for identity in curves if identity.selector == baseline]
    if not candidates:
        return
    name = min(candidates, key=lambda identity: (identity.rule is not None, identity.name)).name
    curve_rows = [r for r in rows if r["strategy"] == name]
    for row in rows:
        if row["strategy"] == name:
            continue
        row["baseline"] = name
        own = row.get("per_problem", {})
        banks = [r["per_problem"] for r in curve_rows if all(p in r.get("per_problem", {}) for p in own)]
        for suffix, cost in (("", "tokens"), ("_flops", "flops")):
            known = [bank for bank in banks if all(bank[p].get(cost) is not None for p in own)]
            curve = sorted(((mean([bank[p][cost] for p in own]), bank) for bank in known), key=lambda c: c[0])
            costs = [point for point, _ in curve]
            spent = row.get(f"mean_{cost}")  # None where unknown (FLOPs of a model of unknown size)
            usable = bool(own) and bool(costs) and costs[0] > 0 and spent is not None
            matched = log_position(costs, spent) if usable else None
            if matched is None:
                row[f"baseline_accuracy{suffix}"] = None
                row[f"baseline_difference{suffix}"] = None
                row[f"baseline_difference_ci{suffix}"] = None
                continue
            low, high, share = matched
            below, above = curve[low][1], curve[high][1]
            base = {p: (1 - share) * below[p]["accuracy"] + share * above[p]["accuracy"] for p in own}
            differences = [own[p]["accuracy"] - base[p] for p in own]
            row[f"baseline_accuracy{suffix}"] = mean(list(base.values()))
            row[f"baseline_difference{suffix}"] = mean(differences)
            interval = difference_interval(
                differences, seed=stable_seed(seed, row["strategy"], row.get("budget"), cost)
            )
            row[f"baseline_difference_ci{suffix}"] = list(interval)
