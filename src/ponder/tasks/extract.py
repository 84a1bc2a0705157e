"""Pull the final answer (or code) out of a model's free-form solution, and key answers for grouping.

Every strategy, scorer and grader must read the same answer out of the same text, so this is the one
place that does it; tools that copy answer normalisation into each file drift apart (see STYLE.md).
``None`` always means "the model gave no answer", which voting and grading must tell apart from an
empty or wrong one.
"""

from __future__ import annotations

import functools
import re

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_SPACED_BOX_ARGUMENT = re.compile(r"[ \t]+([^\s$]+)")  # MATH's "\boxed 5" form
_ANSWER_WORD = re.compile(r"\banswer\b", re.IGNORECASE)
_ANSWER_TAIL = re.compile(
    r"\s*(?:\*\*|__)?\s*(?:is\b\s*:?|:)\s*(?:\*\*|__)?\s*(?P<answer>[^\n]*)", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_INLINE_MATH = re.compile(r"\$\$?(.+?)\$\$?|\\\((.+?)\\\)")
_NUMBER = re.compile(
    r"(?:(?<![\w)\]}])-)?"  # a sign, but not the minus of a subtraction such as "3-5"
    r"(?:\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?"  # 1,234,567.89
    r"|\d+/\d+"  # 3/4
    r"|\d*\.\d+"
    r"|\d+)"
)
#: characters at the end of a text scanned first for its last number
_NUMBER_TAIL = 256
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_UNIT_SUFFIX = re.compile(
    r"(?P<value>[-+]?\d[\d.,/]*)(?:\s|\\[,;:! ])*\\(?:text|mbox)\{\s*[A-Za-z][A-Za-z\s.]*\}(?:\^\{?\d\}?)?"
)
_FENCED_BLOCK = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
_LANGUAGE_ALIASES = {"python": {"python", "py", "python3"}}
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_THINK_SECTION = re.compile(r"<think>.*?</think>", re.DOTALL)

_SIZING = re.compile(r"\\(?:left|right)(?:\.|(?![A-Za-z]))")  # \left( -> (, and the invisible \right.
_LATEX_SPACES = re.compile(r"\\[!,;: ]")
_WHITESPACE = re.compile(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])|\s+")
_PLAIN_WORDS = re.compile(r"[A-Za-z][A-Za-z\s'-]*")
_GROUPED_NUMBER = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_TRAILING_ZEROS = re.compile(r"(?<![\d.])(\d+)\.(\d*?)0+(?![\d.])")


def final_part(text: str) -> str:
    """The text after a reasoning model's thinking: ``<think>…</think>`` sections are never the answer.

    A closed section is dropped; an unclosed one (thinking cut off by the token limit) drops everything
    after its ``<think>``, so half a thought gives no answer rather than a guess; a ``</think>`` with no
    opening (templates that put ``<think>`` in the prompt, as DeepSeek-R1's) drops everything before it.
    Text without these tags is returned unchanged.
    """
    if _THINK_CLOSE not in text and _THINK_OPEN not in text:
        return text
    if _THINK_CLOSE in text and _THINK_OPEN not in text.split(_THINK_CLOSE, 1)[0]:
        text = text.split(_THINK_CLOSE, 1)[1]
    text = _THINK_SECTION.sub("", text)
    opening = text.find(_THINK_OPEN)
    return text if opening < 0 else text[:opening]


def extract_answer(text: str) -> str | None:
    """The final answer of a solution, or ``None`` when the text commits to none.

    Only the text after any thinking counts (:func:`final_part`). Priority: the last complete
    ``\\boxed{}``/``\\fbox{}`` (the convention models are trained on); else
    the last "the (final) answer is X" / "Answer: X"; else the last number in the text. An unclosed box
    (a generation cut off by the token limit) is skipped rather than returned half-read. Units are
    dropped only in the unambiguous case of a number followed by ``\\text{words}`` ("5\\text{ apples}"
    -> "5"); anything else inside ``\\text`` is kept, because it may be the answer itself.
    """
    text = final_part(text)
    for extractor in _EXTRACTORS:  # lazily: most samples are answered by their box, the cheapest
        if found := extractor(text):
            return found
    return None


def _last_boxed(text: str) -> str | None:
    if "\\boxed" not in text and "\\fbox" not in text:  # a substring test is far cheaper than a scan
        return None
    for command in reversed(list(_BOX_COMMAND.finditer(text))):
        content = _box_argument(text, command.end())
        if content is not None and (cleaned := _clean(content)):
            return cleaned
    return None


def _box_argument(text: str, start: int) -> str | None:
    """The braced (or MATH-style space-separated) argument starting at ``start``; None if unclosed."""
    position = start
    while position < len(text) and text[position] in " \t":
        position += 1
    if position < len(text) and text[position] == "{":
        return _balanced_group(text, position)
    spaced = _SPACED_BOX_ARGUMENT.match(text, start)
    return spaced.group(1) if spaced else None


def _balanced_group(text: str, opening: int) -> str | None:
    """Contents of the brace group opening at ``opening``, skipping escaped braces like ``\\{``."""
    depth, position = 0, opening
    while position < len(text):
        character = text[position]
        if character == "\\":
            position += 2
            continue
        if character == "{":
            depth += 1
        elif character == "}":
            depth -= 1
            if depth == 0:
                return text[opening + 1 : position]
        position += 1
    return None


def _last_stated(text: str) -> str | None:
    """The answer after the last "answer is" / "answer:" that is followed by something."""
    for word in reversed(list(_ANSWER_WORD.finditer(text))):
        tail = _ANSWER_TAIL.match(text, word.end())
        if tail is None:
            continue
        stated = _SENTENCE_END.split(tail.group("answer"), maxsplit=1)[0]
        math = _INLINE_MATH.search(stated)
        if cleaned := _clean((math.group(1) or math.group(2)) if math else stated):
            return cleaned
    return None


def _last_number(text: str) -> str | None:
    """The last number, found by scanning only the tail of the text, widened until one turns up.

    A scan may start at any whitespace: no number contains one, so the numbers after it are the ones a
    scan of the whole text finds there (the sign's look-behind still sees what precedes the start).
    """
    tail = _NUMBER_TAIL
    while True:
        start = max(text.rfind(" ", 0, len(text) - tail), text.rfind("\n", 0, len(text) - tail), 0)
        numbers = _NUMBER.findall(text, start)
        if numbers:
            return str(numbers[-1]).replace(",", "")
        if start == 0:
            return None
        tail *= 4


_EXTRACTORS = (_last_boxed, _last_stated, _last_number)


def _clean(answer: str) -> str:
    """Strip what surrounds an answer: whitespace, a sentence's full stop, ``$``/``\\(``, markdown bold."""
    previous = None
    while answer != previous:
        previous = answer
        answer = answer.strip().rstrip(".").strip("*").strip()
        for opening, closing in _DELIMITERS:
            if (
                len(answer) > len(opening) + len(closing)
                and answer.startswith(opening)
                and answer.endswith(closing)
            ):
                answer = answer[len(opening) : -len(closing)]
                break
    if units := _UNIT_SUFFIX.fullmatch(answer):
        return units.group("value")
    if wrapped := _TEXT_WRAPPER.fullmatch(answer):
        return wrapped.group(1).strip()
    return answer


def extract_code(text: str, language: str | None = "python") -> str | None:
    """The last fenced code block after any thinking, preferring blocks tagged ``language``; else None.

    A block in another (or no) language is still returned when none is tagged ``language``, since models
    often omit the tag. Unclosed fences (a cut-off generation) are ignored: half a program is not a
    program.
    """
    blocks = [
        (tag.lower(), code.strip("\n"))
        for tag, code in _FENCED_BLOCK.findall(final_part(text))
        if code.strip()
    ]
    if language is not None:
        accepted = _LANGUAGE_ALIASES.get(language.lower(), {language.lower()})
        tagged = [code for tag, code in blocks if tag in accepted]
        if tagged:
            return tagged[-1]
    return blocks[-1][1] if blocks else None


@functools.lru_cache(maxsize=65536)
def normalize_answer(answer: str) -> str:
    """A canonical key for grouping answers by string equality before any symbolic comparison.

    Only rewrites that never change the value: delimiters, sizing commands, LaTeX spacing, ``\\dfrac``,
    thousands separators (only when the whole answer is one grouped number, so a pair like "(10,100)"
    survives), trailing decimal zeros, and case for answers that are plain words. Whitespace is removed
    except where it ends a command ("\\pi r" must not become "\\pir").
    """
    text = _clean(answer)
    if _PLAIN_WORDS.fullmatch(text):
        text = text.lower()
    text = _SIZING.sub("", text)
    text = _LATEX_SPACES.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",")
    text = _WHITESPACE.sub(lambda match: f"{match.group(1)} " if match.group(1) else "", text)
    if _GROUPED_NUMBER.fullmatch(text):
        text = text.replace(",", "")
    return _TRAILING_ZEROS.sub(
        lambda match: match.group(1) + (f".{match.group(2)}" if match.group(2) else ""), text
    )
