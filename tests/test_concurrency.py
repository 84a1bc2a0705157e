"""The in-flight limit (fixed and adaptive), replicas, and how the eval runner keeps slots busy.

Every server here is ``slot_server.SlotServer`` on 127.0.0.1; every load is a fixed number of requests
under ``asyncio.wait_for``, so each test ends within seconds.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from slot_server import SlotServer

import ponder
from ponder.backends import make_backend
from ponder.backends.base import Backend, Generation, GenRequest
from ponder.backends.limits import REQUEST_PRIORITY, SAMPLES_ANSWERED, InFlightLimit, InFlightPolicy
from ponder.backends.openai import OpenAIBackend, server_capabilities
from ponder.backends.replicas import ReplicaBackend
from ponder.core.errors import BackendRejectedError, UsageError
from ponder.core.types import Message, Usage
from ponder.eval.runner import EvalConfig, run_eval
from ponder.eval.schedule import Admission, CountedBackend, run_in_order
from ponder.eval.store import RecordStore

REQUEST = GenRequest(messages=(Message("user", "2+2?"),), max_tokens=64)


def backend_at(url: str, max_in_flight: str | int | None = None, **fields: object) -> OpenAIBackend:
    return OpenAIBackend(
        model="m",
        base_url=url,
        server="llama-server",
        capabilities=server_capabilities("llama-server"),
        max_in_flight=max_in_flight,
        **fields,  # type: ignore[arg-type]
    )


async def drive(backend: OpenAIBackend, workers: int, requests: int) -> list[int]:
    """``requests`` single-sample requests from ``workers`` clients that each send the next as soon as the
    last returns (more demand than any limit reached here); the limit seen after each reply."""
    remaining, limits = requests, []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await backend.generate([REQUEST])
            limits.append(backend.in_flight_limit())

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), timeout=30)
    return limits


# -- the policy ------------------------------------------------------------------------------------------
def test_policy_parses_fixed_adaptive_and_bounded_adaptive() -> None:
    assert InFlightPolicy.parse(None, 8) == InFlightPolicy(8, 256, adaptive=True)
    assert InFlightPolicy.parse("auto", 64) == InFlightPolicy(64, 256, adaptive=True)
    assert InFlightPolicy.parse("auto:32", 64) == InFlightPolicy(32, 32, adaptive=True)
    assert InFlightPolicy.parse("16", 8) == InFlightPolicy(16, 16, adaptive=False)
    assert InFlightPolicy.parse(3, 8) == InFlightPolicy.fixed(3)
    for bad in ("0", "lots", "auto:", "auto:-1", 0, "-2"):
        with pytest.raises(UsageError, match="max-in-flight"):
            InFlightPolicy.parse(bad, 8)


# -- the limit itself --------------------------------------------------------------------------------------
async def test_waiters_are_served_by_priority_then_arrival() -> None:
    limit = InFlightLimit(InFlightPolicy.fixed(1))
    order: list[str] = []
    gate = asyncio.Event()

    async def request(name: str, priority: int) -> None:
        REQUEST_PRIORITY.set(priority)
        async with limit.slot():
            order.append(name)
            await gate.wait()

    first = asyncio.create_task(request("holder", 5))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(request(n, p)) for n, p in (("late-1", 3), ("early", 1), ("late-2", 3))]
    await asyncio.sleep(0.01)
    assert limit.waiting == 3
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), timeout=5)
    assert order == ["holder", "early", "late-1", "late-2"]
    assert limit.in_flight == 0 and limit.waiting == 0


async def test_weights_count_samples_and_an_oversized_request_takes_the_whole_limit() -> None:
    limit = InFlightLimit(InFlightPolicy.fixed(4))
    peak = 0

    async def request(weight: int) -> None:
        nonlocal peak
        async with limit.slot(weight):
            peak = max(peak, limit.in_flight)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.gather(*(request(w) for w in (3, 2, 16, 1, 1))), timeout=5)
    assert peak == 4 and limit.in_flight == 0


async def test_cancelled_waiters_and_holders_give_their_slots_back() -> None:
    limit = InFlightLimit(InFlightPolicy.fixed(2))
    hold = asyncio.Event()

    async def request() -> None:
        async with limit.slot():
            await hold.wait()

    tasks = [asyncio.create_task(request()) for _ in range(6)]
    await asyncio.sleep(0.01)
    assert limit.in_flight == 2 and limit.waiting == 4
    for task in tasks[:1] + tasks[3:]:
        task.cancel()
    await asyncio.sleep(0.01)
    assert limit.in_flight == 2 and limit.waiting == 0  # a cancelled holder's slot went to a waiter
    hold.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=5)
    assert limit.in_flight == 0


async def test_a_fixed_limit_never_moves() -> None:
    with SlotServer(slots=2, overflow="reject", lengths=(5, 10)) as server:
        backend = backend_at(server.url, 4, backoff=0.01, max_retries=20)
        limits = await drive(backend, workers=8, requests=60)
        await backend.close()
    assert set(limits) == {4} and server.rejected > 0  # it was told 4: 429s do not change that


# -- adaptation against a server with slots ---------------------------------------------------------------
async def test_adaptive_limit_grows_to_the_slot_count_of_a_queueing_server() -> None:
    """From 3, the limit climbs while latency holds and settles near the 8 slots: past them requests
    queue, latency per token rises, and it backs off."""
    slots = 8
    with SlotServer(slots=slots, overflow="queue", seconds_per_token=0.0025, lengths=(20, 60)) as server:
        backend = backend_at(server.url)
        backend._limit = InFlightLimit(InFlightPolicy(3, 64, adaptive=True))
        limits = await drive(backend, workers=32, requests=320)
        await backend.close()
        occupancy = server.occupancy()
    settled = limits[len(limits) // 2 :]
    assert limits[0] <= 4 and max(limits) <= 3 * slots  # slow start may overshoot once, then backs off
    assert 0.9 * slots <= statistics.mean(settled) <= 1.7 * slots, statistics.mean(settled)
    assert min(settled) >= 0.6 * slots
    assert occupancy >= 0.7


async def test_adaptive_limit_backs_off_on_429() -> None:
    """A server that refuses past its 8 slots: the limit grows until the 429s, then falls back below."""
    slots = 8
    with SlotServer(slots=slots, overflow="reject", seconds_per_token=0.002, lengths=(20, 60)) as server:
        backend = backend_at(server.url, backoff=0.01, max_retries=30)
        limits = await drive(backend, workers=32, requests=320)
        await backend.close()
    assert server.rejected > 0 and server.served == 320  # every request got through in the end
    settled = limits[len(limits) // 2 :]
    assert max(limits) <= 2 * slots and max(settled) <= slots + 2  # it never ran away from the refusals
    assert slots * 0.5 <= statistics.mean(settled) <= slots + 1
    assert server.rejected < 80  # backing off keeps refusals a small share of the traffic


# -- replicas -------------------------------------------------------------------------------------------
async def test_replicas_share_the_work_by_outstanding_samples() -> None:
    with (
        SlotServer(slots=4, lengths=(5, 15)) as first,
        SlotServer(slots=4, lengths=(5, 15), seed=1) as second,
    ):
        backend = make_backend("m", [first.url, second.url], server="llama-server", max_in_flight=4)
        assert isinstance(backend, ReplicaBackend) and backend.in_flight_limit() == 8
        results = await asyncio.wait_for(backend.generate([REQUEST.with_(n=8)] * 6), timeout=30)
        await backend.close()
    assert [len(samples) for samples in results] == [8] * 6  # each request's samples spread, then joined
    assert first.served + second.served == 48 and min(first.served, second.served) >= 16
    assert first.peak_held <= 4 and second.peak_held <= 4  # each endpoint kept its own limit
    calls = sum(g.usage.calls for samples in results for g in samples)
    tokens = sum(g.usage.completion_tokens for samples in results for g in samples)
    assert calls == 48 and tokens > 0  # one call billed per request the servers answered


async def test_a_failing_replica_is_skipped_and_its_requests_retried_on_the_other() -> None:
    with SlotServer(slots=4, fail_status=503) as broken, SlotServer(slots=4, lengths=(5, 15)) as healthy:
        backend = make_backend("m", [broken.url, healthy.url], server="llama-server", max_in_flight=4)
        for replica in backend.replicas:  # type: ignore[attr-defined]
            replica.max_retries, replica.backoff = 1, 0.01
        first = await asyncio.wait_for(backend.generate([REQUEST.with_(n=4)]), timeout=30)
        refused_at_first = broken.rejected
        later = await asyncio.wait_for(backend.generate([REQUEST.with_(n=8)] * 4), timeout=30)
        await backend.close()
    assert len(first[0]) == 4 and all(len(samples) == 8 for samples in later)  # nothing was lost
    assert healthy.served == 36 and refused_at_first > 0
    assert broken.rejected == refused_at_first  # once down, it was skipped for the cooldown


async def test_a_refusal_is_the_request_s_fault_and_is_not_sent_to_another_replica() -> None:
    with SlotServer(slots=4, fail_status=400) as refusing, SlotServer(slots=4) as healthy:
        backend = ReplicaBackend.of([backend_at(refusing.url, 4), backend_at(healthy.url, 4)])
        with pytest.raises(BackendRejectedError):
            await asyncio.wait_for(backend.generate([REQUEST]), timeout=30)
        await backend.close()
    assert refusing.rejected == 1 and healthy.served == 0


def test_replicas_must_serve_one_model() -> None:
    with pytest.raises(UsageError, match="one model"):
        ReplicaBackend.of([backend_at("http://127.0.0.1:9/v1"), OpenAIBackend(model="other")])


# -- eval scheduling ----------------------------------------------------------------------------------------
@dataclass
class Samples(Backend):
    """Each sample holds one of ``slots`` for ``durations[prompt][i]`` seconds and says when it is back;
    the log holds (event, prompt, time) for starts and ends."""

    durations: dict[str, list[float]] = field(default_factory=dict)
    slots: int = 4
    #: the in-flight limit it reports (default: its slots); more lets a scheduler queue work in it
    reported: int | None = None
    log: list[tuple[str, str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.limit = InFlightLimit(InFlightPolicy.fixed(self.slots))

    def in_flight_limit(self) -> int:
        return self.reported or self.slots

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        async def sample(prompt: str, index: int) -> Generation:
            async with self.limit.slot():
                self.log.append(("start", prompt, time.monotonic()))
                await asyncio.sleep(self.durations[prompt][index])
                self.log.append(("end", prompt, time.monotonic()))
            if (answered := SAMPLES_ANSWERED.get()) is not None:
                answered(1)
            return Generation("x", "stop", 1, Usage(calls=1, completion_tokens=1))

        async def one(request: GenRequest) -> list[Generation]:
            prompt = request.messages[-1].content
            return list(await asyncio.gather(*(sample(prompt, i) for i in range(request.n))))

        return list(await asyncio.gather(*(one(request) for request in requests)))


async def test_the_next_unit_fills_the_slots_a_straggler_leaves() -> None:
    """Unit A's three short samples come back at once; its fourth takes long. B and C start in their
    slots then, in order, long before A ends; D waits until there is room."""
    short, long = 0.01, 0.3
    durations = {"A": [short, short, short, long], "B": [short] * 2, "C": [short] * 2, "D": [short] * 2}
    backend = Samples("m", durations=durations, slots=4)
    admission = Admission(backend)
    counted = CountedBackend.around(backend, admission=admission)

    async def unit(prompt: str) -> None:
        await counted.generate([REQUEST.with_(messages=(Message("user", prompt),), n=len(durations[prompt]))])

    await asyncio.wait_for(run_in_order(list(durations), unit, admission), timeout=10)
    first_start = {p: min(t for e, q, t in backend.log if e == "start" and q == p) for p in durations}
    a_end = max(t for e, q, t in backend.log if e == "end" and q == "A")
    assert first_start["B"] < a_end - long / 2 and first_start["C"] < a_end - long / 2
    assert first_start["A"] <= first_start["B"] <= first_start["C"] <= first_start["D"]
    assert admission.outstanding == 0


async def test_an_earlier_unit_s_next_round_goes_before_later_units() -> None:
    """Units keep their plan position as priority: A's second request, asked while B and C already wait
    for the one slot, is served before them (first come, first served would serve it last)."""
    durations = {"A": [0.1], "A2": [0.01], "B": [0.01], "C": [0.01]}
    backend = Samples("m", durations=durations, slots=1, reported=4)  # B and C queue while A runs
    admission = Admission(backend)
    counted = CountedBackend.around(backend, admission=admission)

    async def ask(prompt: str, after: float = 0.0) -> None:
        await asyncio.sleep(after)
        await counted.generate([REQUEST.with_(messages=(Message("user", prompt),))])

    async def unit(prompt: str) -> None:
        await asyncio.gather(ask(prompt), *([ask("A2", after=0.03)] if prompt == "A" else []))

    await asyncio.wait_for(run_in_order(["A", "B", "C"], unit, admission), timeout=10)
    assert [q for e, q, _ in backend.log if e == "start"] == ["A", "A2", "B", "C"]


async def test_a_failing_unit_stops_the_run_and_admits_nothing_more() -> None:
    backend = Samples("m", durations={"ok": [0.01]}, slots=1)
    admission = Admission(backend)
    counted = CountedBackend.around(backend, admission=admission)
    started: list[str] = []

    async def unit(prompt: str) -> None:
        started.append(prompt)
        if prompt == "bad":
            raise BackendRejectedError("refused", 400)
        await counted.generate([REQUEST.with_(messages=(Message("user", "ok"),))])

    with pytest.raises(BackendRejectedError):
        await asyncio.wait_for(run_in_order(["ok", "bad", "ok", "ok"], unit, admission), timeout=10)
    assert started == ["ok", "bad"]


async def test_eval_keeps_the_slots_of_a_server_busy(tmp_path: Path) -> None:
    """self-consistency@8 on 12 problems against 8 slots with random-length samples: the next problems'
    samples fill what stragglers leave. A client that waits for each problem's slowest sample keeps
    about 0.6 of the slots busy here (mean over expected maximum of 8 lengths); the bound is loose
    because this process also runs the server (benchmarks/slot_occupancy.py measures it apart)."""
    dataset = tmp_path / "data.jsonl"
    lines = [json.dumps({"question": f"problem {i}", "answer": 4}) for i in range(12)]
    dataset.write_text("\n".join(lines) + "\n")
    config = EvalConfig(
        dataset=f"jsonl:{dataset}", strategies=["self-consistency:n=8"], budgets=[8], model="m"
    )
    with SlotServer(slots=8, seconds_per_token=0.003, lengths=(20, 120)) as server:
        backend = backend_at(server.url, 8)
        await asyncio.wait_for(run_eval(config, backend, tmp_path / "run", show_progress=False), timeout=60)
        await backend.close()
        occupancy = server.occupancy()
    records = RecordStore(tmp_path / "run").load()
    assert len(records) == 12 and all(len(r["candidates"]) == 8 and r["correct"] for r in records)
    assert server.peak_held <= 8 and server.served == 96
    assert occupancy >= 0.8, occupancy


async def test_asolve_takes_replicas_and_an_in_flight_limit() -> None:
    with SlotServer(slots=2, lengths=(5, 10)) as first, SlotServer(slots=2, lengths=(5, 10)) as second:
        result = await asyncio.wait_for(
            ponder.asolve(
                "2+2?",
                "self-consistency:n=8",
                base_url=[first.url, second.url],
                model="m",
                server="llama-server",
                max_in_flight=2,
            ),
            timeout=30,
        )
    assert result.answer == "4" and result.usage.calls == 8
    assert first.served + second.served == 8 and min(first.served, second.served) >= 2
    assert first.peak_held <= 2 and second.peak_held <= 2
    with pytest.raises(UsageError, match="max-in-flight"):
        await ponder.asolve("2+2?", base_url=first.url, model="m", max_in_flight="lots")


def test_serve_upstreams_take_an_in_flight_limit() -> None:
    from ponder.server.run import parse_upstreams

    [fixed] = parse_upstreams(["m=http://127.0.0.1:9/v1"], max_in_flight="3")
    [adaptive] = parse_upstreams(["m=http://127.0.0.1:9/v1"], server="vllm")
    assert fixed.backend.in_flight_limit() == 3 and not fixed.backend.in_flight_policy().adaptive
    assert adaptive.backend.in_flight_policy() == InFlightPolicy(64, 256, adaptive=True)
    with pytest.raises(UsageError, match="max-in-flight"):
        parse_upstreams(["m=http://127.0.0.1:9/v1"], max_in_flight="auto:0")


async def test_adaptive_limit_reaches_a_large_server_in_a_few_round_trips() -> None:
    """From 3 against 24 slots, doubling per window (slow start) passes 20 within 150 replies, where one
    more per window would still be below 17 (windows of at least 8 replies: 8 × 5 + 8 + 9 + ... + 16)."""
    with SlotServer(slots=24, overflow="queue", seconds_per_token=0.01, lengths=(25, 35)) as server:
        backend = backend_at(server.url)
        backend._limit = InFlightLimit(InFlightPolicy(3, 64, adaptive=True))
        limits = await drive(backend, workers=48, requests=240)
        await backend.close()
    assert max(limits[:150]) >= 20


def test_eval_command_takes_replicas_and_max_in_flight(tmp_path: Path) -> None:
    from ponder.cli.main import main

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"question": f"problem {i}", "answer": 4}) + "\n" for i in range(6)))

    def args(first: str, second: str, limit: str) -> list[str]:
        return [
            "eval",
            *("--dataset", f"jsonl:{data}", "--strategy", "self-consistency:n=4", "--budgets", "4"),
            *("--base-url", first, "--base-url", second, "--model", "m", "--server", "llama-server"),
            *("--max-in-flight", limit, "--out", str(tmp_path / f"run-{limit}")),
        ]

    with SlotServer(slots=2, lengths=(5, 10)) as first, SlotServer(slots=2, lengths=(5, 10)) as second:
        assert main(args(first.url, second.url, "2")) == 0
        assert main(args(first.url, second.url, "lots")) == 2  # a clear error, exit 2, nothing sent
    assert len(RecordStore(tmp_path / "run-2").load()) == 6
    assert first.served + second.served == 24 and min(first.served, second.served) >= 6
    assert first.peak_held <= 2 and second.peak_held <= 2


def test_the_embedded_model_keeps_one_request_waiting_past_its_slots_unless_told() -> None:
    from ponder.backends.embedded.backend import embedded_backend
    from ponder.backends.embedded.models import get_model

    backend = embedded_backend("smollm2-135m")  # validated, not started
    slots = get_model("smollm2-135m").parallel
    assert backend.in_flight_limit() == slots + 1 and not backend.in_flight_policy().adaptive
    try:
        assert make_backend("smollm2-135m", max_in_flight="3") is backend
        assert backend.in_flight_limit() == 3
    finally:
        backend.limit_in_flight(slots + 1)
