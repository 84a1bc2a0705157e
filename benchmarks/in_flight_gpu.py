"""Completion tokens/s that ponder's OpenAI-compatible backend gets from a GPU server, by in-flight limit.

Many callers (``--callers``, more than any limit tried) each send one request after another through one
``OpenAIBackend`` (llama-server profile, as ``ponder eval --server llama-server`` does), every request
``--max-tokens`` long (``ignore_eos``), for ``--seconds``. For each ``--max-in-flight`` value (N fixed,
``auto`` adaptive) it prints completion tokens/s over the whole run and over its last half (after an
adaptive limit has grown), and for ``auto`` the limit every few seconds. It never passes or fails.

    python benchmarks/in_flight_gpu.py --base-url http://127.0.0.1:8080/v1 --limits 8,64,256,auto
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from ponder.backends.base import GenRequest
from ponder.backends.openai import OpenAIBackend, server_capabilities
from ponder.core.types import Message


async def measure(base_url: str, limit: str, callers: int, seconds: float, max_tokens: int) -> dict:
    backend = OpenAIBackend(
        model="m",
        base_url=base_url,
        server="llama-server",
        capabilities=server_capabilities("llama-server"),
        max_in_flight=limit,
        extra_body={"ignore_eos": True},
        timeout=900,
    )
    started = time.monotonic()
    deadline = started + seconds
    done: list[tuple[float, int]] = []  # (time, completion tokens)
    trace: list[tuple[float, int]] = []

    async def caller(index: int) -> None:
        count = 0
        while time.monotonic() < deadline:
            question = f"Caller {index}, question {count}: what is {index} + {count}? Explain at length."
            message = Message("user", question)
            request = GenRequest(messages=(message,), max_tokens=max_tokens, temperature=0.7)
            [[generation]] = await backend.generate([request])
            done.append((time.monotonic(), generation.completion_tokens))
            count += 1

    async def watch() -> None:
        while time.monotonic() < deadline:
            trace.append((round(time.monotonic() - started, 1), backend.in_flight_limit()))
            await asyncio.sleep(5)

    await asyncio.gather(watch(), *(caller(i) for i in range(callers)))
    await backend.close()
    half = started + seconds / 2  # replies after the deadline (the drain) are left out of both rates
    return {
        "max_in_flight": limit,
        "tokens_per_s": round(sum(t for at, t in done if at <= deadline) / seconds, 1),
        "tokens_per_s_last_half": round(2 * sum(t for at, t in done if half <= at <= deadline) / seconds, 1),
        "requests": len(done),
        "limit_over_time": trace,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--limits", default="8,64,256,auto")
    parser.add_argument("--callers", type=int, default=320)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    results = []
    for limit in args.limits.split(","):
        result = asyncio.run(measure(args.base_url, limit, args.callers, args.seconds, args.max_tokens))
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.out:
        with open(args.out, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
