"""``ponder tune`` end to end on eval runs made with the scripted backend, and its replay of ``auto``.

The synthetic task has two kinds of question: on even ones greedy decoding is right and most samples
share one wrong answer; on odd ones greedy is wrong and most samples are right. No single configuration
is best on both, and agreement between greedy and the first samples tells them apart: what a probe is
for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.backends import Capabilities, GenRequest, Reply, ScriptedBackend
from ponder.cli.main import main
from ponder.core.errors import UsageError
from ponder.eval.banks import load_records, problem_banks
from ponder.eval.replay import config_of, outcome
from ponder.eval.runner import EvalConfig, run_eval
from ponder.eval.tune import Space, policy_of, tune
from ponder.eval.tune_report import evaluate_policy, replay_policy
from ponder.strategies.policy import load_policy

SIZE = 8


def samples_of(number: int) -> list[str]:
    if number % 2 == 0:  # easy: greedy right; 3 of 8 samples right, the rest one common wrong answer
        return [str(number) if k in (0, 3, 5) else str(1000 + number) for k in range(SIZE)]
    return [str(2000 + 10 * number + k) if k % 4 == 2 else str(number) for k in range(SIZE)]  # hard


def greedy_of(number: int) -> str:
    return str(number) if number % 2 == 0 else str(3000 + number)


def write_dataset(path: Path, first: int, count: int) -> str:
    rows = [{"id": f"q{i}", "question": f"problem {i}", "answer": i} for i in range(first, first + count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return f"jsonl:{path}"


class Bimodal(ScriptedBackend):
    """Greedy and sampled answers per problem as above; samples in a fixed order per problem."""

    def __init__(self) -> None:
        served: dict[int, int] = {}

        def script(request: GenRequest, index: int) -> Reply:
            number = int(request.messages[-1].content.split()[-1])
            if request.temperature == 0.0:
                return Reply(f"think think \\boxed{{{greedy_of(number)}}}")
            position = served.get(number, 0)
            served[number] = position + 1
            return Reply(f"think \\boxed{{{samples_of(number)[position % SIZE]}}}")

        super().__init__(script=script, capabilities=Capabilities(honours_n=False))


async def make_run(directory: Path, first: int, count: int, strategies: list[str] | None = None) -> Path:
    dataset = write_dataset(directory.parent / f"{directory.name}.jsonl", first, count)
    strategies = strategies or ["greedy:max_tokens=64", "self-consistency:max_tokens=64"]
    config = EvalConfig(dataset=dataset, strategies=strategies, budgets=[1, 2, 4, 8], model="scripted")
    await run_eval(config, Bimodal(), directory, show_progress=False)
    return directory


@pytest.fixture
async def tuning_run(tmp_path: Path) -> Path:
    return await make_run(tmp_path / "tune", 0, 30)


async def test_tuning_finds_the_probe_that_separates_the_two_kinds(tuning_run: Path) -> None:
    records, meta = load_records([tuning_run])
    space = Space.of(problem_banks(records), [1, 2, 4, 8])
    reports = tune(space, [1, 2, 4, 8])
    policy = policy_of(space, reports, meta)
    by_budget = {plan.budget: plan for plan in policy.plans}
    assert by_budget[1].probe is None  # no room for a probe in one generation
    plan = by_budget[8]
    assert plan.probe is not None and plan.probe.feature in ("agreement", "consensus")
    assert plan.choices[-1].startswith("greedy")  # the easiest bin keeps the greedy answer
    assert any(choice.startswith("self-consistency") for choice in plan.choices[:-1])
    expected = {e["budget"]: e for e in policy.tuning["expected"]}[8]
    # cross-validated, paired by problem: better than the best single configuration and than greedy
    assert expected["gain_over_best_single"]["ci"][0] > 0
    assert expected["gain_over_greedy"]["difference"] > 0.2
    assert policy.tuning["greedy"]["accuracy"] == pytest.approx(0.5)


async def test_replay_bills_the_probe_once_and_reuses_its_samples(tuning_run: Path) -> None:
    records, _ = load_records([tuning_run])
    problems = problem_banks(records)
    space = Space.of(problems, [1, 2, 4, 8])
    option = next(o for o in space.tables if o is not None and o.probe.samples == 2)
    problem = problems[1]  # a hard one
    bank = problem.banks[option.key]
    vote = config_of("self-consistency:n=4,max_tokens=64")
    after_probe = outcome(vote, problem, 0, option)
    alone = outcome(vote, problem, 0)
    # after a 2-sample probe, 4 samples cost greedy + the same first 4 samples: not 2 + 4 samples
    assert after_probe.tokens == pytest.approx(problem.greedy_tokens + alone.tokens)
    assert after_probe.correct == alone.correct
    greedy = outcome(config_of("greedy:max_tokens=64"), problem, 0, option)
    assert greedy.tokens == pytest.approx(problem.greedy_tokens + bank.tokens(bank.orders[0][:2]))
    assert greedy.correct == 0.0


async def test_the_cli_writes_a_policy_that_auto_runs_and_a_held_out_evaluation(
    tmp_path: Path, capsys
) -> None:
    tuning = await make_run(tmp_path / "tune", 0, 30)
    held_out = await make_run(tmp_path / "held", 100, 20)
    policy_path = tmp_path / "policy.json"
    assert main(["tune", str(tuning), "--out", str(policy_path), "--budgets", "1,4,8", "--no-plot"]) == 0
    assert "policy by budget" in capsys.readouterr().out
    policy = load_policy(policy_path)
    assert [plan.budget for plan in policy.plans] == [1, 4, 8]

    assert main(["tune", str(held_out), "--evaluate", str(policy_path), "--json", "--no-plot"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    at_8 = {entry["budget"]: entry for entry in evaluation["budgets"]}[8]
    assert at_8["auto"]["accuracy"] > evaluation["greedy"]["accuracy"] + 0.3
    assert at_8["bars"]["not_below_best"] and at_8["bars"]["at_least_greedy"]
    assert {row["config"] for row in at_8["fixed"]} >= {
        "greedy:max_tokens=64",
        "self-consistency:max_tokens=64",  # n=8, the default
    }

    # live: auto in ponder eval scores and spends exactly what the replay of the same draw says (the
    # scripted server serves each problem's samples in stored order, so the live draw is that order)
    live_dir = await make_run(tmp_path / "live", 100, 20, [f"auto:budget=8,policy={policy_path}"])
    [row] = json.loads((live_dir / "summary.json").read_text())["rows"]
    problems = problem_banks(load_records([held_out])[0])
    for problem in problems:
        for bank in problem.banks.values():
            bank.orders = [list(range(len(bank.candidates)))]
    replayed = replay_policy(policy, problems, 8)
    assert row["accuracy"] == pytest.approx(replayed.accuracy)
    assert row["mean_tokens"] == pytest.approx(replayed.mean_tokens)


async def test_held_out_problems_that_repeat_tuning_questions_are_left_out(tmp_path: Path) -> None:
    tuning = await make_run(tmp_path / "tune", 0, 10)
    overlapping = await make_run(tmp_path / "held", 5, 10)
    tuning_questions = {r["problem"]["question"] for r in load_records([tuning])[0]}
    records, _ = load_records([overlapping])
    kept = problem_banks(records, exclude=tuning_questions)
    assert len(kept) == 5 and all(int(p.id[1:]) >= 10 for p in kept)


async def test_unusable_runs_are_refused_with_what_to_run(tmp_path: Path, capsys) -> None:
    only_samples = await make_run(tmp_path / "samples", 0, 10, ["self-consistency:max_tokens=64"])
    assert main(["tune", str(only_samples), "--no-plot"]) == 2
    assert "--strategy greedy" in capsys.readouterr().err
    assert main(["tune", str(tmp_path / "nowhere")]) == 2
    assert main(["tune", str(only_samples), "--budgets", "x"]) == 2


async def test_a_policy_needing_samples_the_runs_lack_is_a_clear_error(
    tuning_run: Path, tmp_path: Path
) -> None:
    records, meta = load_records([tuning_run])
    space = Space.of(problem_banks(records), [1, 8])
    policy = policy_of(space, tune(space, [1, 8]), meta)
    other = await make_run(
        tmp_path / "other", 0, 10, ["greedy:max_tokens=64", "self-consistency:max_tokens=32"]
    )
    problems = problem_banks(load_records([other])[0])
    with pytest.raises(UsageError, match="no samples at"):
        evaluate_policy(policy, problems, [8])


class Tempered(Bimodal):
    """Bimodal, except that samples at temperature 0.3 are always right: a setting no run has yet."""

    def __init__(self) -> None:
        super().__init__()
        bimodal = self.script

        def script(request: GenRequest, index: int) -> Reply:
            if request.temperature == 0.3:
                return Reply(f"think \\boxed{{{int(request.messages[-1].content.split()[-1])}}}")
            return bimodal(request, index)

        self.script = script


async def test_the_search_replays_what_is_stored_and_draws_within_its_tuning_budget(tmp_path: Path) -> None:
    from ponder.eval.search import Search, SearchSpace, pareto_trials, run_search

    run = await make_run(tmp_path / "tune", 0, 12)
    dataset = f"jsonl:{tmp_path / 'tune.jsonl'}"
    space = SearchSpace(sizes=(1, 2, 4, 8), temperatures=(0.3, 0.7, 1.0), top_ps=(1.0,), max_tokens=64)
    search = Search(dataset, [run], tmp_path / "search", banks_allowed=1, model="scripted", space=space)
    backend = Tempered()
    trials = await run_search(search, 12, backend, seed=0)
    assert len({t.config for t in trials}) == len(trials)  # distinct configurations, repeats not counted
    drawn = [t for t in trials if t.how == "drawn"]
    assert len(drawn) == 1 and search.banks_drawn == 1  # the one new bank the tuning budget allows
    assert all(t.accuracy is not None for t in trials if t.how in ("replayed", "drawn"))
    assert any(t.how.startswith("not evaluated") for t in trials)  # proposals past the tuning budget
    replayed = [t for t in trials if "temperature=0.7" in t.config or t.config.startswith("greedy")]
    assert replayed and all(t.how == "replayed" for t in replayed if t.accuracy is not None)
    frontier = pareto_trials(trials)
    accuracies = [t.accuracy for t in frontier]
    assert accuracies == sorted(accuracies) and [t.tokens for t in frontier] == sorted(
        t.tokens for t in frontier
    )
    if drawn and "temperature=0.3" in drawn[0].config:
        assert drawn[0].accuracy == 1.0  # the drawn bank holds what the server said at that setting


async def test_json_output_is_one_document_on_stdout(tuning_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["tune", str(tuning_run), "--out", str(tmp_path / "p.json"), "--no-plot", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["problems"] == 30 and len(document["plans"]) == 5
