"""Every strategy's ``max_cost`` bounds what it really sends upstream, driven to work its hardest.

Each case runs a strategy on the scripted backend through a backend that counts every choice it
returns as one request (the worst case: a server that does not honour ``n``) and every completion
token, with replies chosen to keep it working: answers that never agree, judges and verifiers that
never accept, steps that never finish a solution, decompositions with every atom independent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ponder.backends import GenRequest
from ponder.backends.base import Generation
from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.context import Context
from ponder.core.cost import Cost
from ponder.core.types import Problem
from ponder.roles import ROLES, Role
from ponder.scorers import SCORERS, Scorer
from ponder.strategies import STRATEGIES, Strategy
from ponder.strategies.pipeline import PipelineStrategy
from ponder.strategies.policy import SHIPPED

#: longer than any ``max_tokens`` used here, so every reply of the long script is cut at its limit
LONG = " ".join(["word"] * 1100)
CODE_PROBLEM = Problem(question="Write f(x) in Python.", id="code")
MATH_PROBLEM = Problem(question="What is 2 + 3?", id="math")


@dataclasses.dataclass
class CountingBackend(ScriptedBackend):
    """A scripted backend that counts each choice as one upstream request, and its completion tokens."""

    calls: int = 0
    completion_tokens: int = 0

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        results = await super().generate(requests)
        for generations in results:
            self.calls += len(generations)
            self.completion_tokens += sum(generation.completion_tokens for generation in generations)
        return results

    @property
    def spent(self) -> Cost:
        return Cost(self.calls, self.completion_tokens)


def review(request: GenRequest, index: int) -> str | Reply | None:
    """A reply that keeps a reviewing prompt from accepting anything, or None for a solving prompt."""
    system = request.messages[0].content if request.messages[0].role == "system" else ""
    user = request.messages[-1].content
    if "reply Yes or No" in system or "You reply Yes or No" in system:  # judge, verifier role, detect
        return Reply("No", top={"No": -0.05, "Yes": -3.0})
    if "rate them from 0 to 10" in system:
        return "Score: 0"
    if "'Verdict: correct'" in user:  # verifier chains, feedback, critic: short checks disagree
        return f"Checked. Verdict: {'correct' if request.n > 1 and index % 2 else 'incorrect'}"
    if "Score: N" in user:
        return "Weak. Score: 1"
    if "RankGPT" in system:
        return "[2] > [1]"
    if "A or B" in user:
        return "A"
    if "strengths and weaknesses" in user:
        return "Weak."
    return None


def decomposition(request: GenRequest, index: int) -> str | None:
    """Replies for the prompts that ask for lists, rewrites, plans and tests."""
    user = request.messages[-1].content
    if "smallest sub-questions" in user:  # every atom independent, as many as are read
        return "\n".join(f"{i}. What is {i} + {i}? (depends on: none)" for i in range(1, 21))
    if "self-contained question" in user:
        return "What is 5 + 6?"
    if "non-obvious observations" in user:
        return "\n".join(f"{i}. Observation {i}." for i in range(1, 11))
    if "a plan to solve the problem" in user:
        return f"Plan {index}: add the numbers."
    if "assert statements" in user:
        return "```python\nassert f(1) == 1\nassert f(2) == 2\n```"
    return None


def hardest(long: bool, code: bool = False):  # noqa: ANN201 - a Script
    """The script: reviews that never accept, lists that keep a strategy busy, solutions that never
    agree (code that differs each time when ``code``), long replies when ``long``."""

    def script(request: GenRequest, index: int) -> str | Reply:
        reply = review(request, index) or decomposition(request, index)
        if reply is not None:
            return reply
        padding = LONG + " " if long else ""
        if "\n\n" in request.stop:  # a step of a step search: it ends at a step boundary
            return Reply(f"{padding}Step {index}.", stop_sequence="\n\n")
        if "Wait" in request.stop:  # solve-detect-verify: a hesitation point after an answer
            return Reply(f"{padding}The answer is {index}.", stop_sequence="Wait")
        if code:
            return f"```python\ndef f(x):\n    return {index}\n```"
        if long:
            return f"{padding}The answer is {index}."
        return f"Hmm {index} </think> The answer is {index}."  # a thinking budget's "Wait" is spent

    return script


def custom_pipeline(folder: Path) -> str:
    """A pipeline whose pool grows, is ranked pairwise, verified by a scorer, tested and fused."""
    path = folder / "every-role.yaml"
    path.write_text(
        "layers:\n"
        "  - {role: generator, n: 2, personas: [a;b]}\n"
        "  - {role: generator, n: 3}\n"
        "  - {role: critic}\n"
        "  - {role: ranker, method: pairwise, keep: 2}\n"
        "  - {role: verifier, scorer: 'tests:tests=generated'}\n"
        "  - {role: ranker, method: scorer, scorer: judge}\n"
        "  - {role: test-generator, writers: 2}\n"
        "  - {role: test-runner, keep: 1}\n"
        "  - {role: fuser, n: 2}\n",
        encoding="utf-8",
    )
    return f"pipeline:{path},max_tokens=16"


SMALL = [
    "greedy:max_tokens=16",
    "self-consistency:n=3,max_tokens=16",
    "self-consistency:n=2,scorer=judge,max_tokens=16",
    "best-of-n:n=3,scorer=[genverifier:verifications=2,max_tokens=8],max_tokens=16",
    "best-of-n:n=2,scorer=[grm:samples=2,max_tokens=8],max_tokens=16",
    "best-of-n:n=2,scorer=[judge:mode=verbal],max_tokens=16",
    "best-of-n:n=2,scorer=confidence,max_tokens=16",
    "best-of-n:n=2,scorer=[tests:tests=generated,max_tokens=16],max_tokens=16",
    "first-finish:n=3,k=2,max_tokens=16",
    "adaptive-consistency:max_n=5,batch=2,max_tokens=16",
    "adaptive-consistency:max_n=4,rule=window,window=2,max_tokens=16",
    "deepconf:n=5,warmup=2,chunk=4,max_tokens=16",
    "deepconf:n=3,mode=offline,max_tokens=16",
    "thinking-budget:tokens=16,cuts=3,wait=2,answer_tokens=4",
    "iterative-deepening:initial=4,max_tokens=24",
    "solve-detect-verify:max_tokens=24,checks=2,check_tokens=8,long_check_tokens=8,revisions=2",
    "beam-search:n=4,width=2,max_depth=3,max_tokens=32",
    "beam-search:n=4,width=2,max_depth=3,lookahead=2,scorer=[genverifier:verifications=2],max_tokens=32",
    "dvts:n=5,width=2,max_depth=3,max_tokens=32",
    "dvts:n=4,width=2,max_depth=1,scorer=[grm:samples=2],max_tokens=32",
    "best-first:n=3,width=2,max_depth=3,max_tokens=32",
    "mcts:iterations=4,width=2,max_depth=3,max_tokens=32",
    "mcts:iterations=3,width=2,max_depth=3,value=rollout,max_tokens=32",
    "particle-filtering:n=4,max_depth=3,max_tokens=32",
    "particle-filtering:n=3,max_depth=2,scorer=[tests:tests=generated],max_tokens=32",
    "atom-of-thoughts:depth=2,max_atoms=3,then=[best-of-n:n=2,scorer=judge,max_tokens=16],max_tokens=16",
    "debate:agents=2,rounds=2,max_tokens=16",
    "evolve:rounds=2,population=2,scorer=[genverifier:verifications=2],max_tokens=16",
    "plansearch:observations=3,subset=2,scorer=judge,max_tokens=16",
    "plansearch:observations=2,subset=1,max_tokens=16",
    "qalign:steps=3,scorer=judge,max_tokens=16",
    "self-refine:rounds=2,n=2,feedback_tokens=8,max_tokens=16",
    "critique-refine:rounds=1,n=2,feedback_tokens=8,max_tokens=16",
    "pipeline:moa,max_tokens=16",
    "pipeline:archon-basic,max_tokens=16",
    "pipeline:generate-verify,max_tokens=16",
]
#: driven on a code problem, whose candidates differ, so that the sandboxed selection round runs
CODE = ["test-select:n=3,writers=2,k=2,max_tokens=16", "test-select:n=2,selection=false,max_tokens=16"]


def defaults() -> list[str]:
    """Every registered strategy with its default options (a pipeline needs a preset to be named, auto a
    policy: the scripted model has none shipped)."""
    named = {"pipeline": "pipeline:moa", "auto": f"auto:policy={SHIPPED / 'qwen2.5-coder-1.5b.json'}"}
    return [named.get(name, name) for name in STRATEGIES.names()]


async def spend(spec: str, long: bool, code: bool = False) -> tuple[Cost, Cost]:
    """What the strategy of ``spec`` sent, and its bound."""
    strategy = STRATEGIES.build(spec)
    backend = CountingBackend(script=hardest(long, code))
    problem = CODE_PROBLEM if code else MATH_PROBLEM
    await strategy.run(problem, Context(backend=backend, seed=0))
    return backend.spent, strategy.max_cost()


def assert_within(spec: str, spent: Cost, bound: Cost) -> None:
    assert spent.calls <= bound.calls, f"{spec}: {spent.calls} calls over its bound of {bound.calls}"
    assert spent.completion_tokens <= bound.completion_tokens, (
        f"{spec}: {spent.completion_tokens} completion tokens over its bound of {bound.completion_tokens}"
    )


@pytest.mark.parametrize("long", [False, True], ids=["short-replies", "long-replies"])
@pytest.mark.parametrize("spec", SMALL)
async def test_small_options_stay_within_the_bound(spec: str, long: bool) -> None:
    spent, bound = await spend(spec, long)
    assert spent.calls > 0
    assert_within(spec, spent, bound)


@pytest.mark.parametrize("long", [False, True], ids=["short-replies", "long-replies"])
@pytest.mark.parametrize("spec", defaults())
async def test_default_options_stay_within_the_bound(spec: str, long: bool) -> None:
    spent, bound = await spend(spec, long, code=spec == "test-select")
    assert_within(spec, spent, bound)


@pytest.mark.parametrize("spec", CODE)
async def test_test_select_with_its_selection_round_stays_within_the_bound(spec: str) -> None:
    spent, bound = await spend(spec, long=False, code=True)
    assert_within(spec, spent, bound)


async def test_a_pipeline_of_every_role_stays_within_the_bound(tmp_path: Path) -> None:
    spec = custom_pipeline(tmp_path)
    for long in (False, True):
        spent, bound = await spend(spec, long)
        assert_within(spec, spent, bound)


async def test_the_bound_of_a_busy_run_is_reached_not_just_respected() -> None:
    """Tight where nothing stops early: a bound far above the truth would refuse honest requests."""
    for spec in ("self-consistency:n=3", "debate:agents=2,rounds=2", "pipeline:moa"):
        spent, bound = await spend(spec, long=True)
        assert spent == bound, spec
    spent, bound = await spend("best-of-n:n=3,scorer=[genverifier:verifications=2]", long=True)
    assert spent.calls == bound.calls == 3 + 3 * 2


def test_the_amplification_attack_of_issue_14_is_counted_whole() -> None:
    """best-of-n:n=16 with 64 verifications per candidate: 16 samples + 1024 verifications a run."""
    cost = STRATEGIES.build("best-of-n:n=16,scorer=[genverifier:verifications=64]").max_cost() * 4
    assert cost.calls == 4 * (16 + 16 * 64)
    assert cost.completion_tokens == 4 * (16 * 1024 + 16 * 64 * 1024)


def test_a_pipeline_tracks_how_its_pool_grows() -> None:
    """Generators replace the pool, a pairwise ranker pays per pair of what is there, keep trims it."""
    strategy = STRATEGIES.build("pipeline:archon-basic")
    assert isinstance(strategy, PipelineStrategy)
    generate, critique, rank, fuse = strategy.roles
    assert generate.max_pool(0) == 5 and rank.max_pool(5) == 3 and fuse.max_pool(0) == 0
    pairwise = ROLES.build("ranker:method=pairwise,keep=2")
    assert pairwise.max_cost(5) == Cost.sample(10, 64) and pairwise.max_cost(1) == Cost()
    expected = Cost.sample(5, 1024) + Cost.sample(5, 256) + Cost.sample(1, 64) + Cost.sample(1, 1024)
    assert strategy.max_cost() == expected


def test_every_registered_strategy_scorer_and_role_states_its_cost() -> None:
    for spec in defaults():
        assert isinstance(STRATEGIES.build(spec).max_cost(), Cost), spec
    unstated = [
        entry.name
        for registry, base in ((STRATEGIES, Strategy), (SCORERS, Scorer), (ROLES, Role))
        for entry in registry.entries()
        if entry.factory.__module__.startswith("ponder.")  # not a test's own registration
        and entry.factory.max_cost is base.max_cost  # type: ignore[attr-defined]
    ]
    assert unstated == []
