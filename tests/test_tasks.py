"""Answer extraction, normalisation, equivalence and grouping (ponder.tasks)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ponder
from ponder.tasks import (
    answers_equivalent,
    extract_answer,
    extract_code,
    group_equivalent,
    is_correct,
    normalize_answer,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("first \\boxed{1}, then on reflection \\boxed{2}", "2"),
        ("\\fbox{7}", "7"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("$\\boxed{42}$", "42"),
        ("\\boxed{$5$}", "5"),
        ("\\boxed 5$", "5"),
        ("\\boxed{5\\text{ apples}}", "5"),
        ("\\boxed{10\\text{ cm}^2}", "10"),
        ("\\boxed{\\text{(B)}}", "(B)"),
        ("\\boxed{x \\text{ if } x > 0}", "x \\text{ if } x > 0"),
        ("the boxed answer wins: \\boxed{3}. The answer is 4.", "3"),
        ("\\boxed{3} and then a cut-off \\boxed{\\frac{1}{", "3"),
        ("The answer is 42.", "42"),
        ("So the final answer is 3.5. Let me double-check: yes.", "3.5"),
        ("**Answer:** 7", "7"),
        ("**Answer**: **12**.", "12"),
        ("Final answer: $\\frac{3}{4}$", "\\frac{3}{4}"),
        ("The answer is $5$ apples.", "5"),
        ("The answer is \\( x^2 \\).", "x^2"),
        ("answer: 1\nLater: the ANSWER IS 2", "2"),
        ("Answer: the answer is 9", "9"),
        ("I wonder what the answer is", None),
        ("We had 12 apples, bought 1,234 more and lost -5.", "-5"),
        ("The total is 1,234,567 dollars", "1234567"),
        ("it costs 3.50 now", "3.50"),
        ("the ratio is 3/4.", "3/4"),
        ("x-5", "5"),
        ("No number and no conclusion here.", None),
        ("", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


PROGRAM = """Here is a sketch:
```bash
echo hi
```
and the solution:
```python
def f(x):
    return x + 1
```
and a usage note:
```text
run it
```
"""


def test_extract_code_prefers_the_requested_language() -> None:
    assert extract_code(PROGRAM) == "def f(x):\n    return x + 1"
    assert extract_code(PROGRAM, "bash") == "echo hi"


def test_extract_code_falls_back_to_the_last_block() -> None:
    assert extract_code(PROGRAM, None) == "run it"
    assert extract_code(PROGRAM, "rust") == "run it"
    assert extract_code("```\nprint(1)\n```") == "print(1)"


def test_extract_code_accepts_python_aliases_and_ignores_unclosed_fences() -> None:
    assert extract_code("```py\nx = 1\n```\n```python\ny = 2") == "x = 1"
    assert extract_code("no code here") is None
    assert extract_code("```python\nunfinished") is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("391.0", "391"),
        ("0.50", "0.5"),
        ("391.05", "391.05"),
        ("1,234", "1234"),
        ("-1,234,567.5", "-1234567.5"),
        ("1{,}000", "1000"),
        ("1,\\!000", "1000"),
        ("(10,100)", "(10,100)"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\tfrac12", "\\frac12"),
        (" $ 3 $ ", "3"),
        ("Yes", "yes"),
        ("\\text{Devon}", "devon"),
        ("2 \\pi r", "2\\pi r"),
        ("X^2", "X^2"),
    ],
)
def test_normalize_answer(answer: str, expected: str) -> None:
    assert normalize_answer(answer) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("0.5", "\\frac{1}{2}"),
        ("1/2", "0.5"),
        ("1/2", "\\dfrac{1}{2}"),
        ("3/4", "0.75"),
        ("391", "391.0"),
        ("391", "\\frac{782}{2}"),
        ("1,234", "1234"),
        ("0.333333", "1/3"),
        ("x^2+2x+1", "(x+1)^2"),
        ("\\sqrt{2}", "2^{1/2}"),
        ("\\{1,2\\}", "\\{2,1\\}"),
        ("x > 1", "(1, \\infty)"),
        ("Yes", "yes"),
        ("10^{10^{10}}", "10^{10^{10}}"),
    ],
)
def test_equivalent_answers(first: str, second: str) -> None:
    assert answers_equivalent(first, second)
    assert answers_equivalent(second, first)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("390", "391"),
        ("1000000", "1000001"),
        ("0.5", "0.6"),
        ("1/3", "0.33"),
        ("x^2+2x+1", "(x+2)^2"),
        ("\\sqrt{2}", "\\sqrt{3}"),
        ("yes", "no"),
        ("1/0", "2/0"),
    ],
)
def test_different_answers(first: str, second: str) -> None:
    assert not answers_equivalent(first, second)
    assert not answers_equivalent(second, first)


def test_no_answer_is_equivalent_to_nothing() -> None:
    assert not answers_equivalent(None, None)
    assert not answers_equivalent(None, "1")
    assert not answers_equivalent("1", None)
    assert not is_correct(None, "1")


def test_is_correct_grades_against_the_reference() -> None:
    assert is_correct(extract_answer("so \\boxed{\\dfrac{782}{2}}"), "391")
    assert not is_correct("390", "391")


def test_group_equivalent_example() -> None:
    assert group_equivalent(["391", "391.0", "\\frac{782}{2}", "390", None]) == [[0, 1, 2], [3]]
    assert group_equivalent([None, None]) == []
    assert group_equivalent([]) == []


def test_pathological_answers_are_refused_not_hung() -> None:
    """Each of these makes sympy compute (practically) for ever; a child process bounds the wait."""
    script = """
from ponder.tasks import answers_equivalent
pairs = [
    ("10^{10^{10}}", "3"),
    ("9^{9^{9}}", "9^{9^{9}}+1"),
    ("(10^{100})!", "5"),
    ("\\\\binom{10^{100}}{10^{50}}", "2"),
    ("(x+y+z+w)^{100}", "(x+y)^{100}"),
    ("1+" * 300 + "1", "601"),
]
print(sum(answers_equivalent(first, second) for first, second in pairs))
"""
    source = str(Path(ponder.__file__).parents[1])
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": source},
        check=True,
    )
    assert completed.stdout.strip() == "0"


def test_equivalence_works_off_the_main_thread() -> None:
    """math-verify's default timeouts use signals, which fail outside the main thread."""
    pairs = [("a^2+2ab+b^2", "(a+b)^2"), ("\\frac{\\sqrt{8}}{2}", "\\sqrt{2}"), ("u^2-1", "(u-1)(u+1)")]
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(lambda pair: answers_equivalent(*pair), pairs)) == [True, True, True]

    results: list[list[list[int]]] = []
    thread = threading.Thread(target=lambda: results.append(group_equivalent(["(t+2)^2", "t^2+4t+4", "t"])))
    thread.start()
    thread.join()
    assert results == [[[0, 1], [2]]]


POOL = [
    "391",
    "391.0",
    "\\frac{782}{2}",
    "390",
    "0.5",
    "\\frac{1}{2}",
    "1/2",
    "x^2",
    "x \\cdot x",
    "yes",
    "Yes",
]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(POOL)), max_size=12))
def test_group_equivalent_is_a_partition(answers: list[str | None]) -> None:
    classes = group_equivalent(answers)
    assert sorted(index for members in classes for index in members) == [
        index for index, answer in enumerate(answers) if answer is not None
    ]
    assert [members[0] for members in classes] == sorted(members[0] for members in classes)
    for members in classes:
        assert members == sorted(members)
        assert all(answers_equivalent(answers[members[0]], answers[index]) for index in members)


INTEGER_FORMS = ["{}", "{}.0", "{}.000", "${}$", "{:,}", "{}/1"]


def _render(value: int, form: str) -> str:
    if form == "frac":
        return f"\\frac{{{2 * value}}}{{2}}"
    return form.format(value)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.tuples(st.integers(-(10**12), 10**12), st.sampled_from([*INTEGER_FORMS, "frac"])),
        ),
        max_size=15,
    )
)
def test_integers_group_exactly_by_value(items: list[tuple[int, str] | None]) -> None:
    answers = [None if item is None else _render(*item) for item in items]
    expected: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        if item is not None:
            expected.setdefault(item[0], []).append(index)
    assert group_equivalent(answers) == list(expected.values())


_NUMBERISH = st.text(alphabet="0123456789,.-/ \nab)$", max_size=400)


@given(head=_NUMBERISH, filler=st.sampled_from(["", "word " * 80, "x" * 700, "7 " * 300]), tail=_NUMBERISH)
@settings(max_examples=300, deadline=None)
def test_last_number_scans_the_tail_yet_finds_what_a_whole_scan_finds(
    head: str, filler: str, tail: str
) -> None:
    from ponder.tasks.extract import _NUMBER, _last_number

    text = head + filler + tail
    numbers = _NUMBER.findall(text)
    assert _last_number(text) == (numbers[-1].replace(",", "") if numbers else None)


def test_extraction_stops_at_the_first_extractor_that_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from ponder.tasks import extract

    called: list[str] = []

    def spy(function: Callable[[str], str | None]) -> Callable[[str], str | None]:
        def spied(text: str) -> str | None:
            called.append(function.__name__)
            return function(text)

        return spied

    monkeypatch.setattr(extract, "_EXTRACTORS", tuple(spy(f) for f in extract._EXTRACTORS))
    assert extract.extract_answer("3 + 4 = 7, so the answer is \\boxed{7}") == "7"
    assert called == ["_last_boxed"]
    assert extract.extract_answer("no box; the answer is 9.") == "9"
    assert called == ["_last_boxed", "_last_boxed", "_last_stated"]
