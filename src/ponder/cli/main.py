"""``ponder`` command line: the parser of every command, and the one place errors become exit codes.

Each command lives in its own module (``solve``, ``setup``, ``evaluate``, ``runs``, ``serve``,
``catalog``) that registers its parser and handler. Errors from the one vocabulary in
``ponder.core.errors`` map to exit codes here and nowhere else: 2 bad input (unknown names or options),
3 backend unreachable, failing, refusing, malformed or past ``--timeout``, 4 setup failed, 130 Ctrl-C.
Each is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from rich.markup import escape

from ponder import __version__
from ponder.cli import catalog, evaluate, runs, serve, setup, solve
from ponder.cli.backend_args import api_key_from_args, backend_from_args
from ponder.cli.console import stderr
from ponder.cli.serve import command_serve
from ponder.cli.solve import solve_spec
from ponder.core.errors import PonderError

__all__ = ["api_key_from_args", "backend_from_args", "build_parser", "command_serve", "main", "solve_spec"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ponder", description="Test-time compute scaling for LLMs.")
    parser.add_argument("--version", action="version", version=f"ponder {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (solve, setup, evaluate, runs, serve, catalog):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
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
