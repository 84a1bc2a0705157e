"""Prompts that ask for an answer in the format the extractors read.

The instruction lives beside the extractor (``ponder.tasks.extract``) so that what the model is told and
what ponder parses cannot drift apart.
"""

from __future__ import annotations

#: Measured on qwen2.5-coder-0.5b (5 arithmetic word problems, 16 samples each): this short prompt gave
#: 35% per-sample accuracy; adding a worked place-value example gave 20% (the model copied its numbers).
MATH_SYSTEM_PROMPT = (
    "Solve the problem step by step. Keep the reasoning short. "
    "End with the final answer on its own line as \\boxed{ANSWER}."
)
