"""``ponder solve``: one question, one strategy, the answer with its votes or scores and its usage."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ponder.api import DEFAULT_STRATEGY, FALLBACK_STRATEGY, asolve, build_strategy, default_strategy
from ponder.backends import Backend
from ponder.cli.backend_args import add_backend_arguments, backend_from_args, prepare_embedded, start_backend
from ponder.cli.console import print_json, stderr, stdout
from ponder.cli.render import render_result
from ponder.core.errors import BackendError, UsageError
from ponder.core.ledger import Budget
from ponder.core.types import Result
from ponder.progress import TaskProgress
from ponder.strategies import Strategy
from ponder.tasks.prompts import MATH_SYSTEM_PROMPT

#: ``ponder solve --timeout``: a hanging or slow-drip server, or a ``Retry-After`` of a day, ends here
DEFAULT_SOLVE_TIMEOUT = 600.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    solve = commands.add_parser("solve", help="answer a question with a test-time scaling strategy")
    solve.add_argument("question")
    solve.add_argument(
        "--strategy",
        "-s",
        default=None,
        help="strategy spec, e.g. self-consistency:n=16,temperature=0.8 (default: "
        f"{DEFAULT_STRATEGY} with the policy tuned for the model where one ships, else {FALLBACK_STRATEGY})",
    )
    solve.add_argument(
        "--pipeline",
        default=None,
        metavar="PATH_OR_PRESET",
        help="run a pipeline of roles: a YAML/JSON file or a preset (moa, archon-basic, generate-verify)",
    )
    add_backend_arguments(solve)
    solve.add_argument("--seed", type=int, default=None)
    solve.add_argument(
        "--system-prompt",
        default=MATH_SYSTEM_PROMPT,
        help="system prompt (default: step by step, \\boxed{} answer)",
    )
    solve.add_argument("--budget", default=None, help="caps, e.g. tokens=4000,calls=16,seconds=60")
    solve.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    solve.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_SOLVE_TIMEOUT,
        metavar="SECONDS",
        help=f"give up (exit 3) after this long in all (default {DEFAULT_SOLVE_TIMEOUT:g}; 0: no deadline)",
    )
    solve.set_defaults(handler=command_solve)


class ProgressLine:
    """What a running strategy has made so far, on stderr: a live line on a terminal, a plain line every
    ``PONDER_PROGRESS_INTERVAL`` seconds in a log (a long search is not silent until it ends)."""

    def __init__(self) -> None:
        self.progress = TaskProgress(stderr, "solve", transient=True)

    def __enter__(self) -> ProgressLine:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        usage = data.get("usage")
        tokens = f" · {usage.completion_tokens} tokens · {usage.calls} calls" if usage else ""
        if kind == "generated":
            self.progress.update(status=f"{data['count']} candidates{tokens}")
        elif kind == "scored":
            self.progress.update(status=f"scored {len(data['scores'])} candidates{tokens}")


def solve_spec(args: argparse.Namespace) -> str | None:
    """The strategy spec of ``ponder solve``: ``--strategy``, or ``pipeline:[PATH]`` for ``--pipeline``;
    None for the model's default (``ponder.api.default_strategy``)."""
    if args.pipeline is None:
        return args.strategy
    if args.strategy is not None:
        raise UsageError("give --strategy or --pipeline, not both")
    return f"pipeline:[{args.pipeline}]"


async def run_solve(args: argparse.Namespace, backend: Backend, strategy: Strategy, budget: Budget) -> Result:
    try:
        await start_backend(backend)  # an embedded server loads its model outside --timeout
        with ProgressLine() as progress:
            async with asyncio.timeout(args.timeout or None):
                return await asolve(
                    args.question,
                    strategy,
                    backend=backend,
                    seed=args.seed,
                    budget=budget,
                    system_prompt=args.system_prompt or None,
                    on_event=progress,
                )
    except TimeoutError:
        raise BackendError(
            f"no answer within --timeout {args.timeout:g} s (the backend is slow, not answering, "
            "or asked to retry later)"
        ) from None
    finally:
        await backend.close()


def command_solve(args: argparse.Namespace) -> int:
    spec = solve_spec(args)
    if spec is not None:
        build_strategy(spec)  # fail fast on bad specs, before any backend starts
    budget = Budget.parse(args.budget)
    if args.timeout < 0:
        raise UsageError(
            f"--timeout must be 0 (no deadline) or a positive number of seconds, got {args.timeout:g}"
        )
    backend = backend_from_args(args)
    strategy = build_strategy(spec or default_strategy(backend.model))
    prepare_embedded(backend)  # a first run's build, with its progress, before any deadline starts
    result = asyncio.run(run_solve(args, backend, strategy, budget))
    if args.json:
        print_json(result.to_dict())
    else:
        render_result(result, stdout)
    return 0
