"""Throughput of self-consistency versus the best direct concurrent requests to the same llama-server.

Both sides send the same prompt with the same sampling settings to one embedded llama-server; the direct
side posts raw chat-completion requests at several concurrency levels (no ponder code in the loop), the
ponder side runs ``self-consistency:n=8`` through the full stack (strategy, context, ledger, client).
Throughput = completion tokens / wall seconds, each the best of ``--rounds`` rounds. Prints both figures
and their ratio (the target is ≥ 0.9); it never passes or fails on time.

    python benchmarks/throughput.py [--model qwen2.5-coder-0.5b] [--max-tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from raw_requests import raw_completion_tokens

import ponder
from ponder.backends.embedded.backend import embedded_backend
from ponder.core.types import Problem

QUESTION = "A farmer has 17 rows of 23 apple trees. How many trees are there? Explain step by step."


async def direct_tokens_per_second(base_url: str, model: str, concurrency: int, max_tokens: int) -> float:
    messages = [{"role": "user", "content": QUESTION}]
    started = time.monotonic()
    tokens = await raw_completion_tokens(base_url, model, messages, concurrency, max_tokens, 0.7)
    return tokens / (time.monotonic() - started)


async def ponder_tokens_per_second(
    backend: ponder.backends.Backend, n: int, max_tokens: int, seed: int
) -> float:
    started = time.monotonic()
    result = await ponder.asolve(
        Problem(QUESTION),
        f"self-consistency:n={n},max_tokens={max_tokens},temperature=0.7",
        backend=backend,
        seed=seed,
    )
    elapsed = time.monotonic() - started
    return result.usage.completion_tokens / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    backend = embedded_backend(args.model)
    await backend.start()
    await direct_tokens_per_second(backend.base_url, args.model, 1, 8)  # warm-up: load weights, fill cache

    levels = sorted({1, 2, 4, backend.capabilities.max_concurrency, args.n})
    direct: dict[int, float] = {}
    for level in levels:
        rates = [
            await direct_tokens_per_second(backend.base_url, args.model, level, args.max_tokens)
            for _ in range(args.rounds)
        ]
        direct[level] = max(rates)
        print(
            f"direct   concurrency {level:>2}: {direct[level]:7.1f} completion tokens/s "
            f"(best of {args.rounds})"
        )
    ours = max(
        [
            await ponder_tokens_per_second(backend, args.n, args.max_tokens, seed=100 * r)
            for r in range(args.rounds)
        ]
    )
    best_level = max(direct, key=direct.get)
    print(f"ponder   self-consistency:n={args.n}: {ours:7.1f} completion tokens/s (best of {args.rounds})")
    print(
        f"ratio ponder / best direct (concurrency {best_level}): "
        f"{ours / direct[best_level]:.3f}  (target ≥ 0.9)"
    )
    await backend.close()
    backend.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
