"""Who a unit of eval work, a record or a summary row belongs to, as one value instead of spec strings.

A strategy's curve is named by its *family*: its canonical spec less the option a budget scales
(``best-of-n:max_tokens=512`` for ``best-of-n:max_tokens=512,n=16``). A point on the curve adds the
budget, and a re-aggregation rule re-selecting from the family's stored samples names its own curve
``RULE on FAMILY``. The eval builds this value once, where it plans its units (``StrategyId.of``), and
writes its parts into records (``family``) and summary rows (``strategy``: ``name``); ``parse`` is the
one way back from a row name read off disk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ponder.core.registry import Spec

if TYPE_CHECKING:  # reading row names (report, compare) needs no strategy registered
    from ponder.strategies import Strategy

#: what joins a re-aggregation rule and the family whose samples it re-selects from, in a row name
RULE_SEPARATOR = " on "


@dataclass(frozen=True)
class StrategyId:
    """A strategy's identity in the eval: its family, the budget option and its value, and a rule if any.

    ``budget`` is the budget option's value a unit runs at (the samples a bank draws), or the budget of a
    summary row; None where no budget applies or a row name did not say.
    """

    family: str
    option: str | None = None
    budget: int | None = None
    rule: str | None = None

    @classmethod
    def of(cls, strategy: Strategy) -> StrategyId:
        """The identity of a built strategy, read off its options (never off its spec string, whose
        nested specs and lists would not survive a round trip through the spec parser)."""
        option = strategy.budget_option
        changed = strategy.options.model_dump(exclude_defaults=True)
        family = Spec(
            strategy.name, None, {key: str(changed[key]) for key in sorted(changed) if key != option}
        )
        budget = int(getattr(strategy.options, option)) if option else None
        return cls(str(family), option, budget)

    @classmethod
    def parse(cls, name: str) -> StrategyId:
        """The identity a summary row's name (``name``) stands for: family and rule; no budget."""
        split = _top_level_find(name, RULE_SEPARATOR)
        if split < 0:
            return cls(name)
        return cls(name[split + len(RULE_SEPARATOR) :], rule=name[:split])

    @property
    def name(self) -> str:
        """The curve's name, as summary rows, tables and plots show it: ``FAMILY`` or ``RULE on FAMILY``."""
        return f"{self.rule}{RULE_SEPARATOR}{self.family}" if self.rule else self.family

    @property
    def selector(self) -> str:
        """The registered name of the strategy whose selection the curve shows: the rule's, else the
        family's."""
        return _registered_name(self.rule or self.family)

    @property
    def short_name(self) -> str:
        """The name with every option left out (``self-consistency on best-of-n``), for column headers."""
        family = _registered_name(self.family)
        return f"{self.selector}{RULE_SEPARATOR}{family}" if self.rule else family

    def at(self, budget: int) -> StrategyId:
        """The same curve at another budget."""
        return replace(self, budget=budget)

    def ruled_by(self, rule: str) -> StrategyId:
        """The curve of ``rule`` re-selecting from this family's samples."""
        return replace(self, rule=rule)

    def __str__(self) -> str:
        return self.name


def _top_level_find(text: str, part: str) -> int:
    """Where ``part`` first occurs in ``text`` outside brackets (nested specs), or -1."""
    depth = 0
    for index, char in enumerate(text):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif depth == 0 and text.startswith(part, index):
            return index
    return -1


def _registered_name(spec: str) -> str:
    """The name part of a spec (what ``parse_spec`` reads first), without validating its options: a row
    name read off disk may hold options in a form that an older ponder wrote and the parser now refuses."""
    return spec.partition(":")[0].strip()
