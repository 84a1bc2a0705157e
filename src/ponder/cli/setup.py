"""``ponder setup``: build the embedded runtime and assemble a model ahead of the first ``solve``."""

from __future__ import annotations

import argparse

from ponder.cli.console import stderr


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
    setup.set_defaults(handler=command_setup)


def command_setup(args: argparse.Namespace) -> int:
    from ponder.backends.embedded.accel import choose_acceleration, save_choice
    from ponder.backends.embedded.models import DEFAULT_MODEL, get_model, prepare_model
    from ponder.backends.embedded.runtime import ensure_llama_server

    name = args.model or DEFAULT_MODEL
    get_model(name)
    if args.cuda is not None:
        choose_acceleration(args.cuda)  # fails before saving when CUDA is asked for and nvcc is missing
        save_choice(args.cuda)
    binary = ensure_llama_server()
    path = prepare_model(name)
    stderr.print(f"[green]ready[/]: llama-server at {binary}\n[green]ready[/]: {name} at {path}")
    return 0
