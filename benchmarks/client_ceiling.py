"""How much client CPU ponder spends per token, against a minimal httpx client sending the same requests.

A fake OpenAI-compatible server runs in a subprocess on 127.0.0.1 and answers at once from replies it
built ahead (the first request of each shape builds its reply; later ones reuse it), so the client's
own CPU is the only thing that limits either side. Only the client process's CPU is measured
(``time.process_time()``: every thread of this process, none of the server's). Scenarios:

* ``generic``: ``ponder eval`` (``run_eval``), 200 problems × ``self-consistency:n=16``, 1,024-token
  samples, server profile ``generic`` (one ``n=16`` request per problem; ponder asks for logprobs to
  count each choice's tokens, so the minimal client asks for them too);
* ``llama-server``: the same eval on profile ``llama-server`` (16 single-sample requests per problem);
* ``logprobs``: ``deepconf:mode=offline,n=16,max_tokens=256`` (top-5 logprobs, DeepConf's
  ``lowest_window`` metric), 200 problems;
* ``serve``: ``ponder serve --upstream fake=…`` in a subprocess, 2,000 short chat completions passed
  through (no strategy) by 32 concurrent clients; the figure is requests per CPU-second of the serve
  processes (read from ``/proc``), next to the fake server's own rate for the same requests sent direct.

The minimal client is httpx plus ``json.loads`` (what a user would write): the same request bodies, the
same concurrency, reading ``usage.completion_tokens``; it extracts no answer and stores nothing.
Tokens are completion tokens (ponder's are those its eval records billed). Figures are printed, never
judged: the ratios depend on the machine.

    .venv/bin/python benchmarks/client_ceiling.py [--problems 200] [--rounds 3] [--workers 1,2]
        [--scenarios generic,llama-server,logprobs,serve]

Measured 2026-12-02 (2-core shared VM under load, Python 3.11.7; ``--problems 200 --rounds 3 --workers
1,2``; docs/scaling.md, "Client overhead", has the table): ``generic`` 928 k tok/CPU-s against the
minimal client's 242 k (ratio 3.84); ``llama-server`` 573 k against 549 k (1.04); ``logprobs`` 139 k
against 71 k (1.95); ``serve`` 1,250 pass-through requests per serve CPU-second with one worker,
1,266 with two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

SYSTEM = "Solve the problem step by step. Put the final answer in \\boxed{}."
WORDS = ("so", "the", "total", "is", "we", "add", "then", "each", "of", "and", "gives", "left")


# -- the fake server (run in a subprocess: ``client_ceiling.py --fake-server``) ---------------------------
def _tokens(count: int, answer: int) -> list[str]:
    """``count`` token pieces of a plausible worked solution ending in a boxed answer."""
    ending = [" The", " answer", " is", " \\boxed{", str(answer), "}."]
    body = [f" {i % 97}" if i % 7 == 3 else f" {WORDS[i % len(WORDS)]}" for i in range(count - len(ending))]
    return (body + ending)[-count:] if count >= len(ending) else ending[:count]


def _logprob_entry(token: str, position: int, top: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "token": token,
        "logprob": -((position % 13) + 1) / 40,
        "bytes": list(token.encode()),
    }
    entry["top_logprobs"] = [
        {"token": token if j == 0 else f" alt{j}", "logprob": -((position + j) % 11 + j) / 7 - 0.01}
        for j in range(top)
    ]
    return entry


def fake_reply(body: dict[str, Any]) -> bytes:
    """A complete chat completion for ``body``: ``n`` choices of ``max_tokens`` tokens each, logprobs as
    asked, usage counting every choice (as OpenAI and vLLM do)."""
    n, max_tokens = int(body.get("n") or 1), int(body.get("max_tokens") or 16)
    logprobs, top = bool(body.get("logprobs")), int(body.get("top_logprobs") or 0)
    choices = []
    for index in range(n):
        pieces = _tokens(max_tokens, 40 + index % 3)
        choice: dict[str, Any] = {
            "index": index,
            "message": {"role": "assistant", "content": "".join(pieces)},
            "finish_reason": "stop",
            "logprobs": (
                {"content": [_logprob_entry(p, i, top) for i, p in enumerate(pieces)]} if logprobs else None
            ),
        }
        choices.append(choice)
    reply = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "fake"),
        "choices": choices,
        "usage": {
            "prompt_tokens": 60,
            "completion_tokens": n * max_tokens,
            "total_tokens": 60 + n * max_tokens,
        },
    }
    return json.dumps(reply).encode()


class _FakeProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, Content-Length bodies only: enough for httpx, nothing more."""

    replies: dict[tuple[Any, ...], bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            self.answer(head.split(" ", 2)[1], body)

    def answer(self, path: str, raw: bytes) -> None:
        if path.endswith("/models"):
            content = b'{"object":"list","data":[{"id":"fake","object":"model"}]}'
        else:
            body = json.loads(raw)
            if body.get("stream"):
                content = b'{"error":{"message":"the fake server does not stream"}}'
                self.send(400, content)
                return
            key = (body.get("n"), body.get("logprobs"), body.get("top_logprobs"), body.get("max_tokens"))
            if key not in self.replies:
                self.replies[key] = fake_reply(body)
            content = self.replies[key]
        self.send(200, content)

    def send(self, status: int, content: bytes) -> None:
        head = f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {len(content)}\r\n"
        self.transport.write(head.encode() + b"\r\n" + content)


def run_fake_server() -> None:
    """Serve on a free port of 127.0.0.1, print the port, run until stdin closes."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FakeProtocol, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # the benchmark closes stdin to stop us
        server.close()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def start_fake_server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--fake-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/v1"


# -- the clients ---------------------------------------------------------------------------------------
def write_dataset(directory: Path, problems: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "problems.jsonl"
    with path.open("w") as file:
        for i in range(problems):
            row = {
                "id": f"q{i}",
                "question": f"Tom has {i + 3} apples and buys {i + 37}. How many?",
                "answer": "41",
            }
            file.write(json.dumps(row) + "\n")
    return path


def measure(work: Callable[[], Awaitable[int]]) -> tuple[int, float, float]:
    """Run ``work`` on a fresh event loop; its result (tokens or requests), CPU seconds and wall seconds."""
    cpu, wall = time.process_time(), time.monotonic()
    count = asyncio.run(work())
    return count, time.process_time() - cpu, time.monotonic() - wall


async def ponder_eval(base_url: str, server: str, strategy: str, dataset: Path, out: Path) -> int:
    from ponder.backends.openai import OpenAIBackend, server_capabilities
    from ponder.eval.runner import EvalConfig, run_eval
    from ponder.eval.store import RecordStore

    capabilities = server_capabilities(server)
    backend = OpenAIBackend(model="fake", base_url=base_url, server=server, capabilities=capabilities)
    config = EvalConfig(
        dataset=f"jsonl:{dataset}",
        strategies=[strategy],
        budgets=[16],
        model="fake",
        concurrency=capabilities.max_concurrency,
    )
    try:
        await run_eval(config, backend, out, show_progress=False)
    finally:
        await backend.close()
    return sum(record["usage"]["completion_tokens"] for record in RecordStore(out).load())


def minimal_bodies(server: str, problems: int, max_tokens: int, top: int | None) -> list[dict[str, Any]]:
    """The request bodies ponder sends for these evals, written out by hand."""
    bodies = []
    for i in range(problems):
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Tom has {i + 3} apples and buys {i + 37}. How many?"},
        ]
        base = {
            "model": "fake",
            "messages": messages,
            "temperature": 0.7,
            "top_p": 1.0,
            "max_tokens": max_tokens,
        }
        if server == "llama-server":
            bodies += [{**base, "n": 1, "seed": s, "cache_prompt": True} for s in range(16)]
        else:
            body = {**base, "n": 16, "seed": i, "logprobs": True}
            bodies.append({**body, "top_logprobs": top} if top else body)
    return bodies


async def minimal_client(base_url: str, bodies: list[dict[str, Any]], in_flight: int) -> int:
    semaphore = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(timeout=600, trust_env=False) as client:

        async def one(body: dict[str, Any]) -> int:
            async with semaphore:
                response = await client.post(f"{base_url}/chat/completions", json=body)
                response.raise_for_status()
                return int(json.loads(response.content)["usage"]["completion_tokens"])

        return sum(await asyncio.gather(*(one(body) for body in bodies)))


def eval_scenario(name: str, base_url: str, problems: int, directory: Path, rounds: int) -> None:
    from ponder.backends.openai import server_capabilities

    server = "llama-server" if name == "llama-server" else "generic"
    max_tokens, top = (256, 5) if name == "logprobs" else (1024, None)
    strategy = (
        f"deepconf:mode=offline,n=16,max_tokens={max_tokens}"
        if name == "logprobs"
        else f"self-consistency:n=16,max_tokens={max_tokens}"
    )
    dataset = write_dataset(directory, problems)
    bodies = minimal_bodies(server, problems, max_tokens, top)
    in_flight = server_capabilities(server).max_concurrency
    # one warm-up round each (imports, first replies built by the server), then rounds taken in turn;
    # each side's least CPU counts (the machine is shared: other work only ever adds to a round)
    measure(lambda: minimal_client(base_url, bodies[:16], in_flight))
    measure(
        lambda: ponder_eval(base_url, server, strategy, write_dataset(directory / "warm", 2), directory / "w")
    )
    minimal, ours = [], []
    for round in range(rounds):
        minimal.append(measure(lambda: minimal_client(base_url, bodies, in_flight)))
        ours.append(
            measure(
                lambda out=directory / f"{name}{round}": ponder_eval(base_url, server, strategy, dataset, out)
            )
        )
    report(name, strategy, min(ours, key=lambda r: r[1]), min(minimal, key=lambda r: r[1]), "tok")


def report(
    name: str, what: str, ours: tuple[int, float, float], minimal: tuple[int, float, float], unit: str
) -> None:
    ours_rate, minimal_rate = ours[0] / ours[1], minimal[0] / minimal[1]
    print(
        f"{name:13} ponder {ours_rate:>12,.0f} {unit}/CPU-s ({ours[0]:,} {unit} in {ours[1]:.2f} CPU-s, "
        f"{ours[2]:.2f} s wall)  minimal {minimal_rate:>12,.0f} {unit}/CPU-s ({minimal[1]:.2f} CPU-s)  "
        f"ratio {ours_rate / minimal_rate:.2f}   [{what}]",
        flush=True,
    )


# -- serve pass-through ----------------------------------------------------------------------------------
def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += (int(stats[current][11]) + int(stats[current][12])) / ticks
        todo += children.get(current, [])
    return total


async def load(url: str, requests: int, in_flight: int) -> int:
    body = {"model": "fake", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 16}
    semaphore = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:

        async def one() -> int:
            async with semaphore:
                response = await client.post(f"{url}/chat/completions", json=body)
                response.raise_for_status()
                return 1

        return sum(await asyncio.gather(*(one() for _ in range(requests))))


def serve_scenario(base_url: str, workers: int, requests: int = 2000) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ponder.cli.main", "serve", "--upstream", f"fake={base_url}"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if workers > 1:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/models", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        asyncio.run(load(url, 200, 32))  # warm-up
        before, wall = _tree_cpu(process.pid), time.monotonic()
        done = asyncio.run(load(url, requests, 32))
        served_cpu, wall = _tree_cpu(process.pid) - before, time.monotonic() - wall
        direct_cpu = time.process_time()
        direct_wall = time.monotonic()
        asyncio.run(load(base_url, requests, 32))
        direct_wall = time.monotonic() - direct_wall
        print(
            f"serve ×{workers:<6} {done / served_cpu:>8,.0f} requests per serve CPU-second "
            f"({done:,} requests, {served_cpu:.2f} CPU-s of serve, {done / wall:,.0f} req/s wall); "
            f"fake server direct: {requests / direct_wall:,.0f} req/s wall "
            f"(load client {time.process_time() - direct_cpu:.2f} CPU-s)",
            flush=True,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fake-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--scenarios", default="generic,llama-server,logprobs,serve")
    parser.add_argument("--workers", default="1", help="serve worker counts to measure, e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side; each side's least CPU counts")
    args = parser.parse_args()
    if args.fake_server:
        run_fake_server()
        return
    server, base_url = start_fake_server()
    try:
        with tempfile.TemporaryDirectory() as temporary:
            for name in args.scenarios.split(","):
                if name == "serve":
                    for workers in args.workers.split(","):
                        serve_scenario(base_url, int(workers))
                else:
                    eval_scenario(name, base_url, args.problems, Path(temporary) / name, args.rounds)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
