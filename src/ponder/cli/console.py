"""The two consoles every command prints through, and the one way a command prints JSON.

Results go to stdout and everything else (progress, warnings, errors) to stderr, so ``ponder ... --json``
leaves one JSON document on stdout and a pipe or a log gets the result alone.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from ponder.core.errors import PonderError

# Piped output (logs, CI) is not cut at 80 columns: tables keep whole strategy names.
stdout = Console(width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def print_json(data: Any) -> None:
    """``data`` as one indented JSON document on stdout (plain ``print``: no markup, no wrapping)."""
    print(json.dumps(data, indent=2, default=str))


def print_error(error: BaseException) -> None:
    """One line on stderr: a ponder error as it reads, anything else as a bug to report (no traceback)."""
    if isinstance(error, PonderError):
        message = escape(str(error))
    else:
        cause = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        message = f"unexpected {escape(cause)} (a bug in ponder: please report it)"
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


class Interrupted(Exception):
    """A command stopped and has already said why and what to do next; ``main`` maps the exit code only:
    130 after Ctrl-C, the error's own code after a failure."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause

    @property
    def exit_code(self) -> int:
        if isinstance(self.cause, KeyboardInterrupt):
            return 130
        return self.cause.exit_code if isinstance(self.cause, PonderError) else 1
