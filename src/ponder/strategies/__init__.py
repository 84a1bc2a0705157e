"""Strategies spend compute. Importing this package registers every built-in strategy.

Every module in this package (and its subpackages) registers itself on import, so adding a strategy
is adding a file: nothing here lists them.
"""

import importlib
import pkgutil

from ponder.strategies.base import STRATEGIES, Strategy

for _module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
    importlib.import_module(_module.name)

__all__ = ["STRATEGIES", "Strategy"]
