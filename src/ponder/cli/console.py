"""The two consoles every command prints through, and the one way a command prints JSON.

Results go to stdout and everything else (progress, warnings, errors) to stderr, so ``ponder ... --json``
leaves one JSON document on stdout and a pipe or a log gets the result alone.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from ponder.core.errors import PonderError

#: the width of output that goes to a log (CI, a file): tables keep whole strategy names
LOG_WIDTH = 160


def width_for(stream: TextIO) -> int | None:
    """None on a terminal (rich measures it); the terminal's width when piped into a pager or ``head``
    on one (another standard stream is still a terminal); ``$COLUMNS`` or ``LOG_WIDTH`` in a log."""
    if stream.isatty():
        return None
    for descriptor in (2, 1, 0):
        try:
            return os.get_terminal_size(descriptor).columns
        except OSError:
            continue
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else LOG_WIDTH


stdout = Console(width=width_for(sys.stdout))
stderr = Console(stderr=True, width=width_for(sys.stderr))


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
    # wrapped at words on a terminal; one line in a log, where a grep finds it whole
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=not stderr.is_terminal)


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
