"""The two consoles every command prints through, and the one way a command prints JSON.

Results go to stdout and everything else (progress, warnings, errors) to stderr, so ``ponder ... --json``
leaves one JSON document on stdout and a pipe or a log gets the result alone.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Piped output (logs, CI) is not cut at 80 columns: tables keep whole strategy names.
stdout = Console(width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def print_json(data: Any) -> None:
    """``data`` as one indented JSON document on stdout (plain ``print``: no markup, no wrapping)."""
    print(json.dumps(data, indent=2, default=str))
