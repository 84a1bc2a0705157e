"""``ponder eval``: strategies × budgets on a dataset, stored unit by unit, summarised into curves."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from pathlib import Path

from ponder.api import build_strategy
from ponder.cli.backend_args import add_backend_arguments, backend_from_args
from ponder.cli.console import stderr, stdout
from ponder.core.errors import UsageError
from ponder.core.ledger import Budget


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "eval", help="accuracy-versus-compute curves: strategies × budgets on a dataset"
    )
    evaluate.add_argument(
        "--dataset", "-d", required=True, help="e.g. reasoning-gym:gsm_symbolic, jsonl:FILE"
    )
    evaluate.add_argument(
        "--strategy", "-s", action="append", required=True, help="strategy spec (repeat to compare several)"
    )
    evaluate.add_argument("--budgets", default="1,2,4,8,16", help="samples per problem, e.g. 1,2,4,8,16")
    evaluate.add_argument(
        "--budget", default=None, help="compute cap on every problem, e.g. tokens=4000 (matched budgets)"
    )
    evaluate.add_argument("--limit", type=int, default=None, help="use the first K problems")
    evaluate.add_argument("--seeds", type=int, default=1, help="independent repetitions per problem")
    evaluate.add_argument(
        "--out", "-o", type=Path, default=None, help="output directory (default runs/NAME-TIME)"
    )
    evaluate.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="samples in flight (default: the backend's parallel slots)",
    )
    evaluate.add_argument("--resume", action="store_true", help="finish an interrupted run in --out")
    evaluate.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        help="copy units an earlier run (same dataset, model, cap) finished instead of running them again"
        " (repeatable; the first run holding a unit gives it)",
    )
    evaluate.add_argument(
        "--rule",
        action="append",
        default=[],
        help="also re-aggregate stored samples with this selection rule (e.g. self-consistency)",
    )
    add_backend_arguments(evaluate)

    evaluate.set_defaults(handler=command_eval)


def parse_budgets(text: str) -> list[int]:
    try:
        budgets = sorted({int(item) for item in text.split(",") if item.strip()})
    except ValueError:
        raise UsageError(f"--budgets must be comma-separated integers, got {text!r}") from None
    if not budgets or budgets[0] < 1:
        raise UsageError(f"--budgets must be positive integers, got {text!r}")
    return budgets


def command_eval(args: argparse.Namespace) -> int:
    from ponder.eval.report import check_plotting, render_summary_table, write_outputs
    from ponder.eval.runner import EvalConfig, run_eval
    from ponder.tasks.datasets import load_dataset

    budgets = parse_budgets(args.budgets)
    Budget.parse(args.budget)  # fail fast on a bad cap
    for spec in args.strategy + args.rule:
        build_strategy(spec)  # fail fast on bad specs, before any backend starts
    load_dataset(args.dataset)
    check_plotting()
    backend = backend_from_args(args)
    name = args.dataset.replace(":", "-").replace("/", "-")
    directory = args.out or Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = EvalConfig(
        dataset=args.dataset,
        strategies=list(args.strategy),
        budgets=budgets,
        seeds=args.seeds,
        limit=args.limit,
        model=backend.model,
        concurrency=args.concurrency or backend.capabilities.max_concurrency,
        command=shlex.join(["ponder", *sys.argv[1:]]),
        rules=list(args.rule),
        budget=args.budget,
        reuse=[str(path) for path in args.reuse],
    )

    async def run() -> dict:
        try:
            return await run_eval(config, backend, directory, resume=args.resume, console=stderr)
        finally:
            await backend.close()

    summary = asyncio.run(run())
    write_outputs(directory)
    render_summary_table(summary, stdout)
    stdout.print(f"wrote {directory}/summary.json, curves.png, report.html, records.jsonl", soft_wrap=True)
    return 0
