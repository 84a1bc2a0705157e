"""How busy ``ponder eval`` keeps a server's slots, against a client that waits for each problem in turn.

A fake OpenAI-compatible server (``tests/slot_server.py``, in a child process so that its timing does
not share this process's CPU) has 8 slots, queues requests past them, and makes each sample last a
random number of tokens. Two clients run the same work, self-consistency@8 on ``--problems`` problems:

- ``per-problem``: a plain client (httpx, no ponder code) that sends a problem's 8 samples at once and
  waits for the slowest before the next problem (what ``ponder eval`` achieved before issue 19);
- ``ponder eval``: the real runner (``run_eval``) with the llama-server profile, its in-flight limit
  fixed at the slots (``--max-in-flight 8``), at one more (what the embedded model uses: a request
  waits in the server for the next free slot), then adaptive (the default for a server).

The server measures time-weighted busy slots over slots × the run's span; the script prints that ratio
for each client, and the wall time, beside the best any in-order client could do with these lengths (a
simulation: the last problem's stragglers leave slots idle at the end whatever the client). It never
passes or fails on time.

    python benchmarks/slot_occupancy.py [--problems 20] [--slots 8] [--seconds-per-token 0.004]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the fake server the tests use
from slot_server import SlotServer  # noqa: E402

from ponder.backends.openai import OpenAIBackend, server_capabilities  # noqa: E402
from ponder.eval.runner import EvalConfig, run_eval  # noqa: E402

SAMPLES = 8


def serve(settings: dict[str, object], pipe: multiprocessing.connection.Connection) -> None:
    """The child process: run the server, answer ``url``/``measure``/``reset``/``stop`` over ``pipe``."""
    with SlotServer(**settings) as server:  # type: ignore[arg-type]
        while True:
            command = pipe.recv()
            if command == "url":
                pipe.send(server.url)
            elif command == "measure":
                pipe.send(
                    {"occupancy": server.occupancy(), "served": server.served, "peak": server.peak_held}
                )
            elif command == "reset":
                server.reset()
                pipe.send(True)
            else:
                pipe.send(True)
                return


async def per_problem(url: str, problems: int) -> None:
    """Each problem's samples at once; the next problem only when the slowest has come back."""
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=None)) as client:
        for problem in range(problems):
            body = {"model": "m", "messages": [{"role": "user", "content": f"problem {problem}"}]}
            replies = await asyncio.gather(
                *(client.post(f"{url}/chat/completions", json=body) for _ in range(SAMPLES))
            )
            for reply in replies:
                reply.raise_for_status()


async def ponder_eval(url: str, problems: int, max_in_flight: str, directory: Path) -> None:
    dataset = directory / "data.jsonl"
    dataset.write_text(
        "".join(json.dumps({"question": f"problem {i}", "answer": 4}) + "\n" for i in range(problems))
    )
    backend = OpenAIBackend(
        model="m",
        base_url=url,
        server="llama-server",
        capabilities=server_capabilities("llama-server"),
        max_in_flight=max_in_flight,
    )
    config = EvalConfig(
        dataset=f"jsonl:{dataset}", strategies=[f"self-consistency:n={SAMPLES}"], budgets=[SAMPLES], model="m"
    )
    try:
        await run_eval(config, backend, directory / "run", show_progress=False)
    finally:
        await backend.close()


def in_order_bound(slots: int, lengths: tuple[int, int], samples: int, seed: int = 0) -> float:
    """Busy slots of the best client that sends samples in order, with no time lost between them: each
    sample (the server's lengths, drawn in the same order) starts on the slot that frees first."""
    draw = random.Random(seed)
    durations = [draw.randint(*lengths) for _ in range(samples)]
    free = [0.0] * slots
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return sum(durations) / (slots * max(free))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--seconds-per-token", type=float, default=0.004)
    parser.add_argument("--lengths", default="20,200", help="shortest and longest sample, in tokens")
    args = parser.parse_args()
    shortest, longest = (int(part) for part in args.lengths.split(","))
    settings = {
        "slots": args.slots,
        "seconds_per_token": args.seconds_per_token,
        "lengths": (shortest, longest),
        "overflow": "queue",
    }
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(target=serve, args=(settings, theirs), daemon=True)
    child.start()
    ours.send("url")
    url = ours.recv()
    runs = {
        "per-problem client": lambda directory: per_problem(url, args.problems),
        f"ponder eval, --max-in-flight {args.slots}": lambda directory: ponder_eval(
            url, args.problems, str(args.slots), directory
        ),
        f"ponder eval, --max-in-flight {args.slots + 1}": lambda directory: ponder_eval(
            url, args.problems, str(args.slots + 1), directory
        ),
        "ponder eval, adaptive (default)": lambda directory: ponder_eval(
            url, args.problems, "auto", directory
        ),
    }
    print(
        f"{args.problems} problems × {SAMPLES} samples, {args.slots} slots, {shortest}-{longest} tokens × "
        f"{args.seconds_per_token * 1000:g} ms"
    )
    bound = in_order_bound(args.slots, (shortest, longest), args.problems * SAMPLES)
    print(f"  {'in-order bound (simulated)':34} busy slots {bound:.3f}")
    try:
        for name, run in runs.items():
            ours.send("reset")
            ours.recv()
            with tempfile.TemporaryDirectory() as directory:
                started = time.monotonic()
                asyncio.run(run(Path(directory)))
                elapsed = time.monotonic() - started
            ours.send("measure")
            measured = ours.recv()
            print(
                f"  {name:34} busy slots {measured['occupancy']:.3f}   wall {elapsed:5.2f} s   "
                f"samples {measured['served']}   most held at once {measured['peak']}"
            )
    finally:
        ours.send("stop")
        ours.recv()
        child.join(10)


if __name__ == "__main__":
    main()
