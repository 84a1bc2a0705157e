"""A user's Python function as a scorer: ``python:module:function`` (an oracle, a checker, a heuristic).

The function is called as ``function(problem, candidate)`` for each candidate and returns a number
(higher is better); it may be a coroutine function. It is imported once, when the scorer is built, so
a wrong target fails early with a UsageError. It makes no model calls, so nothing is billed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from ponder.core.cost import Cost
from ponder.core.errors import UsageError
from ponder.core.registry import OperatorOnly, Options
from ponder.core.types import Candidate, Problem
from ponder.scorers.base import SCORERS, Scorer

if TYPE_CHECKING:
    from ponder.context import Context


class PythonOptions(Options):
    positional_field: ClassVar[str | None] = "target"
    target: Annotated[str, OperatorOnly("module")]  # "module:function", e.g. "mypackage.checks:score"


def load_function(target: str) -> Callable[..., Any]:
    """Import ``module:function`` (the attribute may be dotted: ``module:Class.method``)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"python scorer target must be 'module:function', got {target!r}")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"python scorer: cannot import module {module_name!r}: {error}") from None
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise UsageError(f"python scorer: {module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    if not callable(value):
        raise UsageError(f"python scorer: {target!r} is not callable (it is a {type(value).__name__})")
    return value


@SCORERS.register("python", PythonOptions)
class PythonScorer(Scorer[PythonOptions]):
    """A user function (problem, candidate) -> float, given as python:module:function."""

    name = "python"

    def __init__(self, options: PythonOptions):
        super().__init__(options)
        self.function = load_function(options.target)

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        scores = []
        for candidate in candidates:
            value = self.function(problem, candidate)
            if inspect.isawaitable(value):
                value = await value
            try:
                scores.append(float(value))
            except (TypeError, ValueError):
                target = self.options.target
                raise UsageError(f"python scorer {target!r} returned {value!r}, not a number") from None
        return scores

    def max_cost(self, candidates: int) -> Cost:
        """None upstream: the function runs in this process (the operator chose it)."""
        return Cost()
