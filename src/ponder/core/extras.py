"""Optional dependencies, imported where they are used and named by the extra that installs them.

``pip install ponder`` carries what ``solve`` and ``serve`` need. The eval's datasets, plots and reports
(``ponder[eval]``), Hugging Face datasets (``ponder[hf]``) and local reward models (``ponder[rm]``) are
extras: a command that reaches one without it installed fails with a usage error naming the extra,
since a missing package is the user's to install, not a bug in ponder.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ponder.core.errors import UsageError


def import_extra(module: str, extra: str, needed_by: str) -> ModuleType:
    """``module`` imported, or a UsageError saying that ``needed_by`` needs it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = (error.name or module).partition(".")[0]  # the package to install, not its submodule
        raise UsageError(f"{needed_by} needs {missing}: pip install 'ponder[{extra}]'") from None
