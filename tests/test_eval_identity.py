"""StrategyId: a strategy's identity in the eval, built once from a strategy, read back from row names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ponder.core.types import Problem
from ponder.eval.identity import StrategyId
from ponder.eval.runner import EvalConfig, plan, write_summary
from ponder.eval.summary import match_baseline
from ponder.strategies import STRATEGIES

RUNS = Path(__file__).resolve().parent.parent / "docs" / "runs"
#: what a summary row's identity decides: its name and budget, and the values whose intervals it seeds
IDENTIFIED = (
    *("strategy", "budget", "problems", "seeds", "baseline"),
    *("accuracy", "ci_low", "ci_high", "coverage", "coverage_ci_low", "coverage_ci_high"),
)


@pytest.mark.parametrize(
    ("spec", "identity"),
    [
        ("greedy", StrategyId("greedy")),
        ("self-consistency:n=16,temperature=0.5", StrategyId("self-consistency:temperature=0.5", "n", 16)),
        ("beam-search:width=2,n=4", StrategyId("beam-search:width=2", "n", 4)),
        # a bracketed value stays whole: the family is read off the options, not re-parsed from text
        ("debate:models=[a,b],rounds=3", StrategyId("debate:models=[a;b],rounds=3")),
        (
            "best-of-n:scorer=[judge:mode=verbal],n=4",
            StrategyId("best-of-n:scorer=judge:mode=verbal", "n", 4),
        ),
    ],
)
def test_a_strategys_identity_is_its_family_and_the_budget_it_runs_at(
    spec: str, identity: StrategyId
) -> None:
    assert StrategyId.of(STRATEGIES.build(spec)) == identity


@pytest.mark.parametrize(
    ("name", "family", "rule"),
    [
        ("best-of-n:max_tokens=512", "best-of-n:max_tokens=512", None),
        ("self-consistency on best-of-n:max_tokens=512", "best-of-n:max_tokens=512", "self-consistency"),
        # a rule holding " on " inside brackets is split where the names join, not inside the rule
        (
            "best-of-n:scorer=[judge:persona=focus on units] on best-of-n",
            "best-of-n",
            "best-of-n:scorer=[judge:persona=focus on units]",
        ),
    ],
)
def test_a_row_name_parses_back_to_its_family_and_rule(name: str, family: str, rule: str | None) -> None:
    identity = StrategyId.parse(name)
    assert (identity.family, identity.rule) == (family, rule)
    assert identity.name == str(identity) == name


def test_the_selector_and_short_name_come_from_the_rule_when_there_is_one() -> None:
    ruled = StrategyId("best-of-n:max_tokens=512", "n").ruled_by("self-consistency:temperature=0.5")
    assert ruled.name == "self-consistency:temperature=0.5 on best-of-n:max_tokens=512"
    assert (ruled.selector, ruled.short_name) == ("self-consistency", "self-consistency on best-of-n")
    plain = StrategyId("self-consistency:max_tokens=512", "n", 4)
    assert (plain.selector, plain.short_name) == ("self-consistency", "self-consistency")
    assert plain.at(2) == StrategyId("self-consistency:max_tokens=512", "n", 2)


def test_the_baseline_prefers_its_own_family_over_a_re_selection() -> None:
    def row(name: str) -> dict:
        costs = {"accuracy": 1.0, "tokens": 10.0, "flops": 1.0}
        return {"strategy": name, "mean_tokens": 10.0, "mean_flops": 1.0, "per_problem": {"a": costs}}

    rows = [row("self-consistency on best-of-n"), row("self-consistency:max_tokens=512"), row("greedy")]
    match_baseline(rows)
    assert rows[2]["baseline"] == rows[0]["baseline"] == "self-consistency:max_tokens=512"


@pytest.mark.parametrize("run", sorted(path.name for path in RUNS.iterdir() if (path / "run.json").exists()))
def test_committed_runs_summarise_to_the_same_rows_and_resume_onto_their_own_records(
    run: str, tmp_path: Path
) -> None:
    """The on-disk formats stay readable: every committed run re-summarises to its committed rows (same
    names in the same order, same accuracy and coverage with the intervals seeded by those names; costs
    follow the billing, not the identity), and the units its manifest plans have the keys and families
    its records hold, so a resume repeats nothing and adds to the same curves."""
    copy = tmp_path / run
    shutil.copytree(RUNS / run, copy)
    committed = json.loads((copy / "summary.json").read_text())
    rows = write_summary(copy, rules=committed["run"].get("rules"))["rows"]
    assert [_identified(row) for row in rows] == [_identified(row) for row in committed["rows"]]

    manifest = json.loads((copy / "run.json").read_text())
    config = EvalConfig(manifest["dataset"], manifest["strategies"], manifest["budgets"])
    planned = {(u.key[0], u.identity.family, u.budget) for u in plan(config, [Problem("q", id="p")])}
    records = [json.loads(line) for line in (copy / "records.jsonl").read_text().splitlines()]
    assert planned <= {(r["strategy"], r["family"], r["budget"]) for r in records}


def _identified(row: dict) -> dict:
    return {key: row.get(key) for key in IDENTIFIED}
