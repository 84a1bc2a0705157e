#!/usr/bin/env python3
"""Raw throughput of an OpenAI-compatible chat endpoint with C concurrent non-streaming requests.

For each concurrency C it sends waves*C requests through a semaphore of C (all requests have the same
max_tokens and, with --ignore-eos, the same length, so waves finish together), and reports completion
tokens/s = sum(usage.completion_tokens) / wall seconds, plus the server's tokens_predicted_total delta
from /metrics when the server exposes it (llama-server --metrics).

usage: raw_throughput.py --base http://127.0.0.1:8080 --conc 1,8,64,256 --max-tokens 512 --ignore-eos \\
       --out res.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time

import httpx

SYSTEM = "Solve the problem. Think step by step, then give the final answer as \\boxed{ANSWER}."


def question(i: int) -> str:
    a, b = 17 + (i * 37) % 900, 23 + (i * 91) % 700
    return (
        f"A farmer has {a} apples and buys {b} more, then gives away {i % 13} of them. "
        f"How many apples are left? (#{i})"
    )


async def metric(client: httpx.AsyncClient, base: str, name: str) -> float | None:
    try:
        r = await client.get(f"{base}/metrics", timeout=10)
        m = re.search(rf"^llamacpp:{name}\s+([0-9.eE+-]+)", r.text, re.M)
        return float(m.group(1)) if m else None
    except Exception:
        return None


async def one_level(
    base: str,
    model: str,
    conc: int,
    total: int,
    max_tokens: int,
    ignore_eos: bool,
    temperature: float,
    offset: int,
) -> dict:
    limits = httpx.Limits(max_connections=conc + 4, max_keepalive_connections=conc + 4)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(900, connect=30), limits=limits, trust_env=False
    ) as client:
        sem = asyncio.Semaphore(conc)
        lat: list[float] = []
        toks: list[int] = []
        ptoks: list[int] = []
        finish: dict[str, int] = {}
        errors: list[str] = []
        srv_tps: list[float] = []

        async def req(i: int) -> None:
            body = {
                "model": model,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": question(offset + i)},
                ],
                "max_tokens": max_tokens,
                "temperature": temperature,
                "top_p": 1.0,
                "seed": offset + i,
            }
            if ignore_eos:
                body["ignore_eos"] = True
            async with sem:
                t = time.perf_counter()
                try:
                    r = await client.post(f"{base}/v1/chat/completions", json=body)
                    r.raise_for_status()
                    j = r.json()
                except Exception as e:  # noqa: BLE001
                    errors.append(f"{type(e).__name__}: {str(e)[:200]}")
                    return
                lat.append(time.perf_counter() - t)
                u = j.get("usage") or {}
                toks.append(int(u.get("completion_tokens") or 0))
                ptoks.append(int(u.get("prompt_tokens") or 0))
                fr = (j.get("choices") or [{}])[0].get("finish_reason")
                finish[str(fr)] = finish.get(str(fr), 0) + 1
                tm = j.get("timings") or {}
                if tm.get("predicted_per_second"):
                    srv_tps.append(float(tm["predicted_per_second"]))

        m0 = await metric(client, base, "tokens_predicted_total")
        t0 = time.perf_counter()
        await asyncio.gather(*(req(i) for i in range(total)))
        wall = time.perf_counter() - t0
        m1 = await metric(client, base, "tokens_predicted_total")
    out = {
        "concurrency": conc,
        "requests": total,
        "ok": len(toks),
        "errors": len(errors),
        "error_samples": errors[:3],
        "max_tokens": max_tokens,
        "ignore_eos": ignore_eos,
        "wall_s": round(wall, 3),
        "completion_tokens": sum(toks),
        "prompt_tokens_mean": round(statistics.mean(ptoks), 1) if ptoks else None,
        "tokens_per_s": round(sum(toks) / wall, 1) if wall > 0 else None,
        "metrics_tokens_predicted_delta": (m1 - m0) if (m0 is not None and m1 is not None) else None,
        "latency_s_mean": round(statistics.mean(lat), 3) if lat else None,
        "latency_s_max": round(max(lat), 3) if lat else None,
        "per_stream_tokens_per_s_server_mean": round(statistics.mean(srv_tps), 1) if srv_tps else None,
        "finish_reasons": finish,
    }
    if out["metrics_tokens_predicted_delta"] is not None and wall > 0:
        out["metrics_tokens_per_s"] = round(out["metrics_tokens_predicted_delta"] / wall, 1)
    return out


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="http://127.0.0.1:8080")
    p.add_argument("--model", default="m")
    p.add_argument("--conc", default="1,8,64,256")
    p.add_argument("--waves", type=float, default=2.0)
    p.add_argument("--total", type=int, default=0, help="requests per level (overrides waves)")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--ignore-eos", action="store_true")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--label", default="")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    results = []
    offset = int(time.time()) % 100000 * 10
    for c in [int(x) for x in a.conc.split(",")]:
        total = a.total or max(2, int(round(c * a.waves)))
        res = await one_level(a.base, a.model, c, total, a.max_tokens, a.ignore_eos, a.temperature, offset)
        offset += total
        res["label"] = a.label
        print(json.dumps(res), flush=True)
        results.append(res)
        with open(a.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
