"""Steps of a solution, as process reward models and step-wise strategies see them.

A step is a paragraph: the text between blank lines. This is the convention of the PRMs ponder
supports (Qwen2.5-Math-PRM and Math-Shepherd both score solutions whose steps are separated by
blank lines) and of step-wise search ("search-and-learn", Hugging Face, 2024).
"""

from __future__ import annotations

import re

_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def split_steps(text: str, delimiter: str = "\n\n") -> list[str]:
    """The non-empty steps of ``text``, stripped; with the default delimiter any blank line splits."""
    parts = _BLANK_LINES.split(text) if delimiter == "\n\n" else text.split(delimiter)
    return [part.strip() for part in parts if part.strip()]
