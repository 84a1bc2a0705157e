"""The ledger counts every model call; the budget says when to stop spending.

Every backend and scorer call is recorded on a named *line* (for example ``generate`` or
``scorer:judge``), so a comparison between strategies can be made at equal measured compute and a
multi-model strategy can show what each model cost.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from typing import Any

from ponder.core.errors import BudgetExhaustedError, OptionError
from ponder.core.types import Usage


def estimate_flops(
    parameters: float, prompt_tokens: int, cached_prompt_tokens: int, completion_tokens: int
) -> float:
    """Forward-pass FLOPs ≈ 2 × parameters × tokens processed (cached prompt tokens are not recomputed)."""
    processed = max(prompt_tokens - cached_prompt_tokens, 0) + completion_tokens
    return 2.0 * parameters * processed


@dataclass(frozen=True)
class Budget:
    """Caps on compute. ``None`` means uncapped. ``seconds`` caps wall-clock time since the ledger started."""

    tokens: int | None = None
    completion_tokens: int | None = None
    calls: int | None = None
    seconds: float | None = None
    flops: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> Budget:
        """Parse ``tokens=4000,calls=16`` into a Budget; unknown keys list the valid ones.

        Budgets come from clients too, so every value must be finite and non-negative, and counts
        (tokens, calls) whole numbers no larger than ``MAX_COUNT``: ``1e309``, ``nan`` or ``-1`` are
        usage errors, never a crash or a silently uncapped run.
        """
        if not text:
            return cls()
        valid = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}  # each key's own type: counts are int, seconds and flops float
        for item in text.split(","):
            key, sep, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in valid:
                raise OptionError(f"bad budget item {item[:40]!r}; valid keys: {', '.join(valid)}")
            values[key] = _budget_value(key, raw)
        return cls(**values)

    def is_unlimited(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


#: largest count a budget may name (every whole number up to it is exact as a float)
MAX_COUNT = 2**53
FRACTIONAL_KEYS = ("seconds", "flops")


def _budget_value(key: str, raw: str) -> float:
    """One budget value, checked: finite, non-negative, and a whole number in range for counts."""
    try:
        number = float(raw)
    except ValueError:
        raise OptionError(f"budget {key} must be a number, got {raw.strip()[:40]!r}") from None
    if not math.isfinite(number) or number < 0:
        raise OptionError(f"budget {key} must be a finite number of at least 0")
    if key in FRACTIONAL_KEYS:
        return number
    if not number.is_integer() or number > MAX_COUNT:
        raise OptionError(f"budget {key} must be a whole number from 0 to {MAX_COUNT}")
    return int(number)


@dataclass(frozen=True)
class Headroom:
    """What the budget can still pay for, after what is spent and what calls in flight have reserved.

    ``calls`` and ``tokens`` (tokens a generation may still produce or read) are None when uncapped.
    """

    calls: int | None
    tokens: int | None


class Ledger:
    """Accumulates usage per line, and answers whether the budget still allows spending.

    A budget is a hard cap: before a call starts, the caller reserves what it may cost (its calls, and
    its prompt estimate plus every choice's ``max_tokens``) with :meth:`reserve`, and releases the
    reservation when the call is recorded, so calls running at the same time share what remains.
    """

    def __init__(self, budget: Budget | None = None):
        self.budget = budget or Budget()
        self.lines: dict[str, Usage] = {}
        self.started = time.monotonic()
        self.reserved_calls = 0
        self.reserved_tokens = 0
        self.reserved_completion_tokens = 0

    def headroom(self, parameters: float = 0.0, prompt_tokens: int = 0) -> Headroom:
        """Calls, and completion tokens per call set, that the budget can still pay for.

        ``prompt_tokens`` (an estimate of the prompt a call will send) counts against a ``tokens`` cap;
        a FLOPs cap is converted to tokens with ``parameters`` (2 x parameters per token).
        """
        b, t = self.budget, self.total
        if b.seconds is not None and self.elapsed() >= b.seconds:
            return Headroom(0, 0)
        calls = None if b.calls is None else max(b.calls - t.calls - self.reserved_calls, 0)
        limits = []
        if b.tokens is not None:
            limits.append(b.tokens - t.total_tokens - self.reserved_tokens - prompt_tokens)
        if b.completion_tokens is not None:
            limits.append(b.completion_tokens - t.completion_tokens - self.reserved_completion_tokens)
        if b.flops is not None and parameters > 0:
            flops_left = b.flops - t.flops - 2.0 * parameters * (self.reserved_tokens + prompt_tokens)
            limits.append(int(flops_left // (2.0 * parameters)))
        tokens = max(min(limits), 0) if limits else None
        return Headroom(calls, tokens)

    def reserve(self, calls: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.reserved_calls += calls
        self.reserved_tokens += prompt_tokens + completion_tokens
        self.reserved_completion_tokens += completion_tokens

    def release(self, calls: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.reserve(-calls, -prompt_tokens, -completion_tokens)

    def excess(self) -> str | None:
        """What went over a token or FLOPs cap: only what a server produced past what was asked of it."""
        b, t = self.budget, self.total
        over = [
            f"{name} by {spent - cap:g}"
            for name, cap, spent in (
                ("tokens", b.tokens, t.total_tokens),
                ("completion_tokens", b.completion_tokens, t.completion_tokens),
                ("flops", b.flops, t.flops),
            )
            if cap is not None and spent > cap
        ]
        return "over the budget's " + ", ".join(over) if over else None

    def record(self, line: str, usage: Usage) -> None:
        self.lines[line] = self.lines.get(line, Usage()) + usage

    @property
    def total(self) -> Usage:
        return Usage.total(list(self.lines.values()))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def exhausted_reason(self) -> str | None:
        """Which cap is met, or None while the budget still allows another call."""
        b, t = self.budget, self.total
        checks = [
            ("tokens", b.tokens, t.total_tokens),
            ("completion_tokens", b.completion_tokens, t.completion_tokens),
            ("calls", b.calls, t.calls),
            ("seconds", b.seconds, self.elapsed()),
            ("flops", b.flops, t.flops),
        ]
        for name, cap, spent in checks:
            if cap is not None and spent >= cap:
                return f"{name} budget met ({spent:g} of {cap:g})"
        return None

    @property
    def exhausted(self) -> bool:
        return self.exhausted_reason() is not None

    def check(self) -> None:
        """Raise BudgetExhaustedError if no further spending is allowed."""
        reason = self.exhausted_reason()
        if reason:
            raise BudgetExhaustedError(reason)
