"""``ponder setup``: build the embedded runtime and assemble a model ahead of the first ``solve``."""

from __future__ import annotations

import argparse
import time

from rich.markup import escape

from ponder.cli.console import print_json, stderr
from ponder.progress import format_duration


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    setup = commands.add_parser("setup", help="prepare the embedded runtime and model ahead of time")
    setup.add_argument("--model", default=None, help="embedded model name (default: the default model)")
    setup.add_argument(
        "--cuda",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="build llama-server for CUDA (--cuda) or the CPU (--no-cuda) and remember it; "
        "default: CUDA where nvcc and a GPU are found",
    )
    setup.add_argument("--json", action="store_true", help="print where the runtime and model are as JSON")
    setup.set_defaults(handler=command_setup)


def command_setup(args: argparse.Namespace) -> int:
    from ponder.backends.embedded.accel import choose_acceleration, save_choice
    from ponder.backends.embedded.models import DEFAULT_MODEL, get_model, is_ready, prepare_model
    from ponder.backends.embedded.runtime import ensure_llama_server, runtime_ready

    name = args.model or DEFAULT_MODEL
    get_model(name)
    if args.cuda is not None:
        choose_acceleration(args.cuda)  # fails before saving when CUDA is asked for and nvcc is missing
        save_choice(args.cuda)
    started = time.monotonic()
    built, assembled = not runtime_ready(), not is_ready(name)
    binary = ensure_llama_server(console=stderr)  # progress and how long it took, as on a first solve
    path = prepare_model(name, console=stderr)
    seconds = time.monotonic() - started
    if args.json:
        print_json(
            {
                "runtime": {"path": str(binary), "built": built},
                "model": {"name": name, "path": str(path), "assembled": assembled},
                "seconds": round(seconds, 3),
            }
        )
        return 0
    took = f" (setup took {format_duration(seconds)})" if built or assembled else " (nothing to do)"
    stderr.print(f"[green]ready[/]: llama-server at {escape(str(binary))}", highlight=False, soft_wrap=True)
    stderr.print(f"[green]ready[/]: {name} at {escape(str(path))}{took}", highlight=False, soft_wrap=True)
    return 0
