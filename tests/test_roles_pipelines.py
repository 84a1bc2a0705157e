"""Roles, pipelines and the multi-call strategies on the scripted backend: who sees what, in which
round, what each role bills, and how pipelines load and fail to load."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import ponder
from ponder.backends import Backends, GenRequest, Reply, ScriptedBackend
from ponder.cli.main import build_parser, solve_spec
from ponder.context import Context
from ponder.core import Budget, Usage
from ponder.core.errors import OptionError, UsageError
from ponder.core.types import Problem
from ponder.eval.runner import EvalConfig, run_eval
from ponder.pipelines import load_pipeline, presets
from ponder.roles.generator import REFERENCES_PROMPT
from ponder.scorers.judge import JUDGE_SYSTEM_PROMPT
from ponder.strategies import STRATEGIES
from ponder.strategies.atom_of_thoughts import CONTRACT_PROMPT
from ponder.strategies.debate import DEBATE_TEMPLATE
from ponder.tasks.extract import extract_code


def system_of(request: GenRequest) -> str:
    return request.messages[0].content if request.messages[0].role == "system" else ""


def assert_lines_add_up(result: ponder.Result) -> None:
    total = Usage.total(list(result.usage_by_line.values()))
    assert (total.calls, total.prompt_tokens, total.completion_tokens) == (
        result.usage.calls,
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
    )


def numbered(request: GenRequest, index: int) -> str:
    """Each reply names its position in the run: ``reply 3 \\boxed{3}``."""
    return f"reply {index} \\boxed{{{index}}}"


# --- pipelines: presets and message flow ---------------------------------------------------------


async def test_moa_proposers_then_refiners_see_the_previous_layer_and_the_aggregator_fuses() -> None:
    backend = ScriptedBackend(script=numbered)
    result = await ponder.asolve("What is 1+1?", "pipeline:moa", backend=backend)
    propose, refine, aggregate = backend.requests
    assert (propose.n, refine.n, aggregate.n) == (3, 3, 1)
    assert REFERENCES_PROMPT not in system_of(propose)
    # layer 2 sees the three proposals; the aggregator sees the refinements, not the proposals
    assert all(f"reply {i} " in system_of(refine) for i in (0, 1, 2))
    assert all(f"reply {i} " in system_of(aggregate) for i in (3, 4, 5))
    assert "reply 0 " not in system_of(aggregate)
    assert result.answer == "6" and result.text == "reply 6 \\boxed{6}"
    assert [c.answer for c in result.candidates] == [str(i) for i in range(7)]
    lines = result.usage_by_line
    assert set(lines) == {"role:propose@scripted", "role:refine@scripted", "role:aggregate@scripted"}
    assert lines["role:propose@scripted"].completion_tokens == 3 * 3  # three words each
    assert lines["role:aggregate@scripted"].calls == 1
    assert_lines_add_up(result)
    assert [layer["layer"] for layer in result.trace["layers"]] == ["propose", "refine", "aggregate"]
    assert result.trace["layers"][1]["references"] is True


async def test_archon_critiques_reach_the_ranker_and_the_fuser_gets_the_top_three_in_rank_order() -> None:
    def script(request: GenRequest, index: int) -> str:
        user = request.messages[-1].content
        if "strengths and weaknesses" in user:
            return f"critique of {user.split('Proposed solution:')[1].split()[1]}"
        if "[] > []" in user:
            return "[4] > [2] > [5]"
        return numbered(request, index)

    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "pipeline:archon-basic", backend=backend)
    generate, *critiques, rank, fuse = backend.requests
    assert generate.n == 5 and len(critiques) == 5
    assert [c.messages[-1].content.count("reply ") for c in critiques] == [1] * 5
    assert "critique of 3" in rank.messages[-1].content  # the ranker sees the critiques
    order = [system_of(fuse).index(f"reply {i} ") for i in (3, 1, 4)]
    assert order == sorted(order)  # ranked [4] > [2] > [5] -> candidates 3, 1, 4, best first
    assert "reply 0 " not in system_of(fuse) and "critique of 1" in system_of(fuse)
    assert result.trace["layers"][2]["order"][:3] == [3, 1, 4]
    assert result.usage_by_line["role:critique@scripted"].calls == 5
    assert_lines_add_up(result)


def verdicts(yes: set[int]):
    """Solutions 0..4 by index; the verifier says Yes to those in ``yes`` (read from logprobs)."""

    def script(request: GenRequest, index: int) -> Reply:
        if system_of(request) == JUDGE_SYSTEM_PROMPT:
            number = int(request.messages[1].content.split("\\boxed{")[1].split("}")[0])
            return Reply("Yes", top={"Yes": -0.1, "No": -3.0} if number in yes else {"Yes": -3.0, "No": -0.1})
        return Reply(f"so \\boxed{{{[7, 8, 8, 9, 7][index]}}}")

    return script


async def test_verifier_keeps_what_passes_and_the_vote_runs_on_it() -> None:
    backend = ScriptedBackend(script=verdicts(yes={7}))
    result = await ponder.asolve("q", "pipeline:generate-verify", backend=backend)
    # 8 has more samples, but only the 7s pass the verifier
    assert result.answer == "7" and result.votes == {"7": 2.0}
    verify = result.trace["layers"][1]
    assert (verify["passed"], verify["fall_through"]) == (2, False)
    assert backend.requests[1].logprobs == 10 and backend.requests[1].max_tokens == 1
    assert result.usage_by_line["role:verify@scripted"].calls == 5


async def test_verifier_falls_through_when_nothing_passes() -> None:
    backend = ScriptedBackend(script=verdicts(yes=set()))
    result = await ponder.asolve("q", "pipeline:generate-verify", backend=backend)
    assert result.trace["layers"][1]["fall_through"] is True
    # every candidate is kept and voted on: 7 and 8 tie, the first seen wins
    assert result.answer == "7" and result.votes == {"7": 2.0, "8": 2.0, "9": 1.0}


async def test_pairwise_and_scorer_rankers(tmp_path: Path) -> None:
    def script(request: GenRequest, index: int) -> str | Reply:
        user = request.messages[-1].content
        if "A or B" in user:  # prefer the solution with the larger number
            first, second = (int(part.split("}")[0]) for part in user.split("\\boxed{")[1:3])
            return "A" if first > second else "B"
        if system_of(request) == JUDGE_SYSTEM_PROMPT:
            return Reply("Yes", top={"Yes": -0.1, "No": -3.0} if "{2}" in user else {"No": -0.1, "Yes": -3.0})
        return f"\\boxed{{{index}}}"

    pairwise = tmp_path / "pairwise.yaml"
    pairwise.write_text(
        "layers:\n  - {role: generator, n: 3}\n  - {role: ranker, method: pairwise, keep: 1}\n"
    )
    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", f"pipeline:{pairwise}", backend=backend)
    assert len(backend.requests) == 1 + 3  # three pairs
    assert result.answer == "2" and result.trace["layers"][1]["scores"] == [0.0, 1.0, 2.0]

    by_scorer = tmp_path / "scorer.json"
    by_scorer.write_text(
        json.dumps(
            {
                "layers": [
                    {"role": "generator", "n": 3},
                    {"role": "ranker", "method": "scorer", "scorer": "judge", "keep": 1},
                ]
            }
        )
    )
    result = await ponder.asolve("q", f"pipeline:{by_scorer}", backend=ScriptedBackend(script=script))
    assert result.answer == "2"
    assert result.usage_by_line["scorer:judge"].calls == 3


async def test_roles_on_named_models_are_billed_each_on_their_own_line(tmp_path: Path) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_text(
        "name: mixed\nlayers:\n"
        "  - {name: propose, role: generator, n: 2, models: [small, large], personas: [a careful checker]}\n"
        "  - {name: fuse, role: fuser, model: judge-model}\n"
    )
    strategy = STRATEGIES.build(f"pipeline:{path}")
    small, large, fuser = (
        ScriptedBackend(model=m, script=[f"{m} \\boxed{{1}}"]) for m in ("small", "large", "judge-model")
    )
    pool = Backends()
    for backend in (small, large, fuser):
        pool.add(backend.model, backend)
    default = ScriptedBackend()
    result = await ponder.asolve("q", strategy, backend=default, backends=pool)
    assert default.requests == []
    assert [r.n for r in small.requests] == [2] and [r.n for r in large.requests] == [2]
    assert "You are a careful checker." in system_of(small.requests[0])
    assert "small \\boxed{1}" in system_of(fuser.requests[0]) and "large" in system_of(fuser.requests[0])
    assert set(result.usage_by_line) == {"role:propose@small", "role:propose@large", "role:fuse@judge-model"}
    assert result.usage_by_line["role:propose@large"].completion_tokens == 4
    assert [c["model"] for c in result.trace["layers"][0]["candidates"]] == [
        "small",
        "small",
        "large",
        "large",
    ]


# --- pipelines: loading and validation -------------------------------------------------------------


def test_every_preset_loads_and_python_objects_are_the_same_schema() -> None:
    assert presets() == ["archon-basic", "generate-verify", "moa"]
    roles = {name: [layer.role for layer in load_pipeline(name).layers] for name in presets()}
    assert roles == {
        "archon-basic": ["generator", "critic", "ranker", "fuser"],
        "generate-verify": ["generator", "verifier"],
        "moa": ["generator", "generator", "fuser"],
    }
    from ponder.pipelines import Pipeline
    from ponder.roles.fuser import FuserOptions
    from ponder.roles.generator import GeneratorOptions

    built = Pipeline(
        name="moa",
        layers=[
            GeneratorOptions(n=3, name="propose"),
            GeneratorOptions(n=3, name="refine"),
            FuserOptions(name="aggregate"),
        ],
    )
    assert built.layers == load_pipeline("moa").layers
    assert load_pipeline({"layers": [{"role": "generator"}]}).layers[0].n == 1


def test_validation_errors_name_the_layer_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "layers:\n"
        "  - {role: generator, n: 2}\n"
        "  - {name: refine, role: generator, n: 0}\n"
        "  - {name: fuse, role: fuser, temprature: 0.2}\n"
        "  - {role: summoner}\n"
        "  - {n: 3}\n"
    )
    with pytest.raises(OptionError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert f"pipeline {path}:" in message
    assert "layer 1 'refine' (generator): field 'n': Input should be greater than or equal to 1" in message
    assert "layer 2 'fuse' (fuser): field 'temprature': Extra inputs are not permitted" in message
    assert "valid fields: base_url, max_tokens, model, n, name, role, temperature" in message
    assert "layer 3: field 'role' must be one of: critic, fuser, generator" in message
    assert "layer 4: field 'role' is required" in message
    assert "layer 0" not in message
    with pytest.raises(OptionError, match="field 'scorer'|set scorer exactly"):
        load_pipeline({"layers": [{"role": "ranker", "method": "scorer"}]})
    with pytest.raises(OptionError, match="layers: List should have at least 1 item"):
        load_pipeline({"layers": []})
    with pytest.raises(UsageError, match="neither a preset .*archon-basic.* nor a file"):
        STRATEGIES.build("pipeline:no-such-pipeline")
    (tmp_path / "list.yaml").write_text("- role: generator\n")
    with pytest.raises(OptionError, match="expected a mapping with 'layers'"):
        load_pipeline(tmp_path / "list.yaml")


def test_solve_takes_a_pipeline_flag() -> None:
    args = build_parser().parse_args(["solve", "q", "--pipeline", "my pipes/a,b.yaml"])
    assert solve_spec(args) == "pipeline:[my pipes/a,b.yaml]"
    assert STRATEGIES.parse_options(solve_spec(args))[1].pipeline == "my pipes/a,b.yaml"
    both = build_parser().parse_args(["solve", "q", "--pipeline", "moa", "-s", "greedy"])
    with pytest.raises(UsageError, match="not both"):
        solve_spec(both)


async def test_eval_runs_a_pipeline_file_through_the_registry(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"question": f"problem {i}", "answer": i}) + "\n" for i in (1, 2)))
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text("layers:\n  - {role: generator, n: 2}\n  - {role: fuser}\n")

    def script(request: GenRequest, index: int) -> str:
        return f"\\boxed{{{request.messages[-1].content.split()[-1]}}}"

    config = EvalConfig(
        dataset=f"jsonl:{data}",
        strategies=[f"pipeline:{pipe}", "self-consistency"],
        budgets=[1, 2],
        model="scripted",
    )
    summary = await run_eval(config, ScriptedBackend(script=script), tmp_path / "run", show_progress=False)
    rows = {(row["strategy"], row["budget"]): row for row in summary["rows"]}
    pipeline = rows[(f"pipeline:pipeline={pipe}", 1)]
    assert pipeline["accuracy"] == 1.0 and pipeline["problems"] == 2
    assert pipeline["mean_calls"] == 2  # one generator request (n=2) and one fuser request
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert all(
        r["trace"]["layers"][1]["role"] == "fuser" for r in records if r["strategy"].startswith("pipeline")
    )


# --- debate -----------------------------------------------------------------------------------------


async def test_debate_agents_see_the_others_latest_answers_and_the_last_round_votes() -> None:
    answers = ["\\boxed{1}", "\\boxed{2}", "\\boxed{3}", "\\boxed{2}", "\\boxed{2}", "\\boxed{3}"]
    backend = ScriptedBackend(script=[f"agent says {a}" for a in answers])
    result = await ponder.asolve("q", "debate:agents=3,rounds=2,personas=[a skeptic;a poet]", backend=backend)
    first, second = backend.requests[:3], backend.requests[3:]
    assert all(len(r.messages) == 2 for r in first)
    assert "You are a skeptic." in system_of(first[0]) and "You are a poet." in system_of(first[1])
    assert "You are a skeptic." in system_of(first[2])  # personas taken in turn
    for agent, request in enumerate(second):
        own, update = request.messages[-2], request.messages[-1]
        assert own.role == "assistant" and own.content == f"agent says {answers[agent]}"
        assert update.content.startswith(DEBATE_TEMPLATE.split("{")[0])
        others = [answers[j] for j in range(3) if j != agent]
        assert all(other in update.content for other in others)
        assert answers[agent] not in update.content
    assert result.answer == "2" and result.votes == {"2": 2.0, "3": 1.0}
    assert result.trace["rounds"] == [["1", "2", "3"], ["2", "2", "3"]]
    assert len(result.candidates) == 6
    assert {line: u.calls for line, u in result.usage_by_line.items()} == {
        "role:agent1@scripted": 2,
        "role:agent2@scripted": 2,
        "role:agent3@scripted": 2,
    }
    assert_lines_add_up(result)


async def test_debate_third_round_shows_only_the_latest_answers_and_models_alternate() -> None:
    strategy = STRATEGIES.build("debate:agents=2,rounds=3,models=[m1,m2],temperature=0.5")
    assert strategy.spec == "debate:agents=2,models=[m1;m2],rounds=3,temperature=0.5"
    m1 = ScriptedBackend(model="m1", script=lambda r, i: f"m1 round {i} \\boxed{{{i}}}")
    m2 = ScriptedBackend(model="m2", script=lambda r, i: f"m2 round {i} \\boxed{{{i}}}")
    pool = Backends()
    pool.add("m1", m1)
    pool.add("m2", m2)
    result = await ponder.asolve("q", strategy, backend=ScriptedBackend(), backends=pool)
    assert len(m1.requests) == len(m2.requests) == 3
    third = m1.requests[2].messages[-1].content
    assert "m2 round 1 " in third and "m2 round 0 " not in third  # only the other's latest answer
    assert m1.requests[2].messages[-2].content.startswith("m1 round 1 ")
    assert set(result.usage_by_line) == {"role:agent1@m1", "role:agent2@m2"}
    assert [a["model"] for a in result.trace["agents"]] == ["m1", "m2"]


async def test_debate_stops_when_the_budget_is_met() -> None:
    backend = ScriptedBackend(script=["\\boxed{4}"])
    result = await ponder.asolve("q", "debate:agents=3,rounds=3", backend=backend, budget=Budget(calls=3))
    assert len(backend.requests) == 3 and result.budget_exhausted
    assert result.answer == "4" and len(result.trace["rounds"]) == 1


def test_list_options_print_back_as_a_spec_that_parses() -> None:
    strategy = STRATEGIES.build("debate:models=[m1,m2],personas=[a careful, slow checker;a poet]")
    assert strategy.options.personas == ["a careful, slow checker", "a poet"]
    again = STRATEGIES.build(strategy.spec)
    assert again.options == strategy.options


# --- evolve, plansearch, atom of thoughts -------------------------------------------------------------


async def test_evolve_shows_the_best_parents_of_the_previous_round_with_their_scores() -> None:
    def script(request: GenRequest, index: int) -> Reply:
        if system_of(request) == JUDGE_SYSTEM_PROMPT:
            good = "\\boxed{5}" in request.messages[1].content
            return Reply("Yes", top={"Yes": -0.1, "No": -3.0} if good else {"Yes": -3.0, "No": -0.1})
        return Reply(["first \\boxed{4}", "second \\boxed{5}"][index % 2])

    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "evolve:rounds=2,population=2,parents=1", backend=backend)
    solving = [r for r in backend.requests if system_of(r) != JUDGE_SYSTEM_PROMPT]
    assert [r.n for r in solving] == [2, 2]
    assert "earlier solutions" not in system_of(solving[0])
    shown = system_of(solving[1])
    assert "second \\boxed{5}" in shown and "first \\boxed{4}" not in shown and "score 0.95" in shown
    assert result.answer == "5"
    assert result.trace["rounds"][0]["parents"] == [1]
    assert result.usage_by_line["role:evolve@scripted"].calls == 2
    assert result.usage_by_line["scorer:judge"].calls == 4
    assert_lines_add_up(result)


async def test_plansearch_plans_from_subsets_of_observations_and_implements_each() -> None:
    def script(request: GenRequest, index: int) -> str:
        user = request.messages[-1].content
        if "observations about it" in user:
            return "1. sort first\n2. use a set\n3. mind empty input"
        if "describe in a few sentences" in user:
            picked = [
                line[2:] for line in user.split("Useful observations:\n")[1].split("\n\n")[0].splitlines()
            ]
            return "plan: " + " + ".join(picked)
        return "\\boxed{8}" if user.endswith("plan: sort first") else "\\boxed{9}"

    backend = ScriptedBackend(script=script)
    result = await ponder.asolve("q", "plansearch", backend=backend)
    observe, plans, implement = backend.requests[0], backend.requests[1:7], backend.requests[7:]
    assert "List 3 useful" in observe.messages[-1].content
    assert len(plans) == 6 and len(implement) == 6  # subsets of size 1 and 2 of 3 observations
    assert "- sort first\n- use a set" in plans[3].messages[-1].content
    assert implement[3].messages[-1].content.endswith("Follow this plan:\nplan: sort first + use a set")
    system, user = implement[3].messages  # the task's own prompt and format, the plan after the question
    assert system.role == "system" and user.content.startswith("q\n\nFollow this plan:")
    assert result.trace["observations"] == ["sort first", "use a set", "mind empty input"]
    assert result.answer == "9" and result.votes == {"9": 5.0, "8": 1.0}
    assert set(result.usage_by_line) == {
        "role:observe@scripted",
        "role:plan@scripted",
        "role:implement@scripted",
    }


def atoms_script(request: GenRequest, index: int) -> str:
    user = request.messages[-1].content
    if "Break this question" in user:
        if user.startswith("What is 6+1?"):
            return "1. What is 6+1? (depends on: none)"
        return "1. What is 2*3? (depends on: none)\n2. What is that plus 1? (depends on: 1)"
    if "already known" in user:
        return "What is 6+1?"
    if user == "What is 2*3?":
        return "\\boxed{6}"
    return f"\\boxed{{7}} from {user}"


async def test_atom_of_thoughts_solves_independent_atoms_contracts_and_stops_when_atomic() -> None:
    backend = ScriptedBackend(script=atoms_script)
    result = await ponder.asolve("What is 2*3+1?", "atom-of-thoughts", backend=backend)
    decompose, solve, contract, decompose_again, final = backend.requests
    assert solve.messages[-1].content == "What is 2*3?" and solve.messages[0].role == "system"
    assert contract.messages[-1].content == CONTRACT_PROMPT.format(
        question="What is 2*3+1?", facts="- What is 2*3? Answer: 6"
    )
    assert decompose_again.messages[-1].content.startswith("What is 6+1?")
    assert final.messages[-1].content == "What is 6+1?" and final.temperature == 0.0  # greedy
    assert result.answer == "7" and result.strategy == "atom-of-thoughts"
    first, second = result.trace["transitions"]
    assert first["solved"] == {"What is 2*3?": "6"} and first["contracted"] == "What is 6+1?"
    assert first["atoms"][1]["depends_on"] == [0]
    assert second["stopped"] == "atomic"
    assert {line: u.calls for line, u in result.usage_by_line.items()} == {
        "role:decompose@scripted": 2,
        "role:solve-atoms@scripted": 1,
        "role:contract@scripted": 1,
        "generate": 1,
    }
    assert_lines_add_up(result)


async def test_atom_of_thoughts_preprocesses_for_another_strategy() -> None:
    backend = ScriptedBackend(script=atoms_script)
    problem = Problem(question="What is 2*3+1?", id="p1", reference="7")
    result = await ponder.asolve(problem, "atom-of-thoughts:then=[self-consistency:n=3]", backend=backend)
    final = backend.requests[-1]
    assert final.n == 3 and final.messages[-1].content == "What is 6+1?"
    assert result.votes == {"7": 3.0} and len(result.candidates) == 3
    assert result.trace["then"] == "self-consistency:n=3"


# --- test-select (sandboxed) --------------------------------------------------------------------------

BUGGY_FOR_LARGE = "```python\ndef add(a, b):\n    return a + b if a < 5 else 0\n```"
WRONG = "```python\ndef add(a, b):\n    return a - b\n```"
RIGHT = "```python\ndef add(a, b):\n    return a + b\n```"


def coding_script(request: GenRequest, index: int) -> str:
    user = request.messages[-1].content
    if "tell these candidates apart" in user:
        return "```python\nassert add(7, 1) == 8\n```"
    if "independent assert statements" in user:
        return "```python\nassert add(1, 1) == 2\nassert add(0, 0) == 0\n```"
    return [BUGGY_FOR_LARGE, WRONG, RIGHT][index % 3]


async def test_test_select_votes_by_tests_passed_then_discriminating_tests_pick_the_finalist() -> None:
    backend = ScriptedBackend(script=coding_script)
    problem = Problem(question="Write add(a, b) that returns a + b.")
    result = await ponder.asolve(problem, "test-select:n=3,writers=1", backend=backend, system_prompt=None)
    generate, write, select = backend.requests
    assert generate.n == 3 and write.n == 1
    assert "Write 5 independent assert statements" in write.messages[-1].content
    # the selection round sees the three distinct finalists, in voting order
    shown = select.messages[-1].content
    assert shown.index("a < 5") < shown.index("return a + b\n") < shown.index("a - b")
    assert result.trace["voting"] == [1.0, 0.5, 1.0]
    assert result.trace["selection"]["finalists"] == [0, 2, 1]
    assert result.trace["selection"]["scores"] == pytest.approx([2 / 3, 1.0, 1 / 3])
    assert result.text == RIGHT and result.trace["winner"] == 2
    assert result.usage_by_line["role:test-runner@sandbox"].seconds > 0
    assert {"role:generate@scripted", "role:test-writer@scripted", "role:select@scripted"} <= set(
        result.usage_by_line
    )


async def test_test_select_without_selection_takes_the_first_best_voted() -> None:
    backend = ScriptedBackend(script=coding_script)
    problem = Problem(question="Write add(a, b) that returns a + b.")
    result = await ponder.asolve(problem, "test-select:n=3,writers=1,selection=false", backend=backend)
    assert len(backend.requests) == 2 and "selection" not in result.trace
    assert result.text == BUGGY_FOR_LARGE  # tied with RIGHT on the voting tests, and first


# --- the real embedded model ----------------------------------------------------------------------------


@pytest.mark.integration
async def test_moa_runs_on_the_embedded_model() -> None:
    """The moa preset end to end on the smallest embedded model (wiring, not accuracy): about 15 s alone,
    about 60 s on a 2-core machine shared with other model servers."""
    model = "smollm2-135m"
    spec = "pipeline:moa,max_tokens=16,allow_truncated=true"  # 16 tokens cut answers off: let them vote
    result = await ponder.asolve("What is 12 + 30?", spec, model=model, seed=0)
    assert set(result.usage_by_line) == {
        f"role:{layer}@{model}" for layer in ("propose", "refine", "aggregate")
    }
    assert len(result.candidates) == 7 and result.text == result.candidates[-1].text
    assert all(0 < c.completion_tokens <= 16 for c in result.candidates)
    assert (
        result.usage_by_line[f"role:refine@{model}"].prompt_tokens
        > result.usage_by_line[f"role:propose@{model}"].prompt_tokens
    )


async def test_a_pipeline_keeps_the_candidate_that_passes_the_given_tests(tmp_path: Path) -> None:
    path = tmp_path / "code.yaml"
    path.write_text(
        "layers:\n  - {role: generator, n: 3}\n  - {name: run, role: test-runner, source: given, keep: 1}\n"
    )
    backend = ScriptedBackend(script=[WRONG, BUGGY_FOR_LARGE, RIGHT])
    tests = ["assert add(1, 1) == 2", "assert add(7, 1) == 8"]
    problem = Problem(question="Write add(a, b).", metadata={"tests": tests})
    ctx = Context(backend=backend, extract=extract_code)  # as the eval sets up a code dataset
    result = await STRATEGIES.build(f"pipeline:{path}").run(problem, ctx)
    assert result.text == RIGHT and result.answer == extract_code(RIGHT) and len(result.candidates) == 3
    assert result.trace["layers"][1]["scores"] == [0.0, 0.5, 1.0]
    assert result.usage_by_line["role:run@sandbox"].seconds > 0


async def test_backends_build_each_named_model_once_and_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """One pool answers judges, critics and roles: the run's own model is the run's backend; another
    name is built once (even when asked for concurrently) and started before use."""
    built: list[tuple[str | None, str | None]] = []

    class Started(ScriptedBackend):
        started = 0

        async def start(self) -> None:
            await asyncio.sleep(0)  # yields, so a second caller would build again without the lock
            self.started += 1

    def make_backend(model: str | None = None, base_url: str | None = None) -> ScriptedBackend:
        built.append((model, base_url))
        return Started(model=model or "default", script=["x"])

    monkeypatch.setattr("ponder.backends.make_backend", make_backend)
    run = ScriptedBackend(model="run", script=["x"])
    pool = Backends()
    assert await pool.get(run) is run and await pool.get(run, "run") is run
    first, second = await asyncio.gather(pool.get(run, "big"), pool.get(run, "big"))
    assert first is second and first.started == 1
    served = await pool.get(run, "run", "http://127.0.0.1:9/v1")  # the same name on a server is another
    assert served is not run
    assert built == [("big", None), ("run", "http://127.0.0.1:9/v1")]
