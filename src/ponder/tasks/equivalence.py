"""Decide whether two answers are the same answer, and group answers by it for voting.

Majority voting and grading both ask "same answer?", and string equality says no to "391" versus
"391.0" versus "\\frac{782}{2}". Cheap checks come first (normalised strings, then exact numbers);
math-verify (Hugging Face) settles the rest symbolically.

math-verify's own timeouts are switched off on purpose: they use SIGALRM, which only works on the main
thread, and ponder compares answers from asyncio worker threads and servers. Its warning about that is
silenced below. Instead of a timeout, inputs that could make sympy compute for ever are refused before
they reach it: long strings, numbers with more than ``_MAX_DIGITS`` digits (``10^{10^{10}}`` is
fourteen characters), factorials of large numbers, and symbolic powers above ``_MAX_SYMBOLIC_EXPONENT``.
A refused pair is equivalent only if its normalised strings are equal. This bounds the cases that
would never finish; it is not a hard time limit, and an ordinary symbolic comparison can still take a
second or two.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from fractions import Fraction
from typing import Any

from ponder.tasks.extract import normalize_answer

_MAX_LENGTH = 500  # characters; longer answers are compared as normalised strings only
_MAX_DIGITS = 10_000  # decimal digits of the largest exact number sympy may be asked to build
_MAX_SYMBOLIC_EXPONENT = 12  # simplify expands (x+y+z+w)^n: about 2 s at 12, 9 s at 20, minutes at 30
_MAX_FACTORIAL_ARGUMENT = 3_000  # 3000! has about 9,100 digits, within _MAX_DIGITS
_RELATIVE_TOLERANCE = Fraction(1, 10**6)

_DECIMAL = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_PLAIN_NUMBER = re.compile(_DECIMAL)
_RATIO = re.compile(rf"({_DECIMAL})/({_DECIMAL})")
_FRACTION = re.compile(rf"([-+]?)\\frac\{{({_DECIMAL})\}}\{{({_DECIMAL})\}}")


def _drop_timeout_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Timeout is disabled")


for _logger_name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_logger_name).addFilter(_drop_timeout_notice)


def answers_equivalent(first: str | None, second: str | None) -> bool:
    """Whether two answers denote the same value; ``None`` (no answer) is equivalent to nothing.

    Symmetric by construction, so voting does not depend on which candidate came first. Safe to call
    from any thread.
    """
    if first is None or second is None:
        return False
    return _normalized_equivalent(*sorted((normalize_answer(first), normalize_answer(second))))


@functools.lru_cache(maxsize=65536)
def _normalized_equivalent(first: str, second: str) -> bool:
    """Cached on the normalised pair (sorted by the caller), because voting compares many pairs."""
    if first == second:
        return True
    if len(first) > _MAX_LENGTH or len(second) > _MAX_LENGTH:
        return False
    first_number, second_number = _as_number(first), _as_number(second)
    if first_number is not None and second_number is not None:
        if "." in first or "." in second:
            return _close(first_number, second_number)
        return first_number == second_number
    return _symbolically_equal(first, second)


def _as_number(text: str) -> Fraction | None:
    """The exact value of a plain number, "a/b" or "\\frac{a}{b}"; None for anything else."""
    try:
        if _PLAIN_NUMBER.fullmatch(text):
            return Fraction(text)
        if ratio := _RATIO.fullmatch(text):
            return Fraction(ratio.group(1)) / Fraction(ratio.group(2))
        if fraction := _FRACTION.fullmatch(text):
            value = Fraction(fraction.group(2)) / Fraction(fraction.group(3))
            return -value if fraction.group(1) == "-" else value
    except ZeroDivisionError:
        return None
    return None


def _close(first: Fraction, second: Fraction) -> bool:
    """Equal within a relative tolerance, for when a decimal is involved and may be rounded ("0.333333").

    Integers and fractions compare exactly instead, so that 1000000 and 1000001 stay different answers.
    Computed in exact arithmetic so that huge values cannot overflow a float.
    """
    return abs(first - second) <= _RELATIVE_TOLERANCE * max(abs(first), abs(second))


def _symbolically_equal(first: str, second: str) -> bool:
    """math-verify in both directions (its ``verify`` treats gold and target asymmetrically).

    math-verify and sympy are imported here, not at module load: they cost over a second of start-up
    that most commands (and every answer decided by the fast numeric path) never need.
    """
    from math_verify import parse, verify

    try:
        first_parsed = parse(f"${first}$", parsing_timeout=None)
        second_parsed = parse(f"${second}$", parsing_timeout=None)
        if not (first_parsed and second_parsed and _tame(first_parsed) and _tame(second_parsed)):
            return False
        return verify(first_parsed, second_parsed, timeout_seconds=None) or verify(
            second_parsed, first_parsed, timeout_seconds=None
        )
    except Exception:  # math-verify and sympy raise a wide variety; any failure means "not shown equal"
        return False


def _tame(parsed: list[object]) -> bool:
    """Whether every parsed expression is cheap to evaluate exactly.

    Nodes are visited children first and the walk stops at the first refusal, so each power is only
    estimated once its base and exponent are known to be small enough to evaluate in floating point.
    """
    from sympy import Basic, postorder_traversal

    expressions = [item for item in parsed if isinstance(item, Basic)]
    return all(_tame_node(node) for expression in expressions for node in postorder_traversal(expression))


def _tame_node(node: Any) -> bool:
    from sympy import Pow
    from sympy.functions.combinatorial.factorials import binomial, factorial, factorial2, subfactorial

    if isinstance(node, Pow) and node.exp.is_number:
        exponent = abs(complex(node.exp.evalf(15)))
        if not node.base.is_number:
            return exponent <= _MAX_SYMBOLIC_EXPONENT
        base = abs(complex(node.base.evalf(15)))
        digits = exponent * abs(math.log10(base)) if base else 0.0
        return math.isfinite(digits) and digits <= _MAX_DIGITS
    if isinstance(node, (factorial, factorial2, subfactorial, binomial)):
        numbers = [argument for argument in node.args if argument.is_number]
        return all(abs(complex(number.evalf(15))) <= _MAX_FACTORIAL_ARGUMENT for number in numbers)
    return True


def group_equivalent(answers: list[str | None]) -> list[list[int]]:
    """Partition the indices of non-None answers into equivalence classes, in order of first appearance.

    Each answer joins the first class whose first member it is equivalent to. Majority voting counts
    these classes, not identical strings. Equivalence within a tolerance is not transitive, so the
    classes depend on which answers are grouped together: group exactly the answers being voted on (the
    eval's sample bank groups each subset it re-selects from, as a live vote over it would), never
    classes of a larger set narrowed down.
    """
    classes: list[list[int]] = []
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for members in classes:
            if answers_equivalent(answers[members[0]], answer):
                members.append(index)
                break
        else:
            classes.append([index])
    return classes


def is_correct(predicted: str | None, reference: str) -> bool:
    """Whether a predicted answer matches the reference; the same relation voting uses, so they agree."""
    return answers_equivalent(predicted, reference)
