"""``ponder serve`` against the official openai client, on 127.0.0.1, with fake and scripted upstreams.

The server runs in-process (uvicorn in a thread, its own event loop) on a free port. Upstreams are a
ScriptedBackend (strategy logic, cancellation, load) or a fake OpenAI server (pass-through, real usage,
failures). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import openai
import pytest
import uvicorn
from conftest import completion
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ponder.backends import Generation, GenRequest, OpenAIBackend, ScriptedBackend
from ponder.backends.openai import server_capabilities
from ponder.core.errors import UsageError
from ponder.server import ServerSettings, Upstream, create_app
from ponder.server.errors import InvalidRequest
from ponder.server.run import check_bind, load_keys, parse_upstream
from ponder.server.schema import split_model

ANSWERS = ["So \\boxed{42}.", "Thus \\boxed{42}.", "Maybe \\boxed{7}."]


@dataclass
class Running:
    url: str
    app: Starlette

    @property
    def metrics(self):  # the server's live counters
        return self.app.state.ponder.metrics

    def client(self, **kwargs: object) -> openai.OpenAI:
        kwargs.setdefault("api_key", "none")
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 20.0)
        return openai.OpenAI(base_url=self.url + "/v1", **kwargs)


@contextlib.contextmanager
def running(app: Starlette) -> Iterator[Running]:
    """Serve ``app`` on 127.0.0.1 on a free port in a thread, until the block ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", backlog=512)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield Running(f"http://127.0.0.1:{sock.getsockname()[1]}", app)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve(*upstreams: Upstream, **settings: object) -> contextlib.AbstractContextManager[Running]:
    return running(create_app(list(upstreams), ServerSettings(**settings)))


def scripted(script: object = tuple(ANSWERS), name: str = "scripted") -> Upstream:
    return Upstream(name, ScriptedBackend(model=name, script=script))


@dataclass
class BlockingBackend(ScriptedBackend):
    """Every call waits until cancelled (or ``hold`` seconds): counts calls started and cancelled."""

    hold: float = 30.0
    started: int = 0
    cancelled: int = 0

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        self.started += 1
        try:
            await asyncio.sleep(self.hold)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super().generate(requests)


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def upstream_for(url: str, name: str = "m") -> Upstream:
    backend = OpenAIBackend(
        model=name, base_url=url, capabilities=server_capabilities("generic"), max_retries=0, timeout=5.0
    )
    return Upstream(name, backend)


# -- grammar and startup checks ---------------------------------------------------------------------
def test_model_grammar() -> None:
    assert split_model("Qwen/Qwen2.5-7B") == (None, "Qwen/Qwen2.5-7B")
    assert split_model("ponder:self-consistency:n=8@Qwen/Qwen2.5-7B") == (
        "self-consistency:n=8",
        "Qwen/Qwen2.5-7B",
    )
    assert split_model("ponder:greedy") == ("greedy", None)
    assert split_model("ponder:best-of-n:scorer=[judge:model=a@b]@org/m@v2") == (
        "best-of-n:scorer=[judge:model=a@b]",
        "org/m@v2",
    )
    with pytest.raises(InvalidRequest):
        split_model("ponder:@m")


def test_binding_beyond_loopback_needs_keys(tmp_path) -> None:
    check_bind("127.0.0.1", frozenset())
    check_bind("::1", frozenset())
    with pytest.raises(UsageError, match="refusing"):
        check_bind("0.0.0.0", frozenset())
    keys_file = tmp_path / "keys"
    keys_file.write_text("# ops keys\nalpha\n\n beta \n")
    keys = load_keys(["gamma"], keys_file)
    assert keys == {"alpha", "beta", "gamma"}
    check_bind("0.0.0.0", keys)
    with pytest.raises(UsageError, match="NAME=URL"):
        parse_upstream("no-url")
    assert parse_upstream("Qwen/Qwen2.5-7B=http://127.0.0.1:9/v1").name == "Qwen/Qwen2.5-7B"


# -- strategies ---------------------------------------------------------------------------------------
def test_prefix_runs_the_strategy_and_usage_sums_every_upstream_call(fake_openai_server) -> None:
    sent: list[dict] = []

    def handler(body, attempt):
        payload = completion([ANSWERS[attempt % 3]], prompt_tokens=10 + attempt)
        sent.append(payload["usage"])
        return 200, payload, {}

    fake = fake_openai_server(handler)
    with serve(upstream_for(fake.url, "Qwen/Qwen2.5-7B")) as server:
        reply = server.client().chat.completions.create(
            model="ponder:self-consistency:n=5@Qwen/Qwen2.5-7B",
            messages=[{"role": "user", "content": "6 times 7?"}],
        )
    assert len(fake.bodies) == 5 and all(b["model"] == "Qwen/Qwen2.5-7B" for b in fake.bodies)
    assert "\\boxed{42}" in reply.choices[0].message.content
    assert reply.usage.prompt_tokens == sum(u["prompt_tokens"] for u in sent)
    assert reply.usage.completion_tokens == sum(u["completion_tokens"] for u in sent)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.model == "ponder:self-consistency:n=5@Qwen/Qwen2.5-7B"


def test_extra_body_selection_with_opt_in_details() -> None:
    upstream = scripted()
    with serve(upstream) as server:
        reply = server.client().chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "q"}],
            temperature=0.3,
            max_tokens=50,
            seed=5,
            extra_body={"ponder": {"strategy": "self-consistency:n=3", "include": True}},
        )
        plain = server.client().chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "q"}],
            extra_body={"ponder": {"strategy": "greedy"}},
        )
    details = reply.model_extra["ponder"]
    assert details["strategy"] == "self-consistency:max_tokens=50,n=3,seed=5,temperature=0.3"
    [result] = details["results"]
    assert result["votes"] == {"42": 2.0, "7": 1.0} and len(result["candidates"]) == 3
    request = upstream.backend.requests[0]
    assert (request.temperature, request.max_tokens, request.seed) == (0.3, 50, 5)
    assert "ponder" not in (plain.model_extra or {})


def test_header_selection_and_conflicts() -> None:
    with serve(scripted()) as server:
        client = server.client()
        reply = client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "q"}],
            extra_headers={"X-Ponder-Strategy": "greedy"},
        )
        assert reply.choices[0].message.content == ANSWERS[0]
        with pytest.raises(openai.BadRequestError, match="given differently"):
            client.chat.completions.create(
                model="ponder:greedy@scripted",
                messages=[{"role": "user", "content": "q"}],
                extra_headers={"X-Ponder-Strategy": "self-consistency"},
            )


def test_whole_conversation_reaches_the_upstream_without_an_injected_prompt() -> None:
    upstream = scripted()
    history = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": [{"type": "text", "text": "And times 10?"}]},
    ]
    with serve(upstream) as server:
        client = server.client()
        client.chat.completions.create(model="ponder:self-consistency:n=2@scripted", messages=history)
        client.chat.completions.create(model="ponder:greedy", messages=history[1:2])
    first, second = upstream.backend.requests
    assert [(m.role, m.content) for m in first.messages] == [
        ("system", "Be terse."),
        ("user", "What is 2+2?"),
        ("assistant", "4"),
        ("user", "And times 10?"),
    ]
    assert [(m.role, m.content) for m in second.messages] == [("user", "What is 2+2?")]


def test_client_n_gives_independent_runs() -> None:
    upstream = scripted()
    with serve(upstream, max_n=3) as server:
        reply = server.client().chat.completions.create(
            model="ponder:self-consistency:n=2@scripted",
            messages=[{"role": "user", "content": "q"}],
            n=3,
            seed=1,
        )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({r.seed for r in upstream.backend.requests}) == 3


def test_streaming_sends_progress_then_answer_then_usage() -> None:
    with serve(scripted()) as server:
        stream = server.client().chat.completions.create(
            model="ponder:self-consistency:n=3@scripted",
            messages=[{"role": "user", "content": "q"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    progress = [c.model_extra["ponder"] for c in chunks if (c.model_extra or {}).get("ponder")]
    assert progress and progress[-1]["event"] == "generated" and progress[-1]["count"] == 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "\\boxed{42}" in text
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert chunks[-1].choices == [] and "ponder" not in (chunks[-1].model_extra or {})


# -- pass-through ---------------------------------------------------------------------------------------
def sse_upstream() -> tuple[Starlette, list[dict]]:
    """An upstream that answers JSON or SSE, recording bodies and the Authorization it got."""
    seen: list[dict] = []

    async def chat(request: Request) -> Response:
        body = await request.json()
        seen.append({**body, "_authorization": request.headers.get("authorization")})
        if not body.get("stream"):
            return JSONResponse(completion(["raw answer"], prompt_tokens=3))
        pieces = [
            {
                "choices": [{"index": 0, "delta": {"content": word}}],
                "id": "u",
                "object": "chat.completion.chunk",
            }
            for word in ("hel", "lo")
        ]

        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
            pieces.append({"choices": [], "id": "u", "object": "chat.completion.chunk", "usage": usage})

        async def events():
            for piece in pieces:  # split mid-event, as a network may
                event = f"data: {json.dumps(piece)}\n\n".encode()
                yield event[:7]
                yield event[7:]
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]), seen


def test_passthrough_forwards_the_body_untouched_and_relays_streams() -> None:
    upstream_app, seen = sse_upstream()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with (
        running(upstream_app) as fake,
        serve(upstream_for(fake.url + "/v1"), api_keys=frozenset({"k"})) as server,
    ):
        client = server.client(api_key="k")
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], tools=tools, logprobs=True
        )
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = list(stream)
        with_usage = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        usage_chunks = [c for c in with_usage if c.usage is not None]
        metrics_text = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer k"}).text
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert reply.choices[0].message.content == "raw answer" and text == "hello"
    assert all(c.choices for c in chunks)  # the usage chunk ponder asked for is not relayed unasked
    assert [c.usage.completion_tokens for c in usage_chunks] == [2]  # relayed when the client asks
    assert seen[0]["tools"] == tools and seen[0]["logprobs"] is True and seen[1]["stream"] is True
    assert all(body["_authorization"] is None for body in seen)  # the client's key never goes upstream
    assert 'ponder_requests_total{mode="passthrough",status="200"} 3' in metrics_text
    # streamed requests are metered too: 3 (plain) + 4 + 4 prompt tokens, 2 + 2 + 2 completion tokens
    assert 'ponder_upstream_prompt_tokens_total{upstream="m"} 11' in metrics_text
    assert 'ponder_upstream_completion_tokens_total{upstream="m"} 6' in metrics_text


# -- errors, auth, limits ------------------------------------------------------------------------------
def test_invalid_requests_get_400_with_reasons() -> None:
    with serve(scripted(), max_n=2, max_samples=16, max_depth=3) as server:
        client = server.client()
        user = [{"role": "user", "content": "q"}]
        with pytest.raises(
            openai.BadRequestError, match="runs 4 rounds .rounds., over this server's limit of 3"
        ):
            client.chat.completions.create(model="ponder:self-refine:rounds=4", messages=user)
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="ponder:no-such-thing@scripted", messages=user)
        assert "self-consistency" in bad.value.message and bad.value.body["type"] == "invalid_request_error"
        with pytest.raises(openai.BadRequestError, match="limit of 2"):
            client.chat.completions.create(model="ponder:greedy", messages=user, n=3)
        with pytest.raises(openai.BadRequestError, match="limit of 16"):
            client.chat.completions.create(model="ponder:self-consistency:n=9", messages=user, n=2)
        with pytest.raises(openai.BadRequestError, match="stop cannot be honoured"):
            client.chat.completions.create(model="ponder:greedy", messages=user, stop=["\n"])
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="ponder:greedy", messages=user, temperature=9)
        assert bad.value.body["param"] == "temperature"
        with pytest.raises(openai.BadRequestError, match="messages"):
            client.chat.completions.create(model="ponder:greedy", messages=[])
        with pytest.raises(openai.NotFoundError, match="scripted"):
            client.chat.completions.create(model="ponder:greedy@other", messages=user)
        with pytest.raises(openai.BadRequestError, match="has no option"):
            client.chat.completions.create(model="ponder:greedy:wat=1", messages=user)
        raw = httpx.post(server.url + "/v1/chat/completions", content=b"{not json")
        assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}


def test_keys_are_required_when_configured() -> None:
    with serve(scripted(), api_keys=frozenset({"secret"})) as server:
        user = [{"role": "user", "content": "q"}]
        with pytest.raises(openai.AuthenticationError):
            server.client(api_key="wrong").chat.completions.create(model="ponder:greedy", messages=user)
        assert server.client(api_key="secret").chat.completions.create(model="ponder:greedy", messages=user)
        assert httpx.get(server.url + "/v1/models").status_code == 401
        assert httpx.get(server.url + "/health").json()["status"] == "ok"
        models = server.client(api_key="secret").models.list()
        assert [m.id for m in models.data] == ["scripted"]


def test_dead_upstream_gives_502_naming_it_and_the_server_keeps_serving() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = upstream_for(f"http://127.0.0.1:{dead_port}/v1", "dead")
    with serve(scripted(), dead) as server:
        client = server.client(timeout=10.0)
        user = [{"role": "user", "content": "q"}]
        started = time.monotonic()
        for model in ("ponder:greedy@dead", "dead"):  # strategy, then pass-through
            with pytest.raises(openai.InternalServerError) as failure:
                client.chat.completions.create(model=model, messages=user)
            assert failure.value.status_code == 502 and "'dead'" in failure.value.message
        assert time.monotonic() - started < 5
        assert client.chat.completions.create(model="ponder:greedy@scripted", messages=user)
        assert server.metrics.in_flight == 0


def test_upstream_failures_while_streaming_or_passing_through(fake_openai_server) -> None:
    broken = fake_openai_server(lambda body, _: (500, {"error": {"message": "boom"}}, {}))
    with serve(upstream_for(broken.url, "broken")) as server:
        client = server.client()
        user = [{"role": "user", "content": "q"}]
        with pytest.raises(openai.APIError, match="'broken'"):
            for _ in client.chat.completions.create(model="ponder:greedy", messages=user, stream=True):
                pass
        with pytest.raises(openai.InternalServerError, match="HTTP 500: .*boom") as failure:
            client.chat.completions.create(model="broken", messages=user)
        assert failure.value.status_code == 502
        assert server.metrics.in_flight == 0


@pytest.mark.parametrize(
    ("max_queue", "message"), [(0, "1 requests running and 0 waiting"), (1, "no slot free")]
)
def test_full_line_or_long_wait_answers_429_with_retry_after(max_queue: int, message: str) -> None:
    blocking = BlockingBackend(model="slow")
    limits = {"max_in_flight": 1, "max_queue": max_queue, "queue_timeout": 0.3}
    with serve(Upstream("slow", blocking), **limits) as server:
        user = [{"role": "user", "content": "q"}]
        hanging = threading.Thread(
            target=_ignore,
            args=(
                lambda: server.client(timeout=1.5).chat.completions.create(
                    model="ponder:greedy", messages=user
                ),
            ),
        )
        hanging.start()
        wait_until(lambda: blocking.started == 1)
        with pytest.raises(openai.RateLimitError, match=message) as limited:
            server.client().chat.completions.create(model="ponder:greedy", messages=user)
        assert limited.value.response.headers["retry-after"] == "1"
        assert server.metrics.queued == 0
        hanging.join(10)
        wait_until(lambda: server.metrics.in_flight == 0)


def _ignore(call: Callable[[], object]) -> None:
    with contextlib.suppress(openai.APIError):
        call()


def test_request_timeout_gives_504() -> None:
    blocking = BlockingBackend(model="slow")
    with (
        serve(Upstream("slow", blocking), request_timeout=0.3) as server,
        pytest.raises(openai.APIStatusError) as failure,
    ):
        server.client().chat.completions.create(
            model="ponder:greedy", messages=[{"role": "user", "content": "q"}]
        )
    assert failure.value.status_code == 504
    assert blocking.cancelled == blocking.started == 1


@pytest.mark.parametrize("stream", [False, True])
def test_client_disconnect_cancels_every_upstream_call(stream: bool) -> None:
    blocking = BlockingBackend(model="slow")
    with serve(Upstream("slow", blocking)) as server:
        client = server.client(timeout=0.5)
        with pytest.raises(openai.APITimeoutError):
            response = client.chat.completions.create(
                model="ponder:self-consistency:n=4",
                messages=[{"role": "user", "content": "q"}],
                stream=stream,
            )
            for _ in response:  # role chunk arrives, then nothing until the client gives up
                pass
        wait_until(lambda: blocking.started >= 1 and blocking.cancelled == blocking.started)
        wait_until(lambda: server.metrics.in_flight == 0)
        started = blocking.started
        time.sleep(0.3)  # nothing new goes upstream after the cancellation
        assert blocking.started == started
        assert server.metrics.upstream_in_flight["slow"] == 0


# -- load ------------------------------------------------------------------------------------------------
@dataclass
class Timings:
    server_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def test_bounded_load_200_concurrent_requests(capsys) -> None:
    count = 200
    timings = Timings()
    with serve(scripted(), max_in_flight=count, max_n=1) as server:

        async def one(client: openai.AsyncOpenAI, index: int) -> None:
            started = time.perf_counter()
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model="ponder:self-consistency:n=4@scripted",
                    messages=[{"role": "user", "content": f"question {index}"}],
                )
                reply = raw.parse()
                assert "\\boxed" in reply.choices[0].message.content
                total = raw.headers["server-timing"].split(",")[0]
                timings.server_ms.append(float(total.split("dur=")[1]))
                timings.client_ms.append((time.perf_counter() - started) * 1000)
            except Exception as error:  # counted, asserted below
                timings.errors.append(repr(error))

        async def main() -> float:
            limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
            async with httpx.AsyncClient(limits=limits, timeout=50.0) as http:
                client = openai.AsyncOpenAI(
                    base_url=server.url + "/v1", api_key="none", max_retries=0, http_client=http
                )
                started = time.perf_counter()
                await asyncio.wait_for(asyncio.gather(*(one(client, i) for i in range(count))), 50)
                return time.perf_counter() - started

        wall = asyncio.run(main())
        wait_until(lambda: server.metrics.in_flight == 0)
        sequential: list[float] = []  # one at a time: the server's own overhead, without queueing
        client = server.client()
        for index in range(50):
            raw = client.chat.completions.with_raw_response.create(
                model="ponder:self-consistency:n=4@scripted",
                messages=[{"role": "user", "content": f"question {index}"}],
            )
            sequential.append(float(raw.headers["server-timing"].split(",")[0].split("dur=")[1]))

    def percentile(values: list[float], q: float) -> float:
        return (
            statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]
        )

    def spread(values: list[float]) -> str:
        return f"p50 {percentile(values, 50):.2f} ms, p99 {percentile(values, 99):.2f} ms"

    with capsys.disabled():
        print(
            f"\nload: {count} concurrent requests (self-consistency n=4, scripted upstream) in {wall:.2f}s, "
            f"errors {len(timings.errors)}; server time per request {spread(timings.server_ms)}; "
            f"client round trip {spread(timings.client_ms)}; one at a time, server time {spread(sequential)}"
        )
    assert timings.errors == []
    assert len(timings.server_ms) == count


def test_budget_cap_and_metrics() -> None:
    with serve(scripted(), max_budget_tokens=100) as server:
        client = server.client()
        user = [{"role": "user", "content": "q"}]
        with pytest.raises(openai.BadRequestError, match="limit of 100"):
            client.chat.completions.create(
                model="ponder:greedy", messages=user, extra_body={"ponder": {"budget": "tokens=500"}}
            )
        with pytest.raises(openai.BadRequestError, match="typo"):
            client.chat.completions.create(
                model="ponder:greedy", messages=user, extra_body={"ponder": {"typo": 1}}
            )
        reply = client.chat.completions.create(
            model="ponder:self-consistency:n=2", messages=user, extra_body={"ponder": {"budget": "tokens=50"}}
        )
        text = httpx.get(server.url + "/metrics").text
    assert reply.usage.completion_tokens == 4
    assert 'ponder_upstream_calls_total{upstream="scripted"} 1' in text
    assert 'ponder_upstream_completion_tokens_total{upstream="scripted"} 4' in text
    assert 'ponder_requests_total{mode="rejected",status="400"} 2' in text  # refused before running
    assert "ponder_request_seconds_count 3" in text and "ponder_requests_in_flight 0" in text


def test_upstream_keys_come_from_the_environment(monkeypatch) -> None:
    from ponder.server.run import parse_upstream

    monkeypatch.setenv("PONDER_UPSTREAM_KEY", "shared")
    monkeypatch.setenv("PONDER_UPSTREAM_KEY_QWEN_7B", "own")
    assert parse_upstream("qwen-7b=http://127.0.0.1:1/v1").backend.api_key == "own"
    assert parse_upstream("other=http://127.0.0.1:1/v1").backend.api_key == "shared"
    monkeypatch.delenv("PONDER_UPSTREAM_KEY")
    assert parse_upstream("other=http://127.0.0.1:1/v1").backend.api_key is None
