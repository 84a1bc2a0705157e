"""Throughput of step-level beam search versus raw concurrent requests to the same llama-server.

Beam search (``beam-search:n=N,width=W``) runs on the first few reasoning-gym ``gsm_symbolic`` problems
with the embedded model; each depth sends all its live beams in one generate call (N requests that
share their prefix, continued as partial assistant messages). The raw side posts N concurrent chat
completions of each problem (same system prompt, temperature and ``max_tokens``; no ponder code in the
loop). Prints completion tokens per wall second of both and their ratio, and the fraction of the
search's prompt tokens the server's prompt cache served. Runs the search once per scorer in ``--scorers``:
``confidence`` (no model call: the generation alone) and ``judge`` (one extra call per node, the
default). It never passes or fails on time.

    python benchmarks/search_throughput.py [--model qwen2.5-coder-0.5b] [--problems 2] [--n 4]
        [--width 2] [--max-tokens 160] [--max-depth 8] [--scorers confidence,judge]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from raw_requests import raw_completion_tokens

from ponder.backends.embedded.backend import embedded_backend
from ponder.context import Context
from ponder.core.types import Problem, Usage
from ponder.strategies import STRATEGIES
from ponder.tasks.datasets import load_dataset

TEMPERATURE = 0.8


async def raw_tokens(
    base_url: str, model: str, problem: Problem, system: str | None, n: int, max_tokens: int
) -> int:
    """Completion tokens of ``n`` concurrent chat completions of ``problem``."""
    messages = [{"role": m.role, "content": m.content} for m in problem.as_messages(system)]
    return await raw_completion_tokens(base_url, model, messages, n, max_tokens, TEMPERATURE)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--max-depth", type=int, default=8)
    parser.add_argument("--scorers", default="confidence,judge", help="step scorers to run the search with")
    args = parser.parse_args()

    dataset = load_dataset("reasoning-gym:gsm_symbolic")
    problems = dataset.problems()[: args.problems]
    backend = embedded_backend(args.model)
    await backend.start()
    await raw_tokens(backend.base_url, args.model, Problem("Say hi."), None, 1, 4)  # warm-up

    started, tokens = time.monotonic(), 0
    for problem in problems:
        tokens += await raw_tokens(
            backend.base_url, args.model, problem, dataset.system_prompt, args.n, args.max_tokens
        )
    raw_rate = tokens / (time.monotonic() - started)
    print(
        f"raw      {args.n} concurrent requests × {len(problems)} problems, max_tokens={args.max_tokens}: "
        f"{tokens} tokens, {raw_rate:6.1f} completion tokens/s"
    )

    for scorer in args.scorers.split(","):
        spec = (
            f"beam-search:n={args.n},width={args.width},max_tokens={args.max_tokens},"
            f"max_depth={args.max_depth},temperature={TEMPERATURE},scorer={scorer}"
        )
        strategy = STRATEGIES.build(spec)
        started, usage, scoring, finished = time.monotonic(), Usage(), Usage(), 0
        for index, problem in enumerate(problems):
            ctx = Context.for_dataset(dataset, backend, seed=index)
            result = await strategy.solve(problem, ctx)
            usage = usage + result.usage_by_line.get("generate", Usage())
            scoring = scoring + result.usage_by_line.get(f"scorer:{scorer}", Usage())
            finished += len(result.candidates)
        elapsed = time.monotonic() - started
        rate = usage.completion_tokens / elapsed
        cached = usage.cached_prompt_tokens / max(usage.prompt_tokens, 1)
        print(
            f"search   {spec}: {usage.completion_tokens} tokens in {usage.calls} requests, "
            f"{rate:6.1f} completion tokens/s ({rate / raw_rate:.2f} × raw); "
            f"prompt tokens from cache {usage.cached_prompt_tokens}/{usage.prompt_tokens} = {cached:.0%}; "
            f"scorer calls {scoring.calls}, scorer prompt tokens {scoring.prompt_tokens} "
            f"({scoring.cached_prompt_tokens} cached); finished solutions {finished}"
        )
    await backend.close()
    backend.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
