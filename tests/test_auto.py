"""The ``auto`` strategy and its policy files, on the scripted backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ponder
from ponder.backends import GenRequest, Reply, ScriptedBackend
from ponder.core.errors import UsageError
from ponder.core.types import Candidate
from ponder.strategies import STRATEGIES
from ponder.strategies.policy import Plan, Policy, Probe, load_policy, probe_feature, shipped_policies

SAMPLING = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 64}


def write_policy(path: Path, plans: list[dict[str, object]]) -> str:
    policy = Policy(model="scripted", greedy="greedy:max_tokens=64", plans=[Plan(**plan) for plan in plans])
    policy.dump(path)
    return str(path)


def two_bins(budget: int = 8, samples: int = 2) -> dict[str, object]:
    """Hard questions (samples disagree with greedy) vote over 4 samples; easy ones keep greedy."""
    return {
        "budget": budget,
        "probe": {"samples": samples, "feature": "agreement"},
        "sampling": SAMPLING,
        "cuts": [0.5],
        "choices": ["self-consistency:n=4,max_tokens=64", "greedy:max_tokens=64"],
    }


def by_temperature(greedy: str, samples: list[str]) -> object:
    """Greedy requests get ``greedy``; sampled requests get ``samples`` in order."""
    drawn = iter(samples)

    def reply(request: GenRequest, index: int) -> str:
        return greedy if request.temperature == 0.0 else next(drawn)

    return reply


def answer(value: str) -> str:
    return f"So the answer is \\boxed{{{value}}}."


async def test_easy_question_keeps_the_greedy_answer_and_pays_only_the_probe(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.json", [two_bins()])
    backend = ScriptedBackend(script=by_temperature(answer("7"), [answer("7"), answer("7")]))
    result = await ponder.asolve("q", f"auto:budget=8,policy={policy}", backend=backend)
    assert result.answer == "7"
    assert len(result.candidates) == 3  # greedy and the two probe samples, all billed
    assert result.usage.completion_tokens == sum(c.completion_tokens for c in result.candidates)
    assert "agreement=1.00" in (result.note or "") and "greedy" in (result.note or "")


async def test_hard_question_votes_and_reuses_the_probe_samples(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.json", [two_bins()])
    samples = [answer("5"), answer("3"), answer("5"), answer("5"), answer("3")]
    backend = ScriptedBackend(script=by_temperature(answer("9"), samples))
    result = await ponder.asolve("q", f"auto:budget=8,policy={policy}", backend=backend)
    sampled = [r for r in backend.requests if r.temperature > 0]
    assert sum(r.n for r in sampled) == 4  # 2 probe samples reused, 2 more: never 2 + 4
    assert len(result.candidates) == 5  # greedy + 4 samples
    assert result.answer == "5"  # the vote of the 4 samples drawn (5, 3, 5, 5), greedy's 9 left out
    assert "self-consistency" in (result.note or "")


async def test_the_budget_picks_the_largest_tuned_plan_that_fits(tmp_path: Path) -> None:
    plans = [{"budget": 1, "choices": ["greedy:max_tokens=64"]}, two_bins(budget=8)]
    policy = write_policy(tmp_path / "p.json", plans)
    backend = ScriptedBackend(script=[answer("4")])
    result = await ponder.asolve("q", f"auto:budget=4,policy={policy}", backend=backend)
    assert len(backend.requests) == 1 and result.answer == "4"
    with pytest.raises(UsageError, match="below the policy's smallest"):
        only_eight = write_policy(tmp_path / "q.json", [two_bins()])
        await ponder.asolve("q", f"auto:budget=1,policy={only_eight}", backend=ScriptedBackend())


async def test_the_bound_covers_what_a_run_spends(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.json", [two_bins()])
    strategy = STRATEGIES.build(f"auto:budget=8,policy={policy}")
    bound = strategy.max_cost()
    samples = [answer(str(i)) for i in range(10)]
    backend = ScriptedBackend(script=by_temperature(answer("9"), samples))
    result = await ponder.asolve("q", strategy, backend=backend)
    assert result.usage.calls <= bound.calls
    assert bound.calls == 1 + 2 + 4  # greedy, the probe's 2, the costliest choice's 4 (as if not reused)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        (json.dumps({"plans": []}), "plans"),
        (json.dumps({"plans": [{"budget": 2, "cuts": [0.5], "choices": ["greedy"]}]}), "cut points"),
        (json.dumps({"plans": [{"budget": 2, "choices": ["greedy"]}], "extra": 1}), "extra"),
    ],
)
def test_a_bad_policy_file_is_a_clear_usage_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_policy(path)
    with pytest.raises(UsageError, match="cannot read policy"):
        load_policy(tmp_path / "missing.json")


async def test_without_a_policy_a_model_with_none_shipped_is_told_how_to_tune() -> None:
    with pytest.raises(UsageError, match="ponder tune"):
        await ponder.asolve("q", "auto:budget=4", backend=ScriptedBackend(model="my-own-model"))


def test_every_shipped_policy_is_valid_and_names_runnable_configurations() -> None:
    policies = shipped_policies()
    assert policies, "ponder ships a policy for its default embedded model"
    for policy in policies:
        for plan in policy.plans:
            for choice in plan.choices:
                STRATEGIES.build(choice)
        assert policy.tuning.get("problems", 0) >= 20


def candidates(*answers: str | None) -> list[Candidate]:
    return [Candidate(text="", answer=a) for a in answers]


def test_probe_features() -> None:
    [greedy] = candidates("4")
    samples = candidates("4", "4.0", "5", None)
    assert probe_feature(Probe(samples=4, feature="agreement"), greedy, samples) == 0.5
    assert probe_feature(Probe(samples=4, feature="consensus"), greedy, samples) == 3 / 5
    assert probe_feature(Probe(samples=4, feature="agreement"), candidates(None)[0], samples) == 0.0
    for candidate, score in zip(samples, (0.9, 0.5, 0.1, 0.3), strict=True):
        candidate.scores["judge"] = score
    verifier = Probe(samples=4, feature="verifier", scorer="judge")
    assert probe_feature(verifier, greedy, samples) == pytest.approx(0.45)
    with pytest.raises(ValueError, match="names its scorer"):
        Probe(samples=2, feature="verifier")


def test_bins_follow_the_cut_points() -> None:
    plan = Plan(**{**two_bins(), "cuts": [0.25, 0.75], "choices": ["greedy", "greedy", "greedy"]})
    assert [plan.bin(x) for x in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0, 1, 1, 2, 2]


async def test_a_verifier_probe_scores_the_probe_samples(tmp_path: Path) -> None:
    plan = {
        "budget": 8,
        "probe": {"samples": 2, "feature": "verifier", "scorer": "judge"},
        "sampling": SAMPLING,
        "cuts": [0.5],
        "choices": ["greedy:max_tokens=64", "greedy:max_tokens=64"],
    }
    policy = write_policy(tmp_path / "p.json", [plan])

    def reply(request: GenRequest, index: int) -> Reply:
        if request.temperature == 0.0 and "Yes" in str(request.messages):
            return Reply("Yes", top={"Yes": -0.1, "No": -2.5})
        return Reply(answer("6"))

    result = await ponder.asolve("q", f"auto:budget=8,policy={policy}", backend=ScriptedBackend(script=reply))
    assert result.answer == "6"
    assert "verifier=" in (result.note or "")
    assert result.usage_by_line.keys() >= {"generate"}


async def test_the_default_strategy_is_auto_where_a_policy_ships_and_the_vote_elsewhere() -> None:
    from ponder.api import default_strategy

    assert default_strategy("qwen2.5-coder-1.5b") == "auto"
    assert default_strategy("someone-elses-model") == "self-consistency:n=8"
    backend = ScriptedBackend(script=[answer("2")] * 8, model="someone-elses-model")
    result = await ponder.asolve("q", backend=backend)
    assert result.strategy.startswith("self-consistency") and len(result.candidates) == 8


def test_serve_runs_auto_with_the_policy_shipped_for_the_upstream_model_and_no_client_policy() -> None:
    import openai
    from test_server import scripted, serve

    upstream = scripted(name="qwen2.5-coder-1.5b")
    messages = [{"role": "user", "content": "q"}]
    with serve(upstream) as server:
        client = server.client()
        reply = client.chat.completions.create(
            model="ponder:auto:budget=4@qwen2.5-coder-1.5b", messages=messages
        )
        assert "42" in (reply.choices[0].message.content or "")
        assert reply.usage is not None and reply.usage.completion_tokens > 0
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="ponder:auto:policy=/etc/passwd@qwen2.5-coder-1.5b", messages=messages
            )
    assert "policy" in str(refused.value) and "passwd" not in str(refused.value)


@pytest.mark.parametrize(("logprob", "expected"), [(-0.01, "greedy"), (-3.0, "self-consistency")])
async def test_a_token_confidence_probe_asks_for_logprobs_and_costs_no_calls(
    tmp_path: Path, logprob: float, expected: str
) -> None:
    probe = Probe(samples=2, feature="verifier", scorer="confidence")
    assert probe.generations == 3  # greedy and two samples: confidence is read from their logprobs
    plan = {**two_bins(), "probe": probe.model_dump()}
    policy = write_policy(tmp_path / "p.json", [plan])

    def reply(request: GenRequest, index: int) -> Reply:
        text = answer("8") if request.temperature == 0.0 else answer("3")
        return Reply(text, logprob=logprob)

    backend = ScriptedBackend(script=reply)
    result = await ponder.asolve("q", f"auto:budget=8,policy={policy}", backend=backend)
    assert expected in (result.note or "")
    sampled = [r for r in backend.requests if r.temperature > 0]
    assert sampled[0].logprobs is not None
    assert len(result.candidates) == (3 if expected == "greedy" else 5)
