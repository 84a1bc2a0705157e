"""``ponder`` command line: the parser of every command, and the one place errors become exit codes.

Each command lives in its own module (``solve``, ``setup``, ``evaluate``, ``runs``, ``serve``,
``catalog``) that registers its parser and handler. Errors from the one vocabulary in
``ponder.core.errors`` map to exit codes here and nowhere else: 2 bad input (unknown names or options),
3 backend unreachable, failing, refusing, malformed or past ``--timeout``, 4 setup failed, 130 Ctrl-C.
Each is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NoReturn

from ponder import __version__
from ponder.cli import catalog, evaluate, runs, serve, setup, solve, tune
from ponder.cli.backend_args import api_key_from_args, backend_from_args
from ponder.cli.console import Interrupted, print_error, stderr
from ponder.cli.serve import command_serve
from ponder.cli.solve import solve_spec
from ponder.core.errors import PonderError, did_you_mean

__all__ = ["api_key_from_args", "backend_from_args", "build_parser", "command_serve", "main", "solve_spec"]


class Parser(argparse.ArgumentParser):
    """argparse that answers a misspelt command or flag with the closest valid ones."""

    def error(self, message: str) -> NoReturn:
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            message += did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        _, found, unknown = message.partition("unrecognized arguments:")
        if found:
            flags = self.known_flags()
            message += "".join(did_you_mean(word, flags) for word in unknown.split() if word.startswith("-"))
        super().error(message)

    def known_flags(self) -> list[str]:
        """This parser's flags and those of its commands (an unknown flag is reported by the top parser)."""
        flags = []
        for action in self._actions:
            flags += [flag for flag in action.option_strings if flag.startswith("--")]
            if isinstance(action, argparse._SubParsersAction):
                for command in action.choices.values():
                    flags += command.known_flags() if isinstance(command, Parser) else []
        return sorted(set(flags))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ponder", description="Test-time compute scaling for LLMs.")
    parser.add_argument("--version", action="version", version=f"ponder {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (solve, setup, evaluate, runs, serve, tune, catalog):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what the user typed, for a run's stored command and its resume hint
    try:
        code: int = args.handler(args)
        return code
    except Interrupted as stopped:  # the command has said what happened and how to go on
        return stopped.exit_code
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/]")
        return 130
    except BrokenPipeError:  # the reader went away (ponder strategies | head): stop quietly, as filters do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # noqa: BLE001 - the last resort: one line, not a traceback
        print_error(error)
        return error.exit_code if isinstance(error, PonderError) else 1


if __name__ == "__main__":
    sys.exit(main())
