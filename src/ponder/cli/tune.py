"""``ponder tune``: learn a policy for ``auto`` from eval runs, or evaluate one on held-out runs.

    ponder tune RUN_DIR [RUN_DIR ...] --out policy.json        # tune (cross-validated) and write
    ponder tune HELDOUT_DIR --evaluate policy.json [--exclude TUNING_DIR]   # held-out, paired

Only the runs' stored records are read: nothing is generated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from ponder.cli.backend_args import add_backend_arguments, backend_from_args
from ponder.cli.console import stderr, stdout
from ponder.core.errors import UsageError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tune = commands.add_parser(
        "tune",
        help="learn a policy for auto from eval runs: a configuration per predicted difficulty and budget",
    )
    tune.add_argument(
        "runs", type=Path, nargs="+", help="ponder eval --out directories (greedy + sample banks)"
    )
    tune.add_argument(
        "--out", type=Path, help="write the policy file here (default: policy.json in the first run)"
    )
    tune.add_argument(
        "--budgets", default="1,2,4,8,16", help="budgets in generations to tune for (default 1,2,4,8,16)"
    )
    tune.add_argument(
        "--evaluate", type=Path, metavar="POLICY", help="evaluate this policy on the runs instead"
    )
    tune.add_argument(
        "--exclude",
        type=Path,
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="leave out problems whose question appears in this run (keeps a held-out set disjoint)",
    )
    search = tune.add_argument_group(
        "configuration search (Bayesian optimisation over the space within a tuning budget; generates)"
    )
    search.add_argument(
        "--search", type=int, metavar="TRIALS", help="propose and evaluate this many configurations"
    )
    search.add_argument(
        "--dataset", help="the tuning problems' dataset (as in ponder eval), for banks to draw"
    )
    search.add_argument("--limit", type=int, help="the first K problems of --dataset")
    search.add_argument(
        "--search-banks",
        type=int,
        default=2,
        metavar="B",
        help="tuning budget: new sample banks the search may draw (default 2); replayed trials are free",
    )
    search.add_argument(
        "--search-out", type=Path, help="where drawn banks and search.json go (default RUN/search)"
    )
    add_backend_arguments(tune)
    tune.add_argument("--seed", type=int, default=0, help="seed of the folds, the search and the intervals")
    tune.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    tune.add_argument("--no-plot", action="store_true", help="do not write tune.png")
    tune.add_argument(
        "--plot", type=Path, help="where to draw the plot (default: tune.png beside the policy)"
    )
    tune.set_defaults(handler=command_tune)


def _budgets(text: str) -> list[int]:
    try:
        budgets = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(
            f"--budgets {text!r}: give whole numbers separated by commas, e.g. 1,2,4,8"
        ) from None
    if not budgets or budgets[0] < 1:
        raise UsageError("--budgets: every budget is at least 1 generation")
    return budgets


def _problems(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    from ponder.eval.banks import load_records, problem_banks

    records, meta = load_records(args.runs)
    excluded: set[str] = set()
    if args.exclude:
        other, _ = load_records(args.exclude)
        excluded = {str(r["problem"].get("question")) for r in other}
    problems = problem_banks(records, exclude=excluded)
    if len(problems) < 5:
        raise UsageError(
            f"the runs hold {len(problems)} problems with both a greedy record and a sample bank; tuning "
            "needs at least 5 (run ponder eval with --strategy greedy and a sampling strategy such as "
            "self-consistency or best-of-n)"
        )
    meta["runs"] = [str(run) for run in args.runs]
    if excluded:
        meta["excluded_questions_of"] = [str(run) for run in args.exclude]
    return problems, meta


def command_tune(args: argparse.Namespace) -> int:
    budgets = _budgets(args.budgets)
    if args.search is not None:
        return _search(args)
    problems, meta = _problems(args)
    if args.evaluate:
        return _evaluate(args, problems, budgets)
    from ponder.eval.tune import Space, policy_of, tune
    from ponder.eval.tune_report import (
        TUNE_PLOT,
        calibration,
        fixed_points,
        pareto,
        probe_summary,
        write_plot,
    )

    stderr.print(
        f"tuning on {len(problems)} problems of {', '.join(meta['datasets']) or 'the runs'}", style="dim"
    )
    space = Space.of(problems, budgets)
    reports = tune(space, budgets, seed=args.seed)
    policy = policy_of(space, reports, meta, seed=args.seed)
    out = args.out or args.runs[0] / "policy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    fixed = fixed_points(space)
    frontier = pareto(fixed)
    probes = {report.fitted.option for report in reports if report.fitted.option is not None}
    result = {
        "policy": str(out),
        **policy.tuning,
        "plans": [plan.model_dump(mode="json") for plan in policy.plans],
        "calibration": {probe_summary(option): calibration(space, option) for option in probes},
        "configurations": [
            {"config": p.name, "accuracy": p.accuracy, "tokens": p.mean_tokens, "pareto": p in frontier}
            for p in fixed
        ],
    }
    policy = policy.model_copy(update={"tuning": {**policy.tuning, "calibration": result["calibration"]}})
    policy.dump(out)
    if not args.no_plot:
        from ponder.eval.tune_report import Point

        autos = [Point(f"auto:budget={r.budget}", r.auto[0], r.auto[1]) for r in reports]
        title = f"tuning set: {len(problems)} problems (auto cross-validated)"
        result["plot"] = str(write_plot(args.plot or out.parent / TUNE_PLOT, fixed, autos, title))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _render_tuning(result, reports)
    stdout.print(f"wrote {out}" + (f" and {result['plot']}" if "plot" in result else ""), soft_wrap=True)
    return 0


def _ci(interval: list[float]) -> str:
    return f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"


def _render_tuning(result: dict[str, Any], reports: list[Any]) -> None:
    from ponder.eval.tune_report import probe_summary

    table = Table(title="policy by budget (accuracy and gains cross-validated over problems)")
    for column in (
        "budget",
        "probe",
        "bins → configuration",
        "accuracy",
        "tokens",
        "vs best single",
        "vs greedy",
    ):
        table.add_column(column)
    for report, expected, plan in zip(reports, result["expected"], result["plans"], strict=True):
        single = expected["gain_over_best_single"]
        greedy = expected["gain_over_greedy"]
        table.add_row(
            str(report.budget),
            probe_summary(report.fitted.option),
            "; ".join(plan["choices"]) if len(plan["choices"]) == 1 else _bins(plan),
            f"{expected['accuracy']:.3f}",
            f"{expected['tokens']:,.0f}",
            f"{single['difference']:+.3f} {_ci(single['ci'])}",
            f"{greedy['difference']:+.3f} {_ci(greedy['ci'])}",
        )
    stdout.print(table)
    frontier = Table(title="accuracy–tokens frontier of the fixed configurations (whole tuning set)")
    for column in ("configuration", "accuracy", "tokens"):
        frontier.add_column(column)
    for row in result["configurations"]:
        if row["pareto"]:
            frontier.add_row(row["config"], f"{row['accuracy']:.3f}", f"{row['tokens']:,.0f}")
    stdout.print(frontier)
    for probe, values in result["calibration"].items():
        stdout.print(f"probe {probe}: Spearman correlation with pass@1 {values['spearman']:+.2f}")


def _bins(plan: dict[str, Any]) -> str:
    cuts = plan["cuts"]
    parts = []
    for i, choice in enumerate(plan["choices"]):
        low = f"{cuts[i - 1]:.2f}" if i else "0"
        high = f"{cuts[i]:.2f}" if i < len(cuts) else "1"
        parts.append(f"[{low},{high}) {choice}")
    return "; ".join(parts)


def _evaluate(args: argparse.Namespace, problems: list[Any], budgets: list[int]) -> int:
    from ponder.eval.tune_report import TUNE_PLOT, evaluate_policy, write_plot
    from ponder.strategies.policy import load_policy

    policy = load_policy(args.evaluate)
    tuned = [plan.budget for plan in policy.plans]
    chosen = [b for b in budgets if b >= tuned[0]] if args.budgets != "1,2,4,8,16" else tuned
    replayed = evaluate_policy(policy, problems, chosen, seed=args.seed)
    evaluation = replayed.figures
    if not args.no_plot:
        title = f"held out: {len(problems)} problems"
        path = write_plot(args.plot or args.runs[0] / TUNE_PLOT, replayed.fixed, replayed.autos, title)
        evaluation["plot"] = str(path)
    if args.json:
        print(json.dumps(evaluation, indent=2))
        return 0
    greedy = evaluation["greedy"]
    stdout.print(
        f"{len(problems)} held-out problems; "
        f"greedy {greedy['accuracy']:.3f} at {greedy['tokens']:,.0f} tokens",
    )
    for entry in evaluation["budgets"]:
        auto = entry["auto"]
        table = Table(
            title=f"auto:budget={entry['budget']}: {auto['accuracy']:.3f} at {auto['tokens']:,.0f} tokens "
            f"(best fixed at its tokens: {entry['best_fixed_at_its_tokens']})"
        )
        for column in ("configuration", "accuracy", "tokens", "auto − it [95% CI]"):
            table.add_column(column)
        for row in sorted(entry["fixed"], key=lambda r: r["tokens"]):
            diff = row["auto_minus"]
            table.add_row(
                row["config"],
                f"{row['accuracy']:.3f}",
                f"{row['tokens']:,.0f}",
                f"{diff['difference']:+.3f} {_ci(diff['ci'])}",
            )
        stdout.print(table)
        bars = ", ".join(f"{name}: {'met' if met else 'NOT met'}" for name, met in entry["bars"].items())
        stdout.print(f"bars: {bars}")
    if "plot" in evaluation:
        stdout.print(f"wrote {evaluation['plot']}")
    return 0


def _search(args: argparse.Namespace) -> int:
    import asyncio

    from ponder.eval.search import Search, pareto_trials

    if not args.dataset:
        raise UsageError(
            "--search draws samples where the runs have none: give the tuning problems' --dataset"
        )
    _, meta = _problems(args)
    out = args.search_out or args.runs[0] / "search"
    search = Search(args.dataset, args.runs, out, args.search_banks, args.limit, args.model or meta["model"])
    backend = backend_from_args(args)
    trials = asyncio.run(_searching(search, args.search, backend, args.seed))
    frontier = pareto_trials(trials)
    result = {
        "trials": [vars(t) for t in trials],
        "pareto": [t.config for t in frontier],
        "banks_drawn": search.banks_drawn,
        "banks_allowed": search.banks_allowed,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    table = Table(
        title=f"{len(trials)} trials, {search.banks_drawn} of {search.banks_allowed} new banks drawn"
    )
    for column in ("#", "configuration", "accuracy", "tokens", "evaluated", "Pareto"):
        table.add_column(column)
    for trial in trials:
        evaluated = trial.accuracy is not None
        table.add_row(
            str(trial.number),
            trial.config,
            f"{trial.accuracy:.3f}" if evaluated else "—",
            f"{trial.tokens:,.0f}" if evaluated else "—",
            trial.how,
            "●" if trial.config in {t.config for t in frontier} else "",
        )
    stdout.print(table)
    stdout.print(
        f"wrote {out / 'search.json'}; tune a policy on the banks too: ponder tune RUN {out}/banks/*"
    )
    return 0


async def _searching(search: Any, trials: int, backend: Any, seed: int) -> list[Any]:
    from ponder.eval.search import run_search

    try:
        return await run_search(search, trials, backend, seed)
    finally:
        await backend.close()
