"""The eval runner on the scripted backend: sample bank, summary rows, resume without repeats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.backends import Capabilities, GenRequest, Reply, ScriptedBackend
from ponder.core.errors import BackendError, UsageError
from ponder.eval.identity import StrategyId
from ponder.eval.report import write_report
from ponder.eval.runner import EvalConfig, plan, run_eval, write_summary
from ponder.eval.store import RecordStore, record_key
from ponder.strategies import STRATEGIES
from ponder.tasks.datasets import load_dataset

# per problem, the four samples' answers: the reference is the problem number
SAMPLES = {"1": ["1", "1", "7", "8"], "2": ["5", "2", "2", "9"], "3": ["3", "4", "4", "4"]}


def write_dataset(path: Path) -> str:
    path.write_text("".join(json.dumps({"question": f"problem {i}", "answer": i}) + "\n" for i in SAMPLES))
    return f"jsonl:{path}"


def make_script():
    """Serves each problem's samples in order, whatever order the problems arrive in."""
    served: dict[str, int] = {}

    def script(request: GenRequest, index: int) -> Reply:
        number = request.messages[-1].content.split()[-1]
        position = served.get(number, 0)
        served[number] = position + 1
        return Reply(f"work work \\boxed{{{SAMPLES[number][position % 4]}}}", logprob=-0.1 * (position % 4))

    return script


def config(dataset: str, **changes: object) -> EvalConfig:
    values = dict(
        dataset=dataset, strategies=["greedy", "self-consistency"], budgets=[1, 2, 4], model="scripted"
    )
    values.update(changes)
    return EvalConfig(**values)


class Scripted(ScriptedBackend):
    """Fans samples out like llama-server, so each stored sample carries its own call and prompt."""

    def __init__(self, **kwargs: object):
        super().__init__(script=make_script(), capabilities=Capabilities(honours_n=False), **kwargs)


async def test_sample_bank_rows_are_exact_subset_expectations(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    backend = Scripted()
    summary = await run_eval(
        config(dataset, strategies=["self-consistency"]), backend, tmp_path / "run", show_progress=False
    )
    rows = {(r["strategy"], r["budget"]): r for r in summary["rows"]}
    prompt_tokens = sum(len(m.content.split()) for m in backend.requests[0].messages)
    # one generation per problem at the largest budget only
    assert len(backend.requests) == 3 and all(r.n == 4 for r in backend.requests)
    # maj@1 = mean per-sample accuracy: (2/4 + 2/4 + 1/4) / 3
    assert rows[("self-consistency", 1)]["accuracy"] == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    # maj@4: problem 1 tie 1,1 vs 7,8 -> 1 correct; problem 2 -> 2 correct; problem 3 -> 4 wrong
    assert rows[("self-consistency", 4)]["accuracy"] == pytest.approx(2 / 3)
    # coverage at 4 = fraction of problems with any correct sample
    assert rows[("self-consistency", 4)]["coverage"] == pytest.approx(1.0)
    assert rows[("self-consistency", 1)]["coverage"] == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    # a k-subset costs k/4 of the 4 samples' completion tokens (3 words each)
    for k in (1, 2, 4):
        assert rows[("self-consistency", k)]["mean_completion_tokens"] == pytest.approx(3 * k)
        assert rows[("self-consistency", k)]["mean_calls"] == pytest.approx(k)
        assert rows[("self-consistency", k)]["mean_prompt_tokens"] == pytest.approx(k * prompt_tokens)
    assert (tmp_path / "run" / "summary.json").exists()


async def test_greedy_has_one_point_and_families_drop_the_budget_option(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    summary = await run_eval(
        config(dataset, strategies=["greedy", "best-of-n:scorer=confidence,n=2"]),
        Scripted(),
        tmp_path / "run",
        show_progress=False,
    )
    families = {(r["strategy"], r["budget"]) for r in summary["rows"]}
    assert families == {
        ("greedy", 1),
        ("best-of-n:scorer=confidence", 1),
        ("best-of-n:scorer=confidence", 2),  # its own n=2 caps its bank: no budget 4
    }
    strategy = STRATEGIES.build("self-consistency:n=16,temperature=0.5")
    assert StrategyId.of(strategy) == StrategyId("self-consistency:temperature=0.5", "n", 16)


class Crashing(Scripted):
    def __init__(self, after: int, **kwargs: object):
        super().__init__(**kwargs)
        self.after = after

    async def generate(self, requests: list[GenRequest]):
        if len(self.requests) >= self.after:
            raise BackendError("simulated crash")
        return await super().generate(requests)


async def test_resume_finishes_without_repeating_or_losing_work(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    run = tmp_path / "run"
    cfg = config(dataset, concurrency=1)
    with pytest.raises(BackendError):
        await run_eval(cfg, Crashing(after=4), run, show_progress=False)
    partial = RecordStore(run).load()
    assert len(partial) == 4
    with pytest.raises(UsageError, match="--resume"):
        await run_eval(cfg, Scripted(), run, show_progress=False)
    second = Scripted()
    await run_eval(cfg, second, run, resume=True, show_progress=False)
    records = RecordStore(run).load()
    keys = [record_key(r) for r in records]
    assert len(records) == 6 and len(set(keys)) == 6  # 2 strategies × 3 problems, no duplicates
    assert len(second.requests) == 2  # only the unfinished units were generated again
    uninterrupted = tmp_path / "again"
    await run_eval(cfg, Scripted(), uninterrupted, show_progress=False)
    assert sorted(keys) == sorted(record_key(r) for r in RecordStore(uninterrupted).load())


async def test_a_spec_that_sets_its_budget_option_runs_at_that_budget_alone(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    backend = Scripted()
    summary = await run_eval(
        config(dataset, strategies=["first-finish:n=2", "first-finish:temperature=0.5"], budgets=[1, 4]),
        backend,
        tmp_path / "run",
        show_progress=False,
    )
    budgets = sorted((r["strategy"], r["budget"]) for r in summary["rows"])
    assert budgets == [
        ("first-finish", 2),
        ("first-finish:temperature=0.5", 1),
        ("first-finish:temperature=0.5", 4),
    ]
    assert sum(r.n for r in backend.requests) == 3 * (2 + 1 + 4)  # n=2 once; the sweep at 1 and 4


def test_work_runs_problem_by_problem_so_a_stopped_run_compares_strategies_on_the_same_problems(
    tmp_path: Path,
) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    problems = load_dataset(dataset).problems()
    units = plan(config(dataset, strategies=["greedy", "first-finish"], budgets=[1, 2]), problems)
    assert [(u.problem.id, u.identity, u.budget) for u in units[:4]] == [
        (problems[0].id, StrategyId("greedy"), None),
        (problems[0].id, StrategyId("first-finish", "n", 1), 1),
        (problems[0].id, StrategyId("first-finish", "n", 2), 2),
        (problems[1].id, StrategyId("greedy"), None),
    ]


async def test_reuse_copies_an_earlier_runs_finished_units_instead_of_running_them(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    first = tmp_path / "first"
    await run_eval(config(dataset, strategies=["self-consistency"]), Scripted(), first, show_progress=False)
    greedy_run = tmp_path / "greedy"
    only_greedy = config(dataset, strategies=["greedy"], limit=1)
    await run_eval(only_greedy, Scripted(), greedy_run, show_progress=False)
    backend = Scripted()
    both = config(dataset, reuse=[str(first), str(greedy_run)])
    summary = await run_eval(both, backend, tmp_path / "second", show_progress=False)
    assert len(backend.requests) == 2 and all(r.n == 1 for r in backend.requests)  # greedy of 2 problems ran
    records = RecordStore(tmp_path / "second").load()
    reused = [r for r in records if r.get("reused_from")]
    assert len(records) == 6 and len(reused) == 4
    assert {r["reused_from"] for r in reused if r["strategy"] == "self-consistency:n=4"} == {str(first)}
    assert {r["reused_from"] for r in reused if r["strategy"] == "greedy"} == {str(greedy_run)}
    alone = json.loads((first / "summary.json").read_text())["rows"]
    assert [r for r in summary["rows"] if r["strategy"] == "self-consistency"] == alone  # the same curve
    write_report(tmp_path / "second")
    assert f"reused from {first}" in (tmp_path / "second" / "report.html").read_text()
    with pytest.raises(UsageError, match="model: 'scripted' there, 'other' here"):
        await run_eval(
            config(dataset, reuse=[str(first)], model="other"),
            Scripted(),
            tmp_path / "third",
            show_progress=False,
        )


async def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    run = tmp_path / "run"
    await run_eval(config(dataset), Scripted(), run, show_progress=False)
    with pytest.raises(UsageError, match="budgets"):
        await run_eval(
            config(dataset, budgets=[1, 8]),
            Scripted(),
            run,
            resume=True,
            show_progress=False,
        )


async def test_resume_may_add_a_strategy_but_not_drop_one(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    run = tmp_path / "run"
    await run_eval(config(dataset, strategies=["self-consistency"]), Scripted(), run, show_progress=False)
    backend = Scripted()
    await run_eval(config(dataset), backend, run, resume=True, show_progress=False)
    assert len(backend.requests) == 3 and all(r.n == 1 for r in backend.requests)  # greedy's alone
    assert json.loads((run / "run.json").read_text())["strategies"] == ["greedy", "self-consistency"]
    with pytest.raises(UsageError, match=r"strategies \['greedy'\] then, not now"):
        await run_eval(config(dataset, strategies=["self-consistency"]), Scripted(), run, resume=True)


async def test_records_keep_every_candidate_with_correctness(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    await run_eval(
        config(dataset, strategies=["self-consistency"], budgets=[4]),
        Scripted(),
        tmp_path / "run",
        show_progress=False,
    )
    record = next(
        r
        for r in RecordStore(tmp_path / "run").load()
        if r["problem"]["id"] is not None and r["problem"]["reference"] == "2"
    )
    assert [c["answer"] for c in record["candidates"]] == ["5", "2", "2", "9"]
    assert [c["correct"] for c in record["candidates"]] == [False, True, True, False]
    assert record["answer"] == "2" and record["correct"] is True
    assert record["usage"]["completion_tokens"] == 12


async def test_stored_samples_are_reaggregated_offline_with_another_rule(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    backend = Scripted()
    cfg = config(dataset, strategies=["best-of-n:scorer=confidence"], rules=["self-consistency"])
    summary = await run_eval(cfg, backend, tmp_path / "run", show_progress=False)
    rows = {(r["strategy"], r["budget"]): r for r in summary["rows"]}
    derived = rows[("self-consistency on best-of-n:scorer=confidence", 4)]
    assert derived["accuracy"] == pytest.approx(2 / 3)  # the same votes as a self-consistency run
    assert (
        derived["mean_completion_tokens"]
        == rows[("best-of-n:scorer=confidence", 4)]["mean_completion_tokens"]
    )
    requests = len(backend.requests)
    again = write_summary(tmp_path / "run", rules=[])  # ponder report --rule ...: no new generation
    assert not any(" on " in r["strategy"] for r in again["rows"]) and len(backend.requests) == requests


def judging_script():
    """Solves like ``make_script``; as a verbal judge, rates a solution 10 when its answer is right."""
    solve = make_script()

    def script(request: GenRequest, index: int) -> Reply:
        if request.messages[0].content.startswith("You are a careful grader"):
            prompt = request.messages[-1].content
            number = prompt.split("problem ")[1].split()[0]
            return Reply("Score: 10" if f"\\boxed{{{number}}}" in prompt else "Score: 0")
        return solve(request, index)

    return script


async def test_rescore_scores_stored_samples_with_another_scorer_and_resumes(tmp_path: Path) -> None:
    from ponder.eval.rescore import rescore_rule, rescore_run

    dataset = write_dataset(tmp_path / "data.jsonl")
    backend = ScriptedBackend(script=judging_script(), capabilities=Capabilities(honours_n=False))
    run = tmp_path / "run"
    await run_eval(config(dataset, strategies=["self-consistency"]), backend, run, show_progress=False)
    generated = len(backend.requests)
    rule = await rescore_run(run, "judge:mode=verbal", backend, show_progress=False)
    assert rule == rescore_rule("judge:mode=verbal") == "best-of-n:scorer=[judge:mode=verbal]"
    judge_requests = backend.requests[generated:]
    assert len(judge_requests) == 12 and all(r.messages[0].role == "system" for r in judge_requests)
    rows = {(r["strategy"], r["budget"]): r for r in write_summary(run)["rows"]}
    derived = f"{rule} on self-consistency"
    # the judge picks a right sample whenever one is drawn: accuracy@4 = coverage@4, @1 = per-sample
    assert rows[(derived, 4)]["accuracy"] == pytest.approx(rows[("self-consistency", 4)]["coverage"]) == 1.0
    assert rows[(derived, 1)]["accuracy"] == pytest.approx(rows[("self-consistency", 1)]["accuracy"])
    # billed generation plus the judge's calls and prompt tokens for the drawn samples only
    judge_prompt = sum(len(m.content.split()) for m in judge_requests[0].messages)
    assert rows[(derived, 2)]["mean_calls"] == pytest.approx(2 + 2)
    assert rows[(derived, 1)]["mean_prompt_tokens"] > rows[("self-consistency", 1)]["mean_prompt_tokens"]
    assert rows[(derived, 1)]["mean_prompt_tokens"] == pytest.approx(
        rows[("self-consistency", 1)]["mean_prompt_tokens"] + judge_prompt, rel=0.1
    )
    # a second rescore repeats nothing; the rule is remembered by the run
    await rescore_run(run, "judge:mode=verbal", backend, show_progress=False)
    assert len(backend.requests) == generated + 12
    assert json.loads((run / "run.json").read_text())["rules"] == [rule]


async def test_rescore_refuses_scorers_that_need_logprobs(tmp_path: Path) -> None:
    from ponder.eval.rescore import rescore_run

    dataset = write_dataset(tmp_path / "data.jsonl")
    run = tmp_path / "run"
    await run_eval(config(dataset, strategies=["self-consistency"]), Scripted(), run, show_progress=False)
    with pytest.raises(UsageError, match="logprobs"):
        await rescore_run(run, "confidence", Scripted(), show_progress=False)


async def test_an_early_stopping_rule_is_billed_only_the_samples_it_read(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    rule = "adaptive-consistency:rule=window,window=2"
    cfg = config(dataset, strategies=["self-consistency"], rules=[rule])
    summary = await run_eval(cfg, Scripted(), tmp_path / "run", show_progress=False)
    rows = {(r["strategy"], r["budget"]): r for r in summary["rows"]}
    derived = rows[(f"{rule} on self-consistency", 4)]
    # problem 1 stops after the unanimous window [1, 1]; problems 2 ([2, 9]) and 3 read all four
    assert derived["mean_completion_tokens"] == pytest.approx(3 * (2 + 4 + 4) / 3)
    assert rows[("self-consistency", 4)]["mean_completion_tokens"] == pytest.approx(3 * 4)
    assert derived["accuracy"] == pytest.approx(2 / 3)  # votes 1 (right), 2 (right), 4 (wrong)


async def test_rows_carry_self_consistency_accuracy_at_their_own_tokens(tmp_path: Path) -> None:
    from ponder.eval.metrics import interpolate_log

    dataset = write_dataset(tmp_path / "data.jsonl")
    cfg = config(dataset, strategies=["self-consistency", "best-of-n:scorer=confidence"])
    summary = await run_eval(cfg, Scripted(), tmp_path / "run", show_progress=False)
    rows = summary["rows"]
    curve = [(r["mean_tokens"], r["accuracy"]) for r in rows if r["strategy"] == "self-consistency"]
    others = [r for r in rows if r["strategy"] != "self-consistency"]
    assert others and all(r["baseline"] == "self-consistency" for r in others)
    flops_curve = [(r["mean_flops"], r["accuracy"]) for r in rows if r["strategy"] == "self-consistency"]
    for row in others:
        assert row["baseline_accuracy"] == interpolate_log(curve, row["mean_tokens"])
        assert row["baseline_accuracy_flops"] == interpolate_log(flops_curve, row["mean_flops"])
    # best-of-n by confidence spends the same tokens per sample here, so it sits on the curve
    assert any(r["baseline_accuracy"] is not None for r in others)


async def test_a_per_problem_budget_caps_every_problem_and_is_part_of_the_run(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    backend = ScriptedBackend(
        script=make_script(), capabilities=Capabilities(honours_n=False, max_concurrency=1)
    )
    run = tmp_path / "run"
    await run_eval(
        config(dataset, strategies=["self-consistency"], budget="calls=2"), backend, run, show_progress=False
    )
    records = RecordStore(run).load()
    assert [len(r["candidates"]) for r in records] == [2, 2, 2]  # stopped at the cap, not at n=4
    assert all(r["usage"]["calls"] == 2 for r in records)
    with pytest.raises(UsageError, match="budget"):
        await run_eval(
            config(dataset, strategies=["self-consistency"]), backend, run, resume=True, show_progress=False
        )


async def test_rows_report_the_rate_of_truncated_samples_which_do_not_vote(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "data.jsonl")
    # max_tokens=2 cuts "work work \boxed{N}" (3 words) off: every sample is truncated and has no answer
    summary = await run_eval(
        config(dataset, strategies=["self-consistency:max_tokens=2", "greedy:max_tokens=3"]),
        Scripted(),
        tmp_path / "run",
        show_progress=False,
    )
    rows = {(r["strategy"], r["budget"]): r for r in summary["rows"]}
    for k in (1, 2, 4):
        cut = rows[("self-consistency:max_tokens=2", k)]
        assert cut["truncated_rate"] == 1.0 and cut["no_answer_rate"] == 1.0 and cut["accuracy"] == 0.0
    whole = rows[("greedy:max_tokens=3", 1)]
    assert whole["truncated_rate"] == 0.0 and whole["no_answer_rate"] == 0.0
