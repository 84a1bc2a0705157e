"""``ponder`` command line: ``solve``, ``setup``, ``models``, ``strategies``.

Errors from the one vocabulary in ``ponder.core.errors`` map to exit codes here and nowhere else:
2 bad input (unknown names or options), 3 backend unreachable, failing, refusing, malformed or past
``--timeout``, 4 setup failed, 130 Ctrl-C. Each is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ponder import __version__
from ponder.api import DEFAULT_STRATEGY, asolve, build_strategy
from ponder.backends import Backend, make_backend
from ponder.cli.render import render_result
from ponder.core.errors import BackendError, PonderError, UsageError
from ponder.core.ledger import Budget
from ponder.core.types import Result
from ponder.tasks.prompts import MATH_SYSTEM_PROMPT

# Piped output (logs, CI) is not cut at 80 columns: tables keep whole strategy names.
stdout = Console(width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


#: ``ponder solve --timeout``: a hanging or slow-drip server, or a ``Retry-After`` of a day, ends here
DEFAULT_SOLVE_TIMEOUT = 600.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ponder", description="Test-time compute scaling for LLMs.")
    parser.add_argument("--version", action="version", version=f"ponder {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    solve = commands.add_parser("solve", help="answer a question with a test-time scaling strategy")
    solve.add_argument("question")
    solve.add_argument(
        "--strategy",
        "-s",
        default=DEFAULT_STRATEGY,
        help=f"strategy spec, e.g. self-consistency:n=16,temperature=0.8 (default {DEFAULT_STRATEGY})",
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

    setup = commands.add_parser("setup", help="prepare the embedded runtime and model ahead of time")
    setup.add_argument("--model", default=None, help="embedded model name (default: the default model)")

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

    report = commands.add_parser("report", help="rebuild summary.json, curves.png and report.html of a run")
    report.add_argument("directory", type=Path)
    report.add_argument(
        "--rule", action="append", default=None, help="re-aggregate stored samples with this selection rule"
    )
    predict = commands.add_parser(
        "predict", help="scaling laws of a run: extrapolation, saturation, optimal samples, tiny pass rates"
    )
    predict.add_argument("directory", type=Path)
    predict.add_argument("--json", action="store_true", help="print the predictions as JSON on stdout")
    predict.add_argument("--no-plot", action="store_true", help="do not write predict.png into the run")
    predict.add_argument(
        "--saturation-gain",
        type=float,
        default=0.01,
        help="a strategy saturates where a doubling gains less than this (default 0.01: one point)",
    )
    predict.add_argument(
        "--verifier-threshold",
        type=float,
        default=0.5,
        help="a scored candidate counts as accepted by the verifier at this score or above (default 0.5)",
    )
    predict.add_argument(
        "--wrong-cost", type=float, default=1.0, help="utility lost by a wrong answer (a right one gains 1)"
    )
    rescore = commands.add_parser(
        "rescore", help="score a run's stored samples with another scorer (no new generation)"
    )
    rescore.add_argument("directory", type=Path)
    rescore.add_argument("--scorer", required=True, help="scorer spec, e.g. judge:mode=verbal or [prm:MODEL]")
    rescore.add_argument("--concurrency", type=int, default=None, help="records scored at once (default 1)")
    add_backend_arguments(rescore)
    compare = commands.add_parser("compare", help="line two runs up at matched tokens")
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)

    serve = commands.add_parser("serve", help="an OpenAI-compatible endpoint that applies any strategy")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (other than loopback needs keys)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--model", "-m", default=None, help="embedded model to serve (default: the default model)"
    )
    serve.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="OpenAI-compatible server for model NAME, or *=URL for every model it lists at startup "
        "(repeatable; no embedded model unless --model)",
    )
    serve.add_argument("--server", default="generic", help="server profile of the --upstream servers")
    serve.add_argument(
        "--client-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a key clients must present as bearer token (repeatable; visible to other users: prefer env "
        "PONDER_SERVE_API_KEYS or --client-keys-file)",
    )
    serve.add_argument(
        "--client-keys-file", type=Path, default=None, metavar="PATH", help="client keys, one per line"
    )
    serve.add_argument("--api-key", action="append", default=[], help="deprecated: --client-key")
    serve.add_argument("--api-keys-file", type=Path, default=None, help="deprecated: --client-keys-file")
    serve.add_argument("--default-strategy", default=None, help="strategy for requests that name none")
    serve.add_argument("--max-n", type=int, default=4, help="largest client n (independent strategy runs)")
    serve.add_argument("--max-samples", type=int, default=64, help="largest strategy n times client n")
    serve.add_argument(
        "--max-depth", type=int, default=64, help="most sequential rounds a strategy may run (depth, rounds)"
    )
    serve.add_argument("--max-budget-tokens", type=int, default=None, help="token cap for every request")
    serve.add_argument("--max-in-flight", type=int, default=64, help="concurrent requests before 429")
    serve.add_argument("--request-timeout", type=float, default=600.0, help="seconds before 504")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        help="requests that wait for a slot before 429 (first come first served)",
    )
    serve.add_argument(
        "--queue-timeout", type=float, default=30.0, help="seconds a request may wait before 429"
    )
    serve.add_argument(
        "--max-tokens",
        type=int,
        default=4096,
        help="cap on a request's max_tokens (also its default in pass-through)",
    )
    serve.add_argument(
        "--max-response-mb",
        type=float,
        default=32.0,
        help="largest upstream answer relayed in pass-through (MB)",
    )
    serve.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a strategy of yours that clients ask for by NAME; may set what clients may not (repeatable)",
    )
    serve.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="KIND",
        help="let clients set an operator-only kind of option: sandbox, limits, file, module, local-model, "
        "remote-code (repeatable; see docs/security.md)",
    )
    serve.add_argument(
        "--max-calls", type=int, default=8192, help="most upstream calls one request may cause (all models)"
    )
    serve.add_argument(
        "--max-request-tokens",
        type=int,
        default=1_048_576,
        help="most completion tokens one request may cause (all models)",
    )

    commands.add_parser("models", help="list embedded models, their sizes and whether each is ready")
    commands.add_parser("strategies", help="list strategies and scorers with their options")
    return parser


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default=None, help="embedded model name, or the served model's name with --base-url"
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible server URL (env PONDER_BASE_URL, then OPENAI_BASE_URL)",
    )
    parser.add_argument(
        "--upstream-key",
        default=None,
        metavar="KEY",
        help="the server's API key (visible to other users in process lists: prefer env PONDER_API_KEY or "
        "OPENAI_API_KEY, or --upstream-key-file)",
    )
    parser.add_argument(
        "--upstream-key-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="read the server's API key from this file",
    )
    parser.add_argument("--api-key", default=None, help="deprecated: --upstream-key")
    parser.add_argument("--api-key-file", type=Path, default=None, help="deprecated: --upstream-key-file")
    parser.add_argument(
        "--server", default=None, help="server profile: generic, openai, vllm, sglang, llama-server, ollama"
    )
    parser.add_argument(
        "--parameters",
        type=float,
        default=None,
        help="served model size, e.g. 7.6e9, for FLOPs (with --base-url)",
    )
    parser.add_argument(
        "--chat-template",
        default=None,
        help="Jinja file or Hugging Face tokenizer to continue partial answers on a server that cannot "
        "(with --base-url; env PONDER_CHAT_TEMPLATE)",
    )


def backend_from_args(args: argparse.Namespace) -> Backend:
    """The backend the shared backend arguments name."""
    return make_backend(
        args.model, args.base_url, api_key_from_args(args), args.server, args.parameters, args.chat_template
    )


def deprecated_flag(old: str, new: str) -> None:
    """Warn that ``old`` still works but is renamed: ``--api-key`` meant two different keys."""
    stderr.print(f"[yellow]warning:[/] {old} is deprecated; use {new}", highlight=False, soft_wrap=True)


def api_key_from_args(args: argparse.Namespace) -> str | None:
    """The server's key from ``--upstream-key-file`` or ``--upstream-key`` (warned about: command lines
    are public), or their deprecated names ``--api-key-file`` and ``--api-key``.

    None leaves the choice to the environment (PONDER_API_KEY, then OPENAI_API_KEY).
    """
    key, key_file = args.upstream_key, args.upstream_key_file
    if args.api_key is not None:
        deprecated_flag("--api-key", "--upstream-key")
        key = args.api_key if key is None else key
    if args.api_key_file is not None:
        deprecated_flag("--api-key-file", "--upstream-key-file")
        key_file = args.api_key_file if key_file is None else key_file
    if key is not None and key_file is not None:
        raise UsageError("give --upstream-key or --upstream-key-file, not both")
    if key is not None:
        stderr.print(
            "[yellow]warning:[/] --upstream-key is visible to other users of this machine (process lists); "
            "set PONDER_API_KEY or OPENAI_API_KEY, or use --upstream-key-file PATH",
            highlight=False,
            soft_wrap=True,
        )
        return str(key)
    if key_file is None:
        return None
    try:
        text = key_file.read_text().strip()
    except OSError as error:
        raise UsageError(f"cannot read --upstream-key-file {key_file}: {error.strerror}") from None
    if not text:
        raise UsageError(f"--upstream-key-file {key_file} is empty")
    return text


class ProgressLine:
    """A live status line on stderr while candidates arrive."""

    def __init__(self, enabled: bool):
        self.status = stderr.status("starting…") if enabled and stderr.is_terminal else None

    def __enter__(self) -> ProgressLine:
        if self.status:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.stop()

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if self.status is None:
            return
        usage = data.get("usage")
        tokens = f" · {usage.completion_tokens} tokens · {usage.calls} calls" if usage else ""
        if kind == "generated":
            self.status.update(f"candidates: {data['count']}{tokens}")
        elif kind == "scored":
            self.status.update(f"scored {len(data['scores'])} candidates{tokens}")


def solve_spec(args: argparse.Namespace) -> str:
    """The strategy spec of ``ponder solve``: ``--strategy``, or ``pipeline:[PATH]`` for ``--pipeline``."""
    if args.pipeline is None:
        return args.strategy
    if args.strategy != DEFAULT_STRATEGY:
        raise UsageError("give --strategy or --pipeline, not both")
    return f"pipeline:[{args.pipeline}]"


async def run_solve(args: argparse.Namespace) -> Result:
    strategy = build_strategy(solve_spec(args))  # fail fast on bad specs, before any backend starts
    budget = Budget.parse(args.budget)
    if args.timeout < 0:
        raise UsageError(
            f"--timeout must be 0 (no deadline) or a positive number of seconds, got {args.timeout:g}"
        )
    backend = backend_from_args(args)
    try:
        with ProgressLine(enabled=True) as progress:
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
    result = asyncio.run(run_solve(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render_result(result, stdout)
    return 0


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


def command_report(args: argparse.Namespace) -> int:
    from ponder.eval.report import render_summary_table, write_outputs
    from ponder.eval.runner import write_summary

    summary = write_summary(args.directory, rules=args.rule)
    write_outputs(args.directory)
    render_summary_table(summary, stdout)
    stdout.print(f"wrote {args.directory}/summary.json, curves.png, report.html", soft_wrap=True)
    return 0


def command_predict(args: argparse.Namespace) -> int:
    from ponder.eval.predict import predict_run, render_predictions, write_plot
    from ponder.eval.report import check_plotting

    if not args.no_plot:
        check_plotting()
    prediction = predict_run(
        args.directory,
        gain=args.saturation_gain,
        threshold=args.verifier_threshold,
        wrong_cost=args.wrong_cost,
    )
    if args.json:
        print(json.dumps(prediction, indent=2))
    else:
        render_predictions(prediction, stdout)
    if not args.no_plot:
        path = write_plot(args.directory, prediction)
        (stderr if args.json else stdout).print(f"wrote {path}", soft_wrap=True, markup=False)
    return 0


def command_rescore(args: argparse.Namespace) -> int:
    from ponder.eval.report import check_plotting, render_summary_table, write_outputs
    from ponder.eval.rescore import rescore_run
    from ponder.eval.runner import write_summary
    from ponder.scorers import SCORERS

    SCORERS.build(args.scorer)  # fail fast on a bad spec, before any backend starts
    check_plotting()
    backend = backend_from_args(args)

    async def run() -> str:
        try:
            return await rescore_run(
                args.directory, args.scorer, backend, console=stderr, concurrency=args.concurrency or 1
            )
        finally:
            await backend.close()

    rule = asyncio.run(run())
    summary = write_summary(args.directory)
    write_outputs(args.directory)
    render_summary_table(summary, stdout)
    written = f"{args.directory}/summary.json, curves.png, report.html"
    stdout.print(f"added rule {rule}; wrote {written}", soft_wrap=True, markup=False)
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from ponder.eval.compare import compare_runs

    for directory in (args.first, args.second):
        if not (directory / "summary.json").exists():
            raise UsageError(f"{directory} has no summary.json (run ponder report {directory} first)")
    compare_runs(args.first, args.second, stdout)
    return 0


def command_setup(args: argparse.Namespace) -> int:
    from ponder.backends.embedded.models import DEFAULT_MODEL, get_model, prepare_model
    from ponder.backends.embedded.runtime import ensure_llama_server

    name = args.model or DEFAULT_MODEL
    get_model(name)
    binary = ensure_llama_server()
    path = prepare_model(name)
    stderr.print(f"[green]ready[/]: llama-server at {binary}\n[green]ready[/]: {name} at {path}")
    return 0


def command_models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ponder.backends.embedded.models import DEFAULT_MODEL, MODELS, is_ready, model_path
    from ponder.backends.embedded.runtime import runtime_ready

    table = Table(title="embedded models", title_justify="left")
    for column in ("name", "size", "parameters", "ready"):
        table.add_column(column, no_wrap=True)
    for name, info in MODELS.items():
        marker = " (default)" if name == DEFAULT_MODEL else ""
        table.add_row(
            name + marker,
            f"{info.size_bytes / 1e9:.2f} GB",
            f"{info.parameters / 1e9:.2f} B",
            "yes" if is_ready(name) else "no (ponder setup --model " + name + ")",
        )
    stdout.print(table)
    stdout.print(f"models in {model_path(DEFAULT_MODEL).parent}", soft_wrap=True)
    stdout.print(f"llama-server runtime: {'ready' if runtime_ready() else 'not built yet (ponder setup)'}")
    return 0


def command_strategies(args: argparse.Namespace) -> int:
    from ponder.scorers import SCORERS
    from ponder.strategies import STRATEGIES

    for title, registry in (("strategies", STRATEGIES), ("scorers", SCORERS)):
        stdout.print(f"[bold]{title}[/]")
        for entry in registry.entries():
            options = ", ".join(
                f"{name}={'<required>' if field.is_required() else field.default}"
                for name, field in entry.options.model_fields.items()
            )
            stdout.print(
                f"  [cyan]{entry.name}[/] — {entry.summary}\n    [dim]{options or '(no options)'}[/]"
            )
    return 0


def command_serve(args: argparse.Namespace) -> int:
    from ponder.backends.embedded.backend import embedded_backend
    from ponder.server import ServerSettings, Upstream
    from ponder.server.run import load_keys, parse_preset, parse_upstreams, serve

    upstreams = parse_upstreams(args.upstream, args.server, args.request_timeout)
    if args.model or not upstreams:
        backend = embedded_backend(args.model)
        upstreams.insert(0, Upstream(backend.model, backend))
    client_keys, client_keys_file = [*args.client_key, *args.api_key], args.client_keys_file
    if args.api_key:
        deprecated_flag("--api-key", "--client-key")
    if args.api_keys_file is not None:
        deprecated_flag("--api-keys-file", "--client-keys-file")
        if client_keys_file is not None:
            raise UsageError("give --client-keys-file or --api-keys-file, not both")
        client_keys_file = args.api_keys_file
    if client_keys:  # readable by every user of the machine (ps, /proc): accepted, with a warning
        stderr.print(
            "[yellow]warning[/]: --client-key puts the key on the command line, where other users of this "
            "machine can read it; use PONDER_SERVE_API_KEYS (comma-separated) or --client-keys-file instead"
        )
    from_environment = os.environ.get("PONDER_SERVE_API_KEYS", "").split(",")
    settings = ServerSettings(
        api_keys=load_keys([*client_keys, *from_environment], client_keys_file),
        default_strategy=args.default_strategy,
        max_n=args.max_n,
        max_samples=args.max_samples,
        max_depth=args.max_depth,
        max_budget_tokens=args.max_budget_tokens,
        max_in_flight=args.max_in_flight,
        request_timeout=args.request_timeout,
        max_queue=args.max_queue,
        queue_timeout=args.queue_timeout,
        max_tokens=args.max_tokens,
        max_response_bytes=int(args.max_response_mb * 1024 * 1024),
        presets=tuple(parse_preset(text) for text in args.preset),
        allow=frozenset(args.allow),
        max_calls=args.max_calls,
        max_request_tokens=args.max_request_tokens,
    )
    if settings.allow:
        stderr.print(f"[yellow]warning[/]: clients may set {', '.join(sorted(settings.allow))} options")
    serve(args.host, args.port, upstreams, settings, log_level=args.log_level)
    return 0


COMMANDS = {
    "solve": command_solve,
    "eval": command_eval,
    "report": command_report,
    "predict": command_predict,
    "rescore": command_rescore,
    "compare": command_compare,
    "setup": command_setup,
    "models": command_models,
    "strategies": command_strategies,
    "serve": command_serve,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PonderError as error:
        stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        return error.exit_code
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/]")
        return 130
    except Exception as error:  # noqa: BLE001 - the last resort: one line, not a traceback
        cause = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        stderr.print(
            f"[bold red]error:[/] unexpected {escape(cause)} (a bug in ponder: please report it)",
            highlight=False,
            soft_wrap=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
