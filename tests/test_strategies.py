"""Every strategy on the scripted backend: what it asks for, what it selects, what it bills."""

from __future__ import annotations

import pytest

import ponder
from ponder.backends import GenRequest, Reply, ScriptedBackend
from ponder.core import Budget, Usage
from ponder.scorers.judge import JUDGE_SYSTEM_PROMPT


def assert_usage_is_sum_of_candidates(result: ponder.Result) -> None:
    total = Usage.total([c.usage for c in result.candidates])
    generation = result.usage_by_line["generate"]
    assert (generation.calls, generation.prompt_tokens, generation.completion_tokens) == (
        total.calls,
        total.prompt_tokens,
        total.completion_tokens,
    )


async def test_greedy_samples_once_at_temperature_zero() -> None:
    backend = ScriptedBackend(script=["Step one. The answer is \\boxed{12}."])
    result = await ponder.asolve("What is 3*4?", "greedy", backend=backend)
    assert result.answer == "12"
    [request] = backend.requests
    assert (request.n, request.temperature) == (1, 0.0)
    assert result.usage.calls == 1
    assert result.usage.completion_tokens == 6
    assert result.text == "Step one. The answer is \\boxed{12}."


async def test_self_consistency_votes_over_equivalence_classes() -> None:
    script = ["\\boxed{391}", "\\boxed{390}", "so 391.0", "\\boxed{\\frac{782}{2}}", "\\boxed{390}"]
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("What is 17*23?", "self-consistency:n=5,temperature=0.7", backend=backend)
    assert result.answer == "391"
    assert result.votes == {"391": 3.0, "390": 2.0}
    assert [c.answer for c in result.candidates][:2] == ["391", "390"]
    assert backend.requests[0].n == 5 and backend.requests[0].temperature == 0.7
    assert_usage_is_sum_of_candidates(result)


async def test_self_consistency_tie_breaks_to_first_seen_class() -> None:
    for script, winner in ((["\\boxed{2}", "\\boxed{5}"], "2"), (["\\boxed{5}", "\\boxed{2}"], "5")):
        result = await ponder.asolve("q", "self-consistency:n=2", backend=ScriptedBackend(script=script))
        assert result.answer == winner


async def test_self_consistency_weighted_by_scorer() -> None:
    script = [
        Reply("\\boxed{7}", logprob=-0.05),
        Reply("\\boxed{9}", logprob=-3.0),
        Reply("\\boxed{9}", logprob=-3.0),
    ]
    backend = ScriptedBackend(script=script)
    plain = await ponder.asolve("q", "self-consistency:n=3", backend=ScriptedBackend(script=script))
    weighted = await ponder.asolve("q", "self-consistency:n=3,scorer=confidence", backend=backend)
    assert plain.answer == "9"
    assert weighted.answer == "7"  # exp(-0.05) > 2·exp(-3)
    assert backend.requests[0].logprobs == 0


async def test_no_answer_is_reported_not_raised() -> None:
    backend = ScriptedBackend(script=["I am not sure about this one."])
    result = await ponder.asolve("q", "self-consistency:n=3", backend=backend)
    assert result.answer is None
    assert result.note == "no candidate gave an extractable answer"
    assert len(result.candidates) == 3


def judge_script(correct: str) -> object:
    def reply(request: GenRequest, index: int) -> Reply:
        if request.messages[0].content == JUDGE_SYSTEM_PROMPT:
            solution = request.messages[1].content
            yes = -0.1 if f"\\boxed{{{correct}}}" in solution else -2.5
            return Reply("Yes", top={"Yes": yes, "No": -1.0, " maybe": -4.0})
        return Reply(["\\boxed{5}", "\\boxed{6}", "\\boxed{5}"][index % 3])

    return reply


async def test_best_of_n_with_judge_picks_highest_p_yes() -> None:
    backend = ScriptedBackend(script=judge_script("6"))
    result = await ponder.asolve("q", "best-of-n:n=3,scorer=judge", backend=backend)
    assert result.answer == "6"  # the majority says 5, the judge prefers 6
    scores = [c.score for c in result.candidates]
    assert scores[1] == max(scores) and scores[1] > 0.5 > scores[0]
    judge_requests = [r for r in backend.requests if r.messages[0].content == JUDGE_SYSTEM_PROMPT]
    assert len(judge_requests) == 3 and all(r.max_tokens == 1 and r.logprobs == 10 for r in judge_requests)
    assert result.usage_by_line["scorer:judge"].calls == 3
    assert result.usage.calls == result.usage_by_line["generate"].calls + 3
    assert_usage_is_sum_of_candidates(result)


async def test_best_of_n_with_confidence_requests_logprobs_and_makes_no_extra_calls() -> None:
    script = [
        Reply("\\boxed{1}", logprob=-1.0),
        Reply("\\boxed{2}", logprob=-0.2),
        Reply("\\boxed{3}", logprob=-0.9),
    ]
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "best-of-n:n=3,scorer=confidence", backend=backend)
    assert result.answer == "2"
    assert backend.requests[0].logprobs == 0
    assert set(result.usage_by_line) == {"generate"}


async def test_best_of_n_prefers_candidates_with_an_answer() -> None:
    script = [Reply("no idea", logprob=-0.01), Reply("\\boxed{4}", logprob=-2.0)]
    result = await ponder.asolve(
        "q", "best-of-n:n=2,scorer=confidence", backend=ScriptedBackend(script=script)
    )
    assert result.answer == "4"


async def test_budget_stops_sampling_between_batches() -> None:
    backend = ScriptedBackend(script=["one two three four \\boxed{1}"])
    backend.capabilities = backend.capabilities.__class__(max_concurrency=2)
    result = await ponder.asolve(
        "q", "self-consistency:n=10", backend=backend, budget=Budget(completion_tokens=12)
    )
    # batches of 2 candidates × 5 tokens: 10 tokens < 12 allows a second batch, then 20 ≥ 12 stops
    assert len(result.candidates) == 4
    assert result.budget_exhausted and result.answer == "1"


async def test_seed_is_forwarded_and_options_override_spec() -> None:
    backend = ScriptedBackend(script=["\\boxed{1}"])
    await ponder.asolve("q", "self-consistency:n=8", backend=backend, seed=7, n=2, max_tokens=64)
    [request] = backend.requests
    assert (request.n, request.seed, request.max_tokens) == (2, 7, 64)


async def test_max_tokens_truncation_is_reported() -> None:
    backend = ScriptedBackend(script=["a b c d e f \\boxed{3}"])
    result = await ponder.asolve("q", "greedy:max_tokens=3", backend=backend)
    assert result.candidates[0].finish_reason == "length"
    assert result.candidates[0].completion_tokens == 3
    assert result.answer is None


async def test_conversation_messages_reach_the_backend() -> None:
    backend = ScriptedBackend(script=["\\boxed{2}"])
    messages = [ponder.Message("system", "Be brief."), ponder.Message("user", "1+1?")]
    result = await ponder.asolve(messages, "greedy", backend=backend)
    assert backend.requests[0].messages == tuple(messages)
    assert result.answer == "2"


def test_sync_solve_wraps_async() -> None:
    result = ponder.solve("q", "greedy", backend=ScriptedBackend(script=["\\boxed{8}"]))
    assert result.answer == "8"


@pytest.mark.parametrize("spec", ["nope", "self-consistency:m=2"])
def test_bad_strategy_specs_raise_usage_errors(spec: str) -> None:
    with pytest.raises(ponder.core.UsageError):
        ponder.solve("q", spec, backend=ScriptedBackend())


def test_every_default_strategy_fits_the_servers_default_depth_cap() -> None:
    from ponder.server.lifecycle import ServerSettings
    from ponder.strategies import STRATEGIES

    cap = ServerSettings().max_depth
    for name in STRATEGIES.names():
        spec = "pipeline:moa" if name == "pipeline" else name
        strategy = STRATEGIES.build(spec)
        assert 1 <= strategy.depth <= cap, (spec, strategy.depth)
    assert STRATEGIES.build("pipeline:moa").depth == 3  # propose, refine, aggregate
    assert STRATEGIES.build("beam-search:max_depth=7").depth == 7
