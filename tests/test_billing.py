"""Honest billing against a fake OpenAI server on 127.0.0.1 that counts what it generates.

Stopped work is billed what the server produced (streamed requests, the ``cancelled`` ledger line);
the sample bank bills budget k as a live k-sample run on the same server profile; each choice's
tokens are counted exactly, or the usage says they are estimated.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import serve_locally, stop

from ponder.backends import GenRequest, OpenAIBackend
from ponder.backends.openai import SERVER_PROFILES, server_capabilities
from ponder.context import Context
from ponder.core import Message
from ponder.core.types import Candidate, Problem, Result, Usage
from ponder.eval.summary import bank_outcome, stored_candidates
from ponder.strategies import STRATEGIES

PROBLEM = Problem("What is 3 + 4?", id="p1")
ANSWER = "The answer is \\boxed{7}."
CACHED = 2  # prompt tokens every reply says were served from the server's cache

#: what the server generates for a request's seed: its words, and whether it then stalls until the client
#: goes away (a long generation that the client stops)
Plan = Callable[[int], tuple[list[str], bool]]


@dataclass
class CountingServer:
    """A fake OpenAI server that counts every call, prompt token and completion token it produces.

    It honours ``n`` (or answers one choice, as llama-server and Ollama do), reports usage for all choices
    (or for the first only), streams when asked, and tokenizes on ``/tokenize``. A streamed request that
    is not planned to stall waits until ``stalls`` stalled ones have sent their words (and a moment for the
    client to read them), so that the client stops them only after reading all they produced.
    """

    plan: Plan
    honours_n: bool = True
    usage_counts_all_choices: bool = True
    logprobs: bool = True
    stalls: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stalled: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def generated(self, words: list[str]) -> None:
        with self.lock:
            self.completion_tokens += len(words)

    def accepted(self, body: dict[str, Any]) -> int:
        """Count a chat request taken on; its prompt tokens (words of the messages)."""
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        with self.lock:
            self.bodies.append(body)
            self.calls += 1
            self.prompt_tokens += prompt
        return prompt

    def wait_for_stalls(self) -> None:
        with self.lock:
            self.lock.wait_for(lambda: self.stalled >= self.stalls, timeout=10)
        time.sleep(0.3)  # the client reads what the stalled requests sent


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": CACHED},
    }


def logprobs_of(words: list[str], body: dict[str, Any]) -> dict[str, Any]:
    tops = [{"token": "x", "logprob": -3.0}] * int(body.get("top_logprobs") or 0)
    return {"content": [{"token": w, "logprob": -0.1, "top_logprobs": tops} for w in words]}


def pieces(words: list[str]) -> list[str]:
    """The words as a streamed text, one token a piece."""
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


@pytest.fixture
def counting_server() -> Iterator[Callable[..., CountingServer]]:
    servers: list[ThreadingHTTPServer] = []

    def start(plan: Plan, **settings: Any) -> CountingServer:
        fake = CountingServer(plan, **settings)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    self.send({"tokens": list(range(len(body["content"].split())))})
                elif body.get("stream"):
                    self.stream(body)
                else:
                    self.complete(body)

            def send(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def complete(self, body: dict[str, Any]) -> None:
                prompt = fake.accepted(body)
                n = body["n"] if fake.honours_n else 1
                plans = [fake.plan(body.get("seed", 0) + i)[0] for i in range(n)]
                choices = []
                for i, words in enumerate(plans):
                    fake.generated(words)
                    choice = {"index": i, "message": {"content": " ".join(words)}, "finish_reason": "stop"}
                    if body.get("logprobs") and fake.logprobs:
                        choice["logprobs"] = logprobs_of(words, body)
                    choices.append(choice)
                counted = sum(map(len, plans)) if fake.usage_counts_all_choices else len(plans[0])
                self.send({"choices": choices, "usage": usage(prompt, counted)})

            def stream(self, body: dict[str, Any]) -> None:
                prompt = fake.accepted(body)
                words, stall = fake.plan(body.get("seed", 0))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if not stall:
                    fake.wait_for_stalls()
                for word, piece in zip(words, pieces(words), strict=True):
                    chunk = {"index": 0, "delta": {"content": piece}, "logprobs": logprobs_of([word], body)}
                    self.event({"choices": [chunk]})
                    fake.generated([word])
                if stall:
                    with fake.lock:
                        fake.stalled += 1
                        fake.lock.notify_all()
                    self.connection.settimeout(10)
                    self.connection.recv(1)  # until the client closes the connection
                    return
                self.event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self.event({"choices": [], "usage": usage(prompt, len(words))})
                self.wfile.write(b"data: [DONE]\n\n")

            def event(self, payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        server = serve_locally(Handler)
        servers.append(server)
        fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return fake

    yield start
    for server in servers:
        stop(server)


def backend_for(fake: CountingServer, server: str = "generic") -> OpenAIBackend:
    return OpenAIBackend(
        model="m", parameters=1e9, base_url=fake.url, server=server, capabilities=server_capabilities(server)
    )


async def run(spec: str, backend: OpenAIBackend) -> Result:
    ctx = Context(backend=backend, seed=0)
    try:
        return await STRATEGIES.build(spec).run(PROBLEM, ctx)
    finally:
        await backend.close()


def assert_billed_what_was_generated(result: Result, fake: CountingServer) -> None:
    billed = result.usage
    assert (billed.calls, billed.prompt_tokens, billed.completion_tokens) == (
        fake.calls,
        fake.prompt_tokens,
        fake.completion_tokens,
    )
    assert not billed.estimated


# -- stopped work -------------------------------------------------------------------------------------
def fast_and_stalled(fast_seeds: set[int], answer: Callable[[int], str] = lambda seed: ANSWER) -> Plan:
    """Seeds in ``fast_seeds`` answer at once; the others write five words and stall until stopped."""

    def plan(seed: int) -> tuple[list[str], bool]:
        if seed in fast_seeds:
            return answer(seed).split(), False
        return ["Let", "me", "think", "about", "this"], True

    return plan


async def test_first_finish_bills_the_stopped_requests_what_they_generated(counting_server) -> None:
    fake = counting_server(fast_and_stalled({0}), stalls=3)
    result = await run("first-finish:n=4", backend_for(fake))
    assert result.answer == "7" and result.trace is not None and result.trace["cancelled_requests"] == 3
    assert_billed_what_was_generated(result, fake)
    cancelled = result.usage_by_line["cancelled"]
    assert (cancelled.calls, cancelled.completion_tokens) == (3, 15)  # five words each, streamed and read
    assert all(body["stream"] and body["stream_options"] == {"include_usage": True} for body in fake.bodies)


async def test_adaptive_consistency_bills_the_stopped_requests(counting_server) -> None:
    fake = counting_server(fast_and_stalled({0}), stalls=3)
    result = await run("adaptive-consistency:max_n=8,batch=4,threshold=0.7", backend_for(fake))
    assert result.answer == "7" and result.usage_by_line["cancelled"].calls == 3
    assert_billed_what_was_generated(result, fake)


async def test_deepconf_online_bills_the_stopped_traces(counting_server) -> None:
    def answer(seed: int) -> str:  # the warm-up disagrees (seeds 0, 1); trace 2 settles the vote
        return "The answer is \\boxed{8}." if seed == 1 else ANSWER

    fake = counting_server(fast_and_stalled({0, 1, 2}, answer), stalls=3)
    result = await run("deepconf:n=6,warmup=2,consensus=0.6,top_k=2", backend_for(fake))
    assert result.answer == "7" and result.usage_by_line["cancelled"].calls == 3
    assert_billed_what_was_generated(result, fake)


async def test_solve_detect_verify_bills_what_was_generated(counting_server) -> None:
    fake = counting_server(lambda seed: (ANSWER.split(), False))  # the probe never says Yes: it resumes
    result = await run("solve-detect-verify:checks=3,max_tokens=16", backend_for(fake, "vllm"))
    assert result.answer == "7" and any(body["n"] == 3 for body in fake.bodies)
    assert_billed_what_was_generated(result, fake)


# -- the sample bank -------------------------------------------------------------------------------------
def uneven(seed: int) -> tuple[list[str], bool]:
    """Every seed its own length, all with the same answer: a bank's subsets differ in tokens."""
    return ["step"] * (seed % 5) + ANSWER.split(), False


def even(seed: int) -> tuple[list[str], bool]:
    return ANSWER.split(), False


def profile_server(
    counting_server: Callable[..., CountingServer], profile: str, plan: Plan
) -> CountingServer:
    capabilities = SERVER_PROFILES[profile]
    return counting_server(
        plan,
        honours_n=capabilities.honours_n,
        usage_counts_all_choices=capabilities.usage_counts_all_choices,
        logprobs=capabilities.logprobs,
    )


def record_of(result: Result, spec: str) -> dict[str, Any]:
    candidates = [{**c.to_dict(), "correct": c.answer == "7"} for c in result.candidates]
    return {"strategy": spec, "seed": 0, "problem": {"id": PROBLEM.id}, "candidates": candidates}


@pytest.mark.parametrize("profile", sorted(SERVER_PROFILES))
async def test_bank_bills_budget_k_as_a_live_k_sample_run(counting_server, profile: str) -> None:
    bank = await run(
        "self-consistency:n=8", backend_for(profile_server(counting_server, profile, even), profile)
    )
    record = record_of(bank, "self-consistency:n=8")
    strategy = STRATEGIES.build("self-consistency:n=8")
    for k in (1, 3, 8):
        live = await run(
            f"self-consistency:n={k}", backend_for(profile_server(counting_server, profile, even), profile)
        )
        billed = bank_outcome(strategy, record, stored_candidates(record["candidates"]), k).usage
        expected = live.usage
        assert billed["calls"] == expected.calls, (profile, k)
        assert billed["prompt_tokens"] == expected.prompt_tokens, (profile, k)
        assert billed["cached_prompt_tokens"] == expected.cached_prompt_tokens, (profile, k)
        assert billed["completion_tokens"] == expected.completion_tokens, (profile, k)
        assert billed["flops"] == pytest.approx(expected.flops), (profile, k)


async def test_bank_drawn_in_batches_bills_a_live_run_of_the_same_batches(counting_server) -> None:
    """Under a budget a bank is drawn in requests of ``max_concurrency``: k samples take ⌈k / batch⌉."""
    fake = counting_server(uneven)
    backend = backend_for(fake, "generic")
    ctx = Context(backend=backend, seed=0)
    candidates = await ctx.sample(
        ctx.request(PROBLEM, STRATEGIES.build("self-consistency").options, n=12), batch=8
    )
    await backend.close()
    record = record_of(Result("7", "s", candidates, ctx.ledger.total), "self-consistency:n=12")
    strategy = STRATEGIES.build("self-consistency:n=12")
    stored = stored_candidates(record["candidates"])
    assert [bank_outcome(strategy, record, stored, k).usage["calls"] for k in (1, 8, 9, 12)] == [1, 1, 2, 2]


# -- per-choice tokens ---------------------------------------------------------------------------------
REQUEST = GenRequest(messages=(Message("user", "hi there"),), n=3, seed=1, max_tokens=32)


async def test_each_choice_is_counted_from_its_logprobs(counting_server) -> None:
    fake = counting_server(uneven)
    backend = backend_for(fake, "vllm")
    [generations] = await backend.generate([REQUEST])
    await backend.close()
    assert [g.completion_tokens for g in generations] == [len(uneven(seed)[0]) for seed in (1, 2, 3)]
    assert not any(g.usage.estimated for g in generations) and fake.bodies[0]["logprobs"] is True


async def test_without_logprobs_the_servers_tokenizer_counts_each_choice(counting_server) -> None:
    fake = counting_server(uneven, logprobs=False)
    backend = backend_for(fake, "vllm")
    [generations] = await backend.generate([REQUEST])
    await backend.close()
    assert [g.completion_tokens for g in generations] == [len(uneven(seed)[0]) for seed in (1, 2, 3)]
    assert not any(g.usage.estimated for g in generations)


async def test_an_estimated_count_says_so_up_to_the_json_result(counting_server) -> None:
    fake = counting_server(uneven, logprobs=False)  # and the generic profile has no tokenizer endpoint
    result = await run("self-consistency:n=3", backend_for(fake, "generic"))
    assert result.usage.completion_tokens == fake.completion_tokens  # the total stays exact
    assert result.usage.estimated and result.to_dict()["usage"]["estimated"] is True
    assert all(c.usage.estimated for c in result.candidates)
    assert Candidate.from_dict(result.candidates[0].to_dict()).usage.estimated


def test_usage_sums_carry_the_estimate() -> None:
    assert (Usage(completion_tokens=1) + Usage(completion_tokens=2, estimated=True)).estimated
    assert not Usage.from_dict({"calls": 1}).estimated
