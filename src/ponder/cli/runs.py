"""Commands over a finished run's directory: ``report``, ``predict``, ``rescore``, ``compare``.

None of them generates anything except ``rescore``, which scores stored candidates with another scorer.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shlex
from pathlib import Path
from typing import Any

from rich.console import Console

from ponder.cli.backend_args import add_backend_arguments, backend_from_args, prepare_embedded, start_backend
from ponder.cli.console import Interrupted, print_json, stderr, stdout
from ponder.core.errors import UsageError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="rebuild summary.json, curves.png and report.html of a run")
    report.add_argument("directory", type=Path)
    report.add_argument(
        "--rule", action="append", default=None, help="re-aggregate stored samples with this selection rule"
    )
    report.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
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
    rescore.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_backend_arguments(rescore)
    compare = commands.add_parser("compare", help="line two runs up at matched tokens")
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON on stdout")
    report.set_defaults(handler=command_report)
    predict.set_defaults(handler=command_predict)
    rescore.set_defaults(handler=command_rescore)
    compare.set_defaults(handler=command_compare)


def command_report(args: argparse.Namespace) -> int:
    from ponder.eval.report import write_outputs
    from ponder.eval.runner import write_summary

    summary = write_summary(args.directory, rules=args.rule)
    write_outputs(args.directory)
    written = f"wrote {args.directory}/summary.json, curves.png, report.html"
    show_summary(summary, args.json, args.directory, written)
    return 0


def show_summary(summary: dict[str, Any], as_json: bool, directory: Path, written: str) -> None:
    """The summary table and what was written on stdout, or the summary as JSON (the note to stderr)."""
    from ponder.eval.report import render_summary_table

    if as_json:
        print_json({"directory": str(directory), **summary})
        stderr.print(written, soft_wrap=True, markup=False, highlight=False)
    else:
        render_summary_table(summary, stdout)
        stdout.print(written, soft_wrap=True, markup=False, highlight=False)


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
        print_json(prediction)
    else:
        render_predictions(prediction, stdout)
    if not args.no_plot:
        path = write_plot(args.directory, prediction)
        (stderr if args.json else stdout).print(f"wrote {path}", soft_wrap=True, markup=False)
    return 0


def command_rescore(args: argparse.Namespace) -> int:
    from ponder.eval.report import check_plotting, write_outputs
    from ponder.eval.rescore import rescore_run
    from ponder.eval.runner import write_summary
    from ponder.scorers import SCORERS

    SCORERS.build(args.scorer)  # fail fast on a bad spec, before any backend starts
    check_plotting()
    backend = backend_from_args(args)

    async def run() -> str:
        try:
            await start_backend(backend)
            return await rescore_run(
                args.directory, args.scorer, backend, console=stderr, concurrency=args.concurrency or 1
            )
        finally:
            await backend.close()

    prepare_embedded(backend)  # a judge on the embedded model: its first build, with progress, now
    try:
        rule = asyncio.run(run())
    except KeyboardInterrupt:
        again = shlex.join(["ponder", *args.argv])
        stderr.print(
            f"interrupted: the scores made so far are stored; finish with the same command:\n  {again}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise Interrupted(KeyboardInterrupt()) from None
    summary = write_summary(args.directory)
    write_outputs(args.directory)
    written = f"added rule {rule}; wrote {args.directory}/summary.json, curves.png, report.html"
    show_summary(summary, args.json, args.directory, written)
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from ponder.eval.compare import compare_runs

    for directory in (args.first, args.second):
        if not (directory / "summary.json").exists():
            raise UsageError(f"{directory} has no summary.json (run ponder report {directory} first)")
    if args.json:  # the table is not printed: the returned comparison is the document
        print_json(compare_runs(args.first, args.second, Console(file=io.StringIO())))
    else:
        compare_runs(args.first, args.second, stdout)
    return 0
