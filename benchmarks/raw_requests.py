"""The benchmarks' baseline: concurrent chat completions posted straight to a server, no ponder code."""

from __future__ import annotations

import asyncio

import httpx


async def raw_completion_tokens(
    base_url: str, model: str, messages: list[dict[str, str]], n: int, max_tokens: int, temperature: float
) -> int:
    """Completion tokens of ``n`` concurrent chat completions (seeds 0..n-1) of ``messages``."""
    body = {
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "cache_prompt": True,
    }
    async with httpx.AsyncClient(timeout=900, trust_env=False) as client:
        responses = await asyncio.gather(
            *(client.post(f"{base_url}/chat/completions", json={**body, "seed": i}) for i in range(n))
        )
    return sum(r.raise_for_status().json()["usage"]["completion_tokens"] for r in responses)
