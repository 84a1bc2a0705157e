"""``ponder eval``: strategies × budgets on a dataset, stored unit by unit, summarised into curves."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ponder.api import build_strategy
from ponder.cli.backend_args import (
    add_backend_arguments,
    api_key_from_args,
    backend_from_args,
    prepare_embedded,
    start_backend,
)
from ponder.cli.console import Interrupted, print_error, print_json, stderr, stdout
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
        dest="max_in_flight",
        default=None,
        metavar="N",
        help="the same as --max-in-flight N: samples in flight per server, fixed",
    )
    evaluate.add_argument("--resume", action="store_true", help="finish an interrupted run in --out")
    evaluate.add_argument(
        "--json", action="store_true", help="print the summary as JSON on stdout (progress stays on stderr)"
    )
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
    evaluate.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run the units on Ray workers: a cluster's ADDRESS, or none for one on this machine bound to "
        "127.0.0.1 (pip install 'ponder[ray]'; docs/scaling.md)",
    )
    evaluate.add_argument("--ray-workers", type=int, default=2, help="Ray workers (default 2)")
    evaluate.add_argument(
        "--ray-endpoints",
        choices=("shared", "split"),
        default="shared",
        help="with several --base-url: every worker balances over all (shared) or worker i takes the i-th "
        "(split); with none, each worker runs its own embedded model",
    )

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
        command=shlex.join(["ponder", *args.argv]),
        rules=list(args.rule),
        budget=args.budget,
        reuse=[str(path) for path in args.reuse],
    )

    async def run() -> dict[str, Any]:
        if args.ray is not None:
            return await run_on_ray(args, config, directory)
        try:
            await start_backend(backend)
            return await run_eval(config, backend, directory, resume=args.resume, console=stderr)
        finally:
            await backend.close()

    if args.ray is None:  # Ray workers prepare their own
        prepare_embedded(backend)  # a first run's build and model, with progress, before the run starts
    with resume_hint(directory):
        summary = asyncio.run(run())
    write_outputs(directory)
    written = f"wrote {directory}/summary.json, curves.png, report.html, records.jsonl"
    if args.json:
        print_json({"directory": str(directory), **summary})
        stderr.print(written, soft_wrap=True, markup=False, highlight=False)
    else:
        render_summary_table(summary, stdout)
        stdout.print(written, soft_wrap=True, markup=False, highlight=False)
    return 0


async def run_on_ray(args: argparse.Namespace, config: Any, directory: Path) -> dict[str, Any]:
    """``--ray``: the same run with its units on Ray workers, each building its backend from the flags."""
    from ponder.eval.distributed import BackendRecipe, RayWorkers, run_eval_on_ray

    recipe = BackendRecipe(
        model=args.model,
        base_urls=tuple(args.base_url or ()),
        api_key=api_key_from_args(args),
        server=args.server,
        parameters=args.parameters,
        chat_template=args.chat_template,
        max_in_flight=args.max_in_flight,
        split=args.ray_endpoints == "split",
    )
    address = None if args.ray == "local" else args.ray
    workers = RayWorkers(recipe, config.dataset, config.budget, workers=args.ray_workers, address=address)
    return await run_eval_on_ray(config, workers, directory, resume=args.resume, console=stderr)


def resume_command(directory: Path) -> str | None:
    """The command that finishes the run in ``directory``: its stored command, ``--out`` it, ``--resume``."""
    from ponder.eval.runner import MANIFEST

    try:
        command = json.loads((directory / MANIFEST).read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    if not command:
        return None
    words = [word for word in shlex.split(command) if word != "--resume"]
    if not any(word in ("--out", "-o") or word.startswith(("--out=", "-o")) for word in words):
        words += ["--out", str(directory)]
    return shlex.join([*words, "--resume"])


@contextlib.contextmanager
def resume_hint(directory: Path) -> Iterator[None]:
    """On Ctrl-C or a failure once the run has started, say how many units are stored and the exact
    command that resumes it. Ctrl-C then ends with exit 130 (``Interrupted``), no traceback."""
    try:
        yield
    except UsageError:
        raise  # bad input: nothing ran, there is nothing to resume
    except (KeyboardInterrupt, Exception) as error:
        command = resume_command(directory)
        if command is None:
            raise
        interrupted = isinstance(error, KeyboardInterrupt)
        if not interrupted:
            print_error(error)
        records = directory / "records.jsonl"
        stored = records.read_text().count("\n") if records.exists() else 0
        what = "interrupted" if interrupted else "stopped"
        stderr.print(
            f"{what}: {stored} finished units are stored in {directory}; resume with:\n  {command}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise Interrupted(error) from None
