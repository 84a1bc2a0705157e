"""Step-level search on the scripted backend: steps, prefixes, pruning, resampling, UCT, ledger, trace.

The scripted model continues one of a few fixed solutions whose steps are separated by blank lines:
given a request's prefix it serves the next step of a solution that starts with that prefix (stopping at
the blank line and reporting it, as llama-server does), or the rest of the solution when no stop string
is asked. Every step carries its value as ``[0.7]``; the scripted judge answers "Yes" with that
probability (the last bracket in the solution it is shown).
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest

import ponder
from ponder.backends import GenRequest, Reply, ScriptedBackend
from ponder.backends.base import Generation
from ponder.core import Budget, Usage
from ponder.core.registry import Options
from ponder.core.types import Problem
from ponder.scorers import SCORERS
from ponder.scorers.judge import JUDGE_SYSTEM_PROMPT
from ponder.scorers.steps import StepScorer
from ponder.strategies.mcts import uct
from ponder.strategies.particle_filtering import (
    effective_sample_size,
    multinomial_resample,
    particle_weights,
    systematic_resample,
)

SOLUTIONS = [
    "A1 [0.9]\n\nA2 [0.3]\n\nso \\boxed{5} [0.3]",
    "B1 [0.5]\n\nB2 [0.2]\n\nso \\boxed{5} [0.1]",
    "C1 [0.7]\n\nC2 [0.9]\n\nso \\boxed{4} [0.95]",
    "D1 [0.1]\n\nD2 [0.1]\n\nso \\boxed{6} [0.1]",
]


def value_of(text: str) -> float:
    values = re.findall(r"\[([\d.]+)\]", text)
    return float(values[-1]) if values else 0.5


class StepModel(ScriptedBackend):
    """Serves SOLUTIONS step by step; records each generate call (a batch) and every usage served."""

    def __init__(self, solutions: list[str] = SOLUTIONS) -> None:
        super().__init__(script=self.reply)
        self.solutions = solutions
        self.batches: list[list[GenRequest]] = []
        self.usages: list[Usage] = []
        self.counter = 0

    def reply(self, request: GenRequest, index: int) -> Reply:
        if request.messages[0].content == JUDGE_SYSTEM_PROMPT:
            p = value_of(request.messages[1].content)
            return Reply("Yes", top={"Yes": math.log(p), "No": math.log(1 - p)})
        prefix = request.prefix or ""
        matches = [s for s in self.solutions if s.startswith(prefix)]
        rest = matches[self.counter % len(matches)][len(prefix) :]
        self.counter += 1
        if request.stop and "\n\n" in rest:
            return Reply(rest[: rest.index("\n\n")], stop_sequence="\n\n")
        return Reply(rest)

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        self.batches.append(list(requests))
        results = await super().generate(requests)
        self.usages += [g.usage for generations in results for g in generations]
        return results

    def solve_batches(self) -> list[list[GenRequest]]:
        return [b for b in self.batches if b[0].messages[0].content != JUDGE_SYSTEM_PROMPT]


def nodes_by_text(result: ponder.Result) -> dict[str, list[dict]]:
    table: dict[str, list[dict]] = {}
    for node in result.trace["nodes"]:
        table.setdefault(node["text"], []).append(node)
    return table


def assert_ledger_is_everything_served(backend: StepModel, result: ponder.Result) -> None:
    served = Usage.total(backend.usages)
    assert (result.usage.calls, result.usage.prompt_tokens, result.usage.completion_tokens) == (
        served.calls,
        served.prompt_tokens,
        served.completion_tokens,
    )


async def test_beam_search_keeps_top_beams_and_sends_one_call_per_depth() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "beam-search:n=4,width=2", backend=backend, seed=1)
    first, second, third = backend.solve_batches()
    # depth 1: one request for all four first steps, asking to stop at the blank line
    assert [(r.n, r.prefix, r.stop) for r in first] == [(4, None, ("\n\n",))]
    # depth 2: the top 4/2 = 2 beams (A1 0.9, C1 0.7), both in ONE call, each continued twice
    assert [(r.n, r.prefix) for r in second] == [(2, "A1 [0.9]\n\n"), (2, "C1 [0.7]\n\n")]
    # depth 3: the two best second steps (C2 0.9 twice) beat A2 (0.3)
    assert [(r.n, r.prefix) for r in third] == [(2, "C1 [0.7]\n\nC2 [0.9]\n\n")] * 2
    nodes = nodes_by_text(result)
    assert [n["state"] for n in nodes["B1 [0.5]\n\n"] + nodes["D1 [0.1]\n\n"]] == ["pruned", "pruned"]
    assert {n["state"] for n in nodes["A2 [0.3]\n\n"]} == {"pruned"}
    assert {n["state"] for n in nodes["C2 [0.9]\n\n"]} == {"kept"}
    # finished only: four full C solutions, each continuing its parent's prefix
    assert [c.text for c in result.candidates] == [SOLUTIONS[2]] * 4
    assert all(c.finish_reason == "stop" for c in result.candidates)
    assert result.answer == "4" and result.text == SOLUTIONS[2]
    assert result.votes == {"4": pytest.approx(4 * 0.95)}  # select=weighted, the default
    assert_ledger_is_everything_served(backend, result)
    assert result.usage_by_line["scorer:judge"].calls == 12  # 4 values per depth, one call each
    # open steps are judged as solutions in progress, finished ones as whole answers
    judged = [b for b in backend.batches if b[0].messages[0].content == JUDGE_SYSTEM_PROMPT]
    prompts = [r.messages[1].content for batch in judged for r in batch]
    assert all("solution in progress" in p for p in prompts[:8])  # depths 1 and 2: every step open
    assert all("Proposed solution" in p for p in prompts[8:])  # depth 3: every solution finished


async def test_beam_search_trace_has_parents_depths_and_scores() -> None:
    result = await ponder.asolve("q", "beam-search:n=4,width=2", backend=StepModel(), seed=1)
    trace = result.trace
    assert trace["kind"] == "search-tree"
    nodes = {n["id"]: n for n in trace["nodes"]}
    root = {"id": 0, "parent": None, "depth": 0, "text": "", "score": None, "end": "step", "state": "kept"}
    assert nodes[0] == {**root, "tokens": 0}
    for node in trace["nodes"][1:]:
        assert node["depth"] == nodes[node["parent"]]["depth"] + 1
        assert node["score"] == pytest.approx(value_of(node["text"]))
    leaves = [n for n in trace["nodes"] if n["state"] == "finished"]
    assert len(leaves) == 4 and all(n["end"] == "end" and n["depth"] == 3 for n in leaves)
    # the text of a leaf's path is its candidate's solution
    path, node = [], leaves[0]
    while node["parent"] is not None:
        path.append(node["text"])
        node = nodes[node["parent"]]
    assert "".join(reversed(path)) == SOLUTIONS[2]


async def test_beam_search_lookahead_values_a_step_by_its_greedy_rollout() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "beam-search:n=4,width=2,lookahead=1,max_depth=2", backend=backend)
    first, rollout, second = backend.solve_batches()[:3]
    assert [r.temperature for r in rollout] == [0.0] * 4 and [r.n for r in rollout] == [1] * 4
    nodes = nodes_by_text(result)
    # C1 (0.7) is valued by its rollout C2 (0.9) and now beats A1 (0.9 -> A2 0.3)
    assert nodes["C1 [0.7]\n\n"][0]["score"] == pytest.approx(0.9)
    assert nodes["A1 [0.9]\n\n"][0]["score"] == pytest.approx(0.3)
    assert [r.prefix for r in second] == ["C1 [0.7]\n\n", "A1 [0.9]\n\n"]  # B1 -> B2 0.2 is last
    assert all(n.get("rollout") for n in result.trace["nodes"] if n["depth"] == 2 and n["state"] == "pruned")
    assert result.usage_by_line["rollout"].completion_tokens == 8
    # max_depth=2: the second expansion writes to the end (no stop string), so everything finishes
    assert all(r.stop == () for r in second) and result.answer == "4"


async def test_dvts_grows_each_subtree_from_its_own_best_step() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "dvts:n=4,width=2", backend=backend)
    first, second, third = backend.solve_batches()
    assert [(r.n, r.prefix) for r in first] == [(4, None)]
    # subtrees {A1, B1} and {C1, D1}: each keeps its best and samples 2 next steps, in one call
    assert [(r.n, r.prefix) for r in second] == [(2, "A1 [0.9]\n\n"), (2, "C1 [0.7]\n\n")]
    assert [r.prefix for r in third] == ["A1 [0.9]\n\nA2 [0.3]\n\n", "C1 [0.7]\n\nC2 [0.9]\n\n"]
    assert sorted(c.answer for c in result.candidates) == ["4", "4", "5", "5"]
    assert result.answer == "4"  # weighted: 2 × 0.95 against 2 × 0.3


async def test_particle_filtering_resamples_and_carries_finished_particles() -> None:
    solutions = ["A1 [0.9]\n\nso \\boxed{5} [0.9]", "B1 [0.5]\n\nB2 [0.4]\n\nso \\boxed{7} [0.6]"]
    backend = StepModel(solutions)
    result = await ponder.asolve("q", "particle-filtering:n=4,resampling=systematic", backend=backend, seed=3)
    first, second, *rest = backend.solve_batches()
    assert [(r.n, r.prefix) for r in first] == [(4, None)]
    # weights softmax(logit) of A1 A1 B1 B1... the scripted model alternates, so 2 A1 and 2 B1;
    # systematic resampling with weights (0.9/0.1, 0.5/0.5) normalised gives A1 three or four copies
    rng = random.Random(3)
    weights = particle_weights([0.9, 0.5, 0.9, 0.5], 1.0)
    expected = systematic_resample(weights, rng.random())
    counts = {"A": sum(i in (0, 2) for i in expected), "B": sum(i in (1, 3) for i in expected)}
    drawn = {
        prefix: sum(r.n for r in second if r.prefix == prefix) for prefix in ("A1 [0.9]\n\n", "B1 [0.5]\n\n")
    }
    assert list(drawn.values()) == [counts["A"], counts["B"]]
    # finished particles are not extended again, and only finished solutions come back
    assert not [r for batch in rest for r in batch if r.prefix in solutions]
    assert result.candidates and all(c.finish_reason == "stop" for c in result.candidates)
    assert result.answer == "5"
    assert_ledger_is_everything_served(backend, result)


def test_particle_weights_are_softmax_of_logits_over_temperature() -> None:
    assert particle_weights([0.5, 0.8], 1.0) == pytest.approx([0.2, 0.8])  # odds 1 : 4
    assert particle_weights([0.5, 0.8], 2.0) == pytest.approx([1 / 3, 2 / 3])  # odds 1 : √4
    assert particle_weights([0.0, 1.0], 1.0)[1] == pytest.approx(1.0)  # clipped, still finite
    assert sum(particle_weights([0.3, 0.3, 0.3], 0.5)) == pytest.approx(1.0)


def test_effective_sample_size() -> None:
    assert effective_sample_size([0.25] * 4) == pytest.approx(4.0)
    assert effective_sample_size([1.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert effective_sample_size([0.2, 0.8]) == pytest.approx(1 / 0.68)


def test_systematic_resampling_counts() -> None:
    # points 0.125, 0.375, 0.625, 0.875 against cumulative 0.1, 0.3, 0.6, 1.0
    assert systematic_resample([0.1, 0.2, 0.3, 0.4], 0.5) == [1, 2, 3, 3]
    assert systematic_resample([0.25] * 4, 0.0) == [0, 1, 2, 3]
    assert systematic_resample([0.0, 1.0, 0.0], 0.9) == [1, 1, 1]
    # each particle is drawn floor(N w) or ceil(N w) times, whatever the offset
    weights = [0.05, 0.15, 0.3, 0.5]
    for offset in (0.0, 0.3, 0.99):
        drawn = systematic_resample(weights, offset)
        for i, w in enumerate(weights):
            assert math.floor(4 * w) <= drawn.count(i) <= math.ceil(4 * w)


def test_multinomial_resampling_is_seeded() -> None:
    weights = [0.1, 0.6, 0.3]
    assert multinomial_resample(weights, random.Random(7)) == sorted(
        random.Random(7).choices(range(3), weights=weights, k=3)
    )


async def test_particle_filtering_without_resampling_when_ess_is_high() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "particle-filtering:n=4,ess_threshold=0", backend=backend)
    # no resampling: every particle keeps its own line, so all four solutions finish
    assert sorted(c.answer for c in result.candidates) == ["4", "5", "5", "6"]
    assert result.answer == "4"  # select=best: 0.95


def test_uct_prefers_value_then_exploration() -> None:
    assert uct(0.0, 0, 10, 1.4) == math.inf
    assert uct(1.8, 2, 4, 0.0) == pytest.approx(0.9)
    assert uct(0.5, 1, 4, 1.0) == pytest.approx(0.5 + math.sqrt(math.log(4)))
    # a rarely visited mediocre child beats a well-visited good one when exploring enough
    assert uct(0.5, 1, 10, 1.4) > uct(8.0, 9, 10, 1.4)


async def test_mcts_selects_by_uct_expands_and_backpropagates() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "mcts:iterations=3,width=2", backend=backend)
    first, second, third = backend.solve_batches()
    assert [(r.n, r.prefix) for r in first] == [(2, None)]  # the root: A1 (0.9), B1 (0.5)
    # iteration 2: UCT 0.9 + c·√(ln 2) against 0.5 + c·√(ln 2): A1
    assert [(r.n, r.prefix) for r in second] == [(2, "A1 [0.9]\n\n")]
    # iteration 3: A1's mean fell to (0.9 + 0.3 + 0.3) / 3 = 0.5; with ln 4 at the root, B1 (1 visit) wins
    assert [(r.n, r.prefix) for r in third] == [(2, "B1 [0.5]\n\n")]
    assert result.answer is None and "none ended within 3 iterations" in (result.note or "")
    assert result.candidates == []


async def test_mcts_with_rollouts_returns_finished_rollouts() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "mcts:iterations=1,width=2,value=rollout", backend=backend)
    expansion, rollouts = backend.solve_batches()
    assert [(r.n, r.stop) for r in rollouts] == [(1, ()), (1, ())]  # to the end, no stop string
    assert sorted(c.text for c in result.candidates) == sorted([SOLUTIONS[0], SOLUTIONS[1]])
    assert {n["state"] for n in result.trace["nodes"] if n.get("rollout")} == {"finished"}
    assert result.answer == "5"


async def test_best_first_expands_the_best_frontier_node_and_stops_at_a_finished_one() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "best-first:n=10,width=4", backend=backend)
    prefixes = [b[0].prefix for b in backend.solve_batches()]
    # root; A1 (0.9); then C1 (0.7) beats A2 (0.3); then C2 (0.9); then the finished C (0.95) is popped
    assert prefixes == [None, "A1 [0.9]\n\n", "C1 [0.7]\n\n", "C1 [0.7]\n\nC2 [0.9]\n\n"]
    assert result.answer == "4" and result.text == SOLUTIONS[2]


async def test_no_finished_solution_gives_no_answer_and_a_note() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "beam-search:n=4,width=2,max_tokens=3", backend=backend)
    assert result.answer is None and result.candidates == []
    assert result.note is not None and result.note.startswith("no solution finished")
    assert {n["state"] for n in result.trace["nodes"][1:]} <= {"truncated", "pruned", "kept"}


async def test_a_step_reaching_the_token_cap_at_its_boundary_is_truncated_not_continued() -> None:
    backend = StepModel(["one two three\n\nfour \\boxed{4}"])
    result = await ponder.asolve("q", "beam-search:n=1,width=1,max_tokens=3", backend=backend)
    assert len(backend.solve_batches()) == 1  # nothing left to spend on a second step
    assert [(n["end"], n["state"]) for n in result.trace["nodes"][1:]] == [("length", "truncated")]
    assert result.answer is None


async def test_tokens_per_step_sends_no_stop_string_and_caps_each_step() -> None:
    backend = StepModel(["one two three four five six seven \\boxed{8} [0.9]"])
    result = await ponder.asolve("q", "beam-search:n=2,width=2,tokens_per_step=3", backend=backend)
    batches = backend.solve_batches()
    assert all(r.stop == () and r.max_tokens == 3 for b in batches for r in b)
    assert [b[0].prefix for b in batches] == [None, "one two three", "one two three four five six"]
    assert result.answer == "8"


async def test_step_scorer_values_the_last_step_of_the_path() -> None:
    seen: list[list[list[str]]] = []

    class LastBracket(StepScorer):
        name = "test-last-bracket"

        async def evaluate(self, problem: Problem, steps: list[list[str]]) -> tuple[list, list]:
            seen.append(steps)
            return [[value_of(step) for step in path] for path in steps], [Usage(calls=1)] * len(steps)

    class LastBracketOptions(Options):
        aggregate: str = "last"

    if "test-last-bracket" not in SCORERS.names():
        SCORERS.register("test-last-bracket", LastBracketOptions)(LastBracket)
    backend = StepModel()
    result = await ponder.asolve("q", "beam-search:n=4,width=2,scorer=test-last-bracket", backend=backend)
    assert seen[1][0] == ["A1 [0.9]", "A2 [0.3]"]  # the path's steps, delimiter stripped
    assert result.answer == "4"
    assert result.usage_by_line["scorer:test-last-bracket"].calls == 12
    assert not [b for b in backend.batches if b[0].messages[0].content == JUDGE_SYSTEM_PROMPT]


async def test_budget_stops_the_search_gracefully() -> None:
    backend = StepModel()
    result = await ponder.asolve("q", "beam-search:n=4,width=2", backend=backend, budget=Budget(calls=2))
    assert len(backend.solve_batches()) == 1
    assert result.budget_exhausted and result.answer is None


@pytest.mark.parametrize(
    ("spec", "option", "depth"),
    [
        ("beam-search:n=16,width=4,lookahead=0", "n", 40),
        ("dvts:n=16,width=4", "n", 40),
        ("particle-filtering:n=16,temperature=1.0", "n", 40),
        ("mcts:iterations=32", "iterations", 32),
        ("best-first", "n", 16),
    ],
)
def test_specs_parse_with_their_budget_and_depth_options(spec: str, option: str, depth: int) -> None:
    strategy = ponder.strategies.STRATEGIES.build(spec)
    assert strategy.budget_option == option and not strategy.sample_bank
    assert strategy.depth == depth  # sequential rounds, which ``ponder serve --max-depth`` caps
    assert strategy.options.delimiter == "\n\n"  # type: ignore[attr-defined]
    escaped = ponder.strategies.STRATEGIES.build(spec, delimiter="\\n")
    assert escaped.options.delimiter == "\n"  # type: ignore[attr-defined]


async def test_eval_runs_a_search_once_per_budget(tmp_path: Path) -> None:
    from ponder.eval.runner import EvalConfig, run_eval
    from ponder.eval.store import RecordStore

    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"question": "problem 1", "answer": "4"}) + "\n")
    config = EvalConfig(f"jsonl:{data}", ["beam-search:width=2"], budgets=[2, 4], model="scripted")
    summary = await run_eval(config, StepModel(), tmp_path / "run", show_progress=False)
    assert [(row["strategy"], row["budget"]) for row in summary["rows"]] == [
        ("beam-search:width=2", 2),
        ("beam-search:width=2", 4),
    ]
    records = RecordStore(tmp_path / "run").load()
    assert sorted(r["strategy"] for r in records) == ["beam-search:n=2,width=2", "beam-search:n=4,width=2"]
    assert all(r["trace"]["kind"] == "search-tree" for r in records)
    assert all(c["finish_reason"] == "stop" for r in records for c in r["candidates"])


@pytest.fixture(scope="module")
def small_model_ready() -> None:
    from ponder.backends.embedded.models import prepare_model
    from ponder.backends.embedded.runtime import ensure_llama_server

    ensure_llama_server(quiet=True)
    prepare_model("qwen2.5-coder-0.5b", quiet=True)


@pytest.mark.integration
async def test_beam_search_on_the_embedded_model(small_model_ready: None) -> None:
    from ponder.backends.embedded.backend import embedded_backend

    backend = embedded_backend("qwen2.5-coder-0.5b")
    result = await ponder.asolve(
        "Tom has 3 apples and buys 5 more. Then he eats 2. How many apples does he have?",
        "beam-search:n=2,width=2,max_depth=2,max_tokens=40,temperature=0.7,scorer=confidence",
        backend=backend,
        seed=0,
    )
    assert result.trace is not None and len(result.trace["nodes"]) > 2
    generate = result.usage_by_line["generate"]
    assert generate.completion_tokens > 0 and generate.calls >= 2
    assert generate.cached_prompt_tokens > 0  # later depths reuse the shared prefix
    assert all(c.finish_reason == "stop" for c in result.candidates)
    assert result.answer is not None or result.note
