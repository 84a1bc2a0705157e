"""Prompts that ask for an answer in the format the extractors read.

The instruction lives beside the extractor (``ponder.tasks.extract``) so that what the model is told and
what ponder parses cannot drift apart.
"""

from __future__ import annotations

#: The worked multiplication is a hint, not a shot: small models (qwen2.5-coder-0.5b) make most of their
#: errors in multi-digit arithmetic, and showing place-value splitting once made them use it.
MATH_SYSTEM_PROMPT = (
    "Solve the problem step by step. Do arithmetic in small exact steps, "
    "e.g. 24*13 = 24*10 + 24*3 = 240 + 72 = 312. "
    "End with the final answer on its own line as \\boxed{ANSWER}."
)
