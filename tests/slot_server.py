"""A fake OpenAI-compatible server with a fixed number of slots, on 127.0.0.1, for concurrency tests.

Each chat completion takes one slot for ``seconds_per_token`` × its length (drawn from ``lengths`` by a
seeded generator, so runs repeat). Past ``slots`` requests in progress it either queues them first come
first served (``overflow="queue"``, as llama-server does) or answers 429 at once (``"reject"``). It
measures what the concurrency tests and ``benchmarks/slot_occupancy.py`` need: time-weighted busy slots,
the most requests it held at once, and how many it refused. ``fail_status`` makes it answer that
status to every request (503: a broken replica; 400: a refusal).

It is asyncio on its own thread (one loop, no thread per request), so hundreds of requests in flight
cost little CPU on a small machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SlotServer:
    slots: int = 8
    overflow: str = "queue"
    seconds_per_token: float = 0.001
    lengths: tuple[int, int] = (20, 60)
    seed: int = 0
    answer: str = "The answer is \\boxed{4}."
    fail_status: int | None = None
    url: str = ""
    #: requests refused (429 or ``fail_status``), requests that got a slot, most held at once (queued too)
    rejected: int = 0
    served: int = 0
    peak_held: int = 0
    _busy: int = 0
    _held: int = 0
    _busy_since: float = 0.0
    _busy_seconds: float = 0.0
    _first: float | None = None
    _last: float = 0.0
    _random: random.Random = field(default_factory=random.Random)

    def __enter__(self) -> SlotServer:
        self._random.seed(self.seed)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve(ready))
        self._loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        self._free = asyncio.Semaphore(self.slots)
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        ready.set()
        async with server:
            await self._stop.wait()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:  # connections kept alive by clients end here, not when the loop closes
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    # -- measurements --------------------------------------------------------------------------------
    def occupancy(self) -> float:
        """Busy slot-seconds over slots × (first request to last reply)."""
        if self._first is None or self._last <= self._first:
            return 0.0
        return self._busy_seconds / (self.slots * (self._last - self._first))

    def reset(self) -> None:
        """Forget what was measured and draw the same lengths again (between runs, nothing in flight)."""
        self._random.seed(self.seed)
        self._busy_seconds, self._first, self._last = 0.0, None, 0.0
        self.rejected = self.served = self.peak_held = 0

    def _busy_change(self, delta: int) -> None:
        now = time.monotonic()
        self._busy_seconds += self._busy * (now - self._busy_since)
        self._busy, self._busy_since = self._busy + delta, now

    # -- HTTP ------------------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(
                    line.split(":", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ":" in line
                )
                size = int({k.strip().lower(): v for k, v in headers.items()}.get("content-length", 0))
                body = json.loads(await reader.readexactly(size)) if size else {}
                status, payload = await self._complete(body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = time.monotonic()
        self._first = now if self._first is None else self._first
        if self.fail_status is not None:
            self.rejected += 1
            return self.fail_status, {"error": {"message": "failing on purpose"}}
        if self.overflow == "reject" and self._held >= self.slots:
            self.rejected += 1
            return 429, {"error": {"message": "all slots busy"}}
        self._held += 1
        self.peak_held = max(self.peak_held, self._held)
        try:
            async with self._free:
                tokens = self._random.randint(*self.lengths)
                self._busy_change(+1)
                try:
                    await asyncio.sleep(tokens * self.seconds_per_token)
                finally:
                    self._busy_change(-1)
                self.served += 1
        finally:
            self._held -= 1
            self._last = time.monotonic()
        choices = [
            {"index": i, "message": {"role": "assistant", "content": self.answer}, "finish_reason": "stop"}
            for i in range(int(body.get("n", 1)))
        ]
        usage = {"prompt_tokens": 10, "completion_tokens": tokens}
        return 200, {"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}
