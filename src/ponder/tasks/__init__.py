"""Answer handling shared by strategies, scorers and graders: extract, normalise, compare, group."""

from ponder.tasks.equivalence import answers_equivalent, group_equivalent, is_correct
from ponder.tasks.extract import extract_answer, extract_code, normalize_answer

__all__ = [
    "answers_equivalent",
    "extract_answer",
    "extract_code",
    "group_equivalent",
    "is_correct",
    "normalize_answer",
]
