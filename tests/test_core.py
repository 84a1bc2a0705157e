"""Ledger, budget, usage arithmetic and the spec parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ponder.core import Budget, Ledger, Usage, estimate_flops, parse_spec
from ponder.core.errors import BudgetExhaustedError, OptionError, UnknownNameError, UsageError
from ponder.strategies import STRATEGIES


def test_flops_skip_cached_prompt_tokens() -> None:
    assert estimate_flops(1e9, prompt_tokens=100, cached_prompt_tokens=40, completion_tokens=10) == 2e9 * 70


def test_ledger_sums_lines_and_total() -> None:
    ledger = Ledger()
    ledger.record("generate", Usage(calls=1, prompt_tokens=10, completion_tokens=5, seconds=0.5))
    ledger.record("generate", Usage(calls=1, prompt_tokens=10, cached_prompt_tokens=8, completion_tokens=7))
    ledger.record("scorer:judge", Usage(calls=2, prompt_tokens=30, completion_tokens=2))
    assert ledger.lines["generate"] == Usage(2, 20, 8, 12, 0.5, 0.0)
    total = ledger.total
    assert (total.calls, total.prompt_tokens, total.completion_tokens, total.total_tokens) == (4, 50, 14, 64)


@pytest.mark.parametrize(
    ("budget", "usage", "exhausted"),
    [
        (Budget(tokens=100), Usage(prompt_tokens=60, completion_tokens=39), False),
        (Budget(tokens=100), Usage(prompt_tokens=60, completion_tokens=40), True),
        (Budget(completion_tokens=50), Usage(prompt_tokens=500, completion_tokens=49), False),
        (Budget(calls=2), Usage(calls=2), True),
        (Budget(flops=10.0), Usage(flops=10.0), True),
        (Budget(), Usage(calls=10**6, completion_tokens=10**9), False),
    ],
)
def test_budget_caps(budget: Budget, usage: Usage, exhausted: bool) -> None:
    ledger = Ledger(budget)
    ledger.record("generate", usage)
    assert ledger.exhausted is exhausted
    if exhausted:
        with pytest.raises(BudgetExhaustedError):
            ledger.check()
    else:
        ledger.check()


def test_budget_seconds_is_wall_clock() -> None:
    ledger = Ledger(Budget(seconds=0.0))
    assert "seconds" in (ledger.exhausted_reason() or "")


def test_budget_parse_and_errors() -> None:
    assert Budget.parse("tokens=4000,calls=16,seconds=2.5") == Budget(tokens=4000, calls=16, seconds=2.5)
    assert Budget.parse(None).is_unlimited()
    with pytest.raises(OptionError, match="valid keys: tokens, completion_tokens, calls, seconds, flops"):
        Budget.parse("tokenz=5")
    with pytest.raises(OptionError, match="must be a number"):
        Budget.parse("tokens=many")


@given(st.lists(st.tuples(*(st.integers(0, 10**6) for _ in range(4))), max_size=20))
def test_usage_total_is_fieldwise_sum(rows: list[tuple[int, int, int, int]]) -> None:
    usages = [
        Usage(calls=a, prompt_tokens=b, cached_prompt_tokens=min(b, c), completion_tokens=d)
        for a, b, c, d in rows
    ]
    total = Usage.total(usages)
    assert total.calls == sum(r[0] for r in rows)
    assert total.completion_tokens == sum(r[3] for r in rows)
    assert total.total_tokens == sum(r[1] + r[3] for r in rows)


def test_parse_spec_plain_options_positional_and_brackets() -> None:
    assert parse_spec("greedy").options == {}
    spec = parse_spec("self-consistency:n=16,temperature=0.8")
    assert (spec.name, spec.positional, spec.options) == (
        "self-consistency",
        None,
        {"n": "16", "temperature": "0.8"},
    )
    spec = parse_spec("prm:Qwen/Qwen2.5-Math-PRM-7B,aggregate=min")
    assert (spec.positional, spec.options) == ("Qwen/Qwen2.5-Math-PRM-7B", {"aggregate": "min"})
    spec = parse_spec("best-of-n:n=4,scorer=[judge:top_logprobs=5,max_solution_chars=200]")
    assert spec.options["scorer"] == "judge:top_logprobs=5,max_solution_chars=200"
    assert str(parse_spec("self-consistency:n=4,max-tokens=10")) == "self-consistency:n=4,max_tokens=10"


@pytest.mark.parametrize("bad", ["", "x:n=1,oops", "x:n=[1", "x:n=1,n=2", "x:n=1)"])
def test_parse_spec_rejects_malformed(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_spec(bad)


def test_registry_builds_typed_options() -> None:
    strategy = STRATEGIES.build("self-consistency:n=16,temperature=0.5")
    assert strategy.options.n == 16 and strategy.options.temperature == 0.5
    assert strategy.spec == "self-consistency:n=16,temperature=0.5"
    overridden = STRATEGIES.build("self-consistency:n=16", n=3)
    assert overridden.options.n == 3


def test_registry_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as error:
        STRATEGIES.build("nope")
    assert error.value.exit_code == 2
    for name in ("best-of-n", "greedy", "self-consistency"):
        assert name in str(error.value)


def test_registry_unknown_option_lists_valid_options() -> None:
    with pytest.raises(
        OptionError, match="no option 'k'.*valid options: allow_truncated, max_tokens, n, scorer, seed"
    ):
        STRATEGIES.build("self-consistency:k=3")


def test_registry_bad_value_is_an_option_error() -> None:
    with pytest.raises(OptionError, match="n"):
        STRATEGIES.build("self-consistency:n=zero")
    with pytest.raises(OptionError):
        STRATEGIES.build("self-consistency:n=0")
    with pytest.raises(OptionError, match="takes no positional"):
        STRATEGIES.build("greedy:fast")
