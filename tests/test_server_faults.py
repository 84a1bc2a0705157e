"""``ponder serve`` under faults: misbehaving upstreams, malformed clients, bursts, and what leaks.

Every upstream here is a local fake on 127.0.0.1 whose answers are written byte by byte, so each fault
(a slow drip, a reset mid-body, a redirect, an oversized or malformed answer) happens exactly. The
fake lives at a distinctive path (``/secret-path/v1``) so a test can assert that neither that path nor
its port ever reaches a client. Every wait is bounded; drips and hangs stop on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import openai
import pytest
from conftest import completion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server import Running, _ignore, scripted, serve, upstream_for, wait_until

from ponder.backends import Generation, GenRequest, ScriptedBackend
from ponder.cli.main import main
from ponder.server import Upstream

USER = [{"role": "user", "content": "ok"}]
SLOW_STEP = 0.1  # seconds between the bytes of a drip
LONGEST_FAULT = 5.0  # no fake connection lasts longer than this


# -- a hand-written upstream -----------------------------------------------------------------------
def http_head(status: int, reason: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(status: int, data: bytes, content_type: str = "application/json") -> bytes:
    head = http_head(status, "Whatever", {"Content-Type": content_type, "Content-Length": str(len(data))})
    return head + data


class RawUpstream:
    """An HTTP server on 127.0.0.1 that picks a fault by the request's last message and writes it raw."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/secret-path/v1"
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            connection.settimeout(LONGEST_FAULT)
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            while len(body) < length:
                body += connection.recv(65536)
            request = json.loads(body)
            fault = request["messages"][-1]["content"]
            getattr(self, "fault_" + fault.replace("-", "_"))(connection, request)

    # each fault writes its own answer
    def fault_ok(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(answer(200, json.dumps(completion(["fine"])).encode()))

    def fault_drip(self, connection: socket.socket, request: dict) -> None:
        """Headers at once, then the body one byte at a time (the slow-drip attack)."""
        connection.sendall(
            http_head(200, "OK", {"Content-Type": "application/json", "Content-Length": "1000"})
        )
        self._drip(connection, b"x")

    def fault_drip_stream(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(http_head(200, "OK", {"Content-Type": "text/event-stream"}))
        chunk = {
            "id": "u",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": "a"}}],
        }
        self._drip(connection, f"data: {json.dumps(chunk)}\n\n".encode())

    def _drip(self, connection: socket.socket, piece: bytes) -> None:
        deadline = time.monotonic() + LONGEST_FAULT
        while time.monotonic() < deadline and not self.stopped.is_set():
            connection.sendall(piece)
            time.sleep(SLOW_STEP)

    def fault_hang(self, connection: socket.socket, request: dict) -> None:
        self.stopped.wait(LONGEST_FAULT)

    def fault_reset(self, connection: socket.socket, request: dict) -> None:
        """A connection reset (RST) in the middle of the body."""
        connection.sendall(
            http_head(200, "OK", {"Content-Type": "application/json", "Content-Length": "1000"})
        )
        connection.sendall(b'{"choices": [')
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def fault_redirect(self, connection: socket.socket, request: dict) -> None:
        headers = {"Location": self.url + "/elsewhere", "Content-Length": "0"}
        connection.sendall(http_head(307, "Temporary Redirect", headers))

    def fault_huge(self, connection: socket.socket, request: dict) -> None:
        """An answer without a length that goes on past the server's cap (ends when the socket closes)."""
        connection.sendall(http_head(200, "OK", {"Content-Type": "application/json"}))
        connection.sendall(b'{"filler": "' + b"x" * 200_000 + b'"}')

    def fault_huge_declared(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(
            http_head(200, "OK", {"Content-Type": "application/json", "Content-Length": "999999999"})
        )

    def fault_fail(self, connection: socket.socket, request: dict) -> None:
        body = {"error": {"message": f"boom at {self.url}/chat/completions (127.0.0.1:{self.port})"}}
        connection.sendall(answer(500, json.dumps(body).encode()))

    def fault_reject(self, connection: socket.socket, request: dict) -> None:
        body = {"error": {"message": f"context too long for {self.url}", "type": "invalid_request_error"}}
        connection.sendall(answer(400, json.dumps(body).encode()))

    def fault_missing(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(answer(404, b"Cannot POST /secret-path/v1/chat/completions", "text/plain"))

    def fault_truncated(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(answer(200, b'{"choices": [{"message": '))

    def fault_array(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(answer(200, b"[]"))

    def fault_null(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(answer(200, b"null"))

    def fault_wrong_types(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(answer(200, b'{"choices": "many", "usage": 7}'))

    def fault_html(self, connection: socket.socket, request: dict) -> None:
        connection.sendall(answer(200, b"<html><body>gateway says hi</body></html>", "text/html"))


@pytest.fixture
def raw_upstream() -> Iterator[RawUpstream]:
    upstream = RawUpstream()
    yield upstream
    upstream.close()


def post(server: Running, body: dict | bytes, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + "/v1/chat/completions", content=content, headers=headers, timeout=10.0)


def ask(model: str, fault: str, **fields: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": fault}], **fields}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is an OpenAI-style error with this status (and code); returns its error object."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code, error
    return error


# -- pass-through faults ---------------------------------------------------------------------------
def test_slow_drip_gets_504_within_the_request_timeout_and_frees_the_slot(raw_upstream) -> None:
    with serve(upstream_for(raw_upstream.url), request_timeout=1.0) as server:
        started = time.monotonic()
        error = assert_error(post(server, ask("m", "drip")), 504, "upstream_timeout")
        assert time.monotonic() - started < 3.0 and "'m'" in error["message"]
        wait_until(lambda: server.metrics.in_flight == 0 and server.metrics.upstream_in_flight["m"] == 0)
        assert post(server, ask("m", "ok")).status_code == 200


def test_slow_drip_stream_ends_with_an_error_event_at_the_deadline(raw_upstream) -> None:
    with serve(upstream_for(raw_upstream.url), request_timeout=1.0) as server:
        started = time.monotonic()
        with pytest.raises(openai.APIError, match="timed out"):
            for _ in server.client().chat.completions.create(
                model="m", messages=[{"role": "user", "content": "drip-stream"}], stream=True
            ):
                pass
        assert time.monotonic() - started < 3.0
        wait_until(lambda: server.metrics.in_flight == 0 and server.metrics.upstream_in_flight["m"] == 0)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("reset", "upstream_unavailable"),
        ("redirect", "upstream_redirect"),
        ("huge", "upstream_too_large"),
        ("huge-declared", "upstream_too_large"),
        ("fail", "upstream_failed"),
    ],
)
def test_passthrough_faults_are_502_naming_the_upstream(raw_upstream, fault: str, code: str) -> None:
    with serve(upstream_for(raw_upstream.url), max_response_bytes=100_000) as server:
        response = post(server, ask("m", fault))
        error = assert_error(response, 502, code)
        assert "'m'" in error["message"] and "location" not in response.headers
        assert server.metrics.in_flight == 0
        assert post(server, ask("m", "ok")).status_code == 200  # and the server keeps serving


def test_passthrough_caps_n_and_max_tokens_and_sends_the_cap(fake_openai_server) -> None:
    fake = fake_openai_server(lambda body, attempt: (200, completion(["fine"]), {}))
    with serve(upstream_for(fake.url), max_n=2, max_tokens=100) as server:
        assert assert_error(post(server, ask("m", "q", n=1e18)), 400)["param"] == "n"
        assert assert_error(post(server, ask("m", "q", n=3)), 400)["param"] == "n"
        assert assert_error(post(server, ask("m", "q", max_tokens=101)), 400)["param"] == "max_tokens"
        assert assert_error(post(server, ask("m", "q", max_completion_tokens=10**6)), 400)["param"] == (
            "max_completion_tokens"
        )
        assert_error(post(server, b'{"model": "m", "messages": [], "max_tokens": 1e309}'), 400)
        assert fake.bodies == []  # nothing over the caps reached the upstream
        assert post(server, ask("m", "q", n=2, max_tokens=100)).status_code == 200
        assert post(server, ask("m", "q")).status_code == 200
    assert fake.bodies[0]["max_tokens"] == 100 and fake.bodies[0]["n"] == 2
    assert fake.bodies[1]["max_tokens"] == 100  # the cap is sent when the client names none


# -- strategy-mode faults --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("fail", 502, "upstream_failed"),
        ("reject", 400, "upstream_rejected"),
        ("reset", 502, None),
        ("truncated", 502, "upstream_malformed"),
        ("array", 502, "upstream_malformed"),
        ("null", 502, "upstream_malformed"),
        ("wrong-types", 502, "upstream_malformed"),
        ("html", 502, "upstream_malformed"),
        ("hang", 504, None),
    ],
)
def test_strategy_faults_map_by_class_never_500(
    raw_upstream, fault: str, status: int, code: str | None
) -> None:
    upstream = upstream_for(raw_upstream.url)
    upstream.backend.timeout = 1.0
    with serve(upstream, request_timeout=2.0) as server:
        error = assert_error(post(server, ask("ponder:greedy@m", fault)), status, code)
        assert "'m'" in error["message"]
        wait_until(lambda: server.metrics.in_flight == 0)


# -- information exposure --------------------------------------------------------------------------
def test_no_body_ever_names_an_upstream_address(raw_upstream) -> None:
    with socket.socket() as probe:  # a second upstream nobody listens on, at a distinctive path too
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = upstream_for(f"http://127.0.0.1:{dead_port}/secret-path/v1", "dead")
    live = upstream_for(raw_upstream.url)
    live.backend.timeout = 1.0
    faults = ["reset", "redirect", "huge", "huge-declared", "fail", "reject", "missing", "truncated", "html"]
    bodies = []
    with serve(
        live, dead, request_timeout=2.0, max_response_bytes=100_000, api_keys=frozenset({"k"})
    ) as server:
        key = {"Authorization": "Bearer k"}
        for model in ("m", "ponder:greedy@m"):
            bodies += [post(server, ask(model, fault), **key).text for fault in faults]
            bodies.append(post(server, ask(model.replace("m", "dead"), "ok"), **key).text)
        missing = post(server, ask("m", "missing"), **key)
        assert missing.status_code == 404 and "Cannot POST" in missing.text  # relayed, address removed
        bodies += [
            httpx.get(server.url + path, headers=key).text for path in ("/health", "/v1/models", "/metrics")
        ]
    assert len(bodies) == 2 * (len(faults) + 1) + 3
    for body in bodies:
        assert "secret-path" not in body and str(raw_upstream.port) not in body and str(dead_port) not in body


def test_health_without_a_key_says_only_ok_and_unknown_routes_answer_json() -> None:
    with serve(scripted(), api_keys=frozenset({"k"})) as server:
        assert httpx.get(server.url + "/health").json() == {"status": "ok"}
        assert httpx.get(server.url + "/health", headers={"Authorization": "Bearer no"}).json() == {
            "status": "ok"
        }
        full = httpx.get(server.url + "/health", headers={"Authorization": "Bearer k"}).json()
        assert full == {"status": "ok", "upstreams": ["scripted"], "in_flight": 0, "queued": 0}
        missing = httpx.get(server.url + "/admin")
        assert_error(missing, 404, "not_found")
        assert_error(httpx.get(server.url + "/v1/chat/completions"), 405, "method_not_allowed")


# -- malformed client input ------------------------------------------------------------------------
def test_deep_nesting_and_huge_numbers_are_400() -> None:
    deep = "[" * 1000 + "]" * 1000
    with serve(scripted()) as server:
        for raw in (
            f'{{"model": "ponder:greedy", "messages": {deep}}}',
            f'{{"model": "ponder:greedy", "messages": [{{"role": "user", "content": "q"}}], "x": {deep}}}',
            '{"model": "ponder:greedy", "messages": [{"role": "user", "content": "q"}], "n": 1e18}',
            '{"model": "ponder:greedy", "messages": [{"role": "user", "content": "q"}], "max_tokens": 1e309}',
        ):
            assert_error(post(server, raw.encode()), 400)
        for budget in ("tokens=1e309", "tokens=nan", "calls=inf", "tokens=-1", "seconds=-2", "tokens=1.5"):
            error = assert_error(post(server, ask("ponder:greedy", "q", ponder={"budget": budget})), 400)
            assert "budget" in error["message"]
        assert server.metrics.in_flight == 0


BAD_VALUES = {
    "model": st.sampled_from([5, "", None, [], {"a": 1}, "ponder:", "ponder:@scripted"]),
    "messages": st.sampled_from(["x", [], [1], [{"role": "nobody"}], [{"role": "user", "content": 5}], None]),
    "n": st.sampled_from([0, -1, "x", 1.5, 1e18, 10**30, None, [2]]),
    "temperature": st.sampled_from(["hot", -1, 3, [0.5], {"t": 1}]),
    "max_tokens": st.sampled_from([0, -5, "many", 1.5, [1]]),
    "ponder": st.sampled_from(
        [[], "x", {"strategy": 5}, {"unknown": 1}, {"budget": "tokens=1e309"}, {"include": "x"}]
    ),
    "stream": st.sampled_from(["maybe", 5, [True], {"a": 1}]),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(sorted(BAD_VALUES)),
    data=st.data(),
    model=st.sampled_from(["scripted", "ponder:greedy@scripted", "ponder:self-consistency:n=2"]),
)
def test_any_malformed_body_is_a_400_with_an_openai_error(
    served: Running, field: str, data, model: str
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "q"}],
        field: data.draw(BAD_VALUES[field]),
    }
    assert_error(post(served, body), 400)


@pytest.fixture(scope="module")
def served() -> Iterator[Running]:
    with serve(scripted()) as server:
        yield server


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[]", b"null", b"5", b'"x"', b"\xff\xfe", b'{"model": "scripted"}', b'{"messages": []}'],
)
def test_bodies_that_are_not_requests_are_400(served: Running, raw: bytes) -> None:
    assert_error(post(served, raw), 400)


# -- bursts ----------------------------------------------------------------------------------------
def test_a_burst_of_200_waits_in_line_with_default_flags(fake_openai_server) -> None:
    fake = fake_openai_server(lambda body, attempt: (200, completion(["So \\boxed{42}."]), {}))
    count = 200
    with serve(upstream_for(fake.url)) as server:  # default flags: 64 in flight, the rest wait

        async def one(client: openai.AsyncOpenAI) -> str:
            reply = await client.chat.completions.create(model="ponder:self-consistency:n=4", messages=USER)
            return reply.choices[0].message.content

        async def burst() -> list[str | BaseException]:
            limits = httpx.Limits(max_connections=count)
            async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:
                client = openai.AsyncOpenAI(
                    base_url=server.url + "/v1", api_key="x", max_retries=0, http_client=http
                )
                calls = (one(client) for _ in range(count))
                return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)

        outcomes = asyncio.run(burst())
        errors = [repr(outcome) for outcome in outcomes if isinstance(outcome, BaseException)]
        assert errors == [] and all("42" in text for text in outcomes)
        assert len(fake.bodies) == 4 * count
        assert server.metrics.queued == 0 and server.metrics.in_flight == 0
        assert 'ponder_requests_total{mode="strategy",status="200"} 200' in server.metrics.render()


@dataclass
class GateBackend(ScriptedBackend):
    """Every call waits until the test opens the gate; ``order`` records whose call started when."""

    gate: threading.Event = field(default_factory=threading.Event)
    order: list[str] = field(default_factory=list)

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        self.order.append(requests[0].messages[-1].content)
        deadline = time.monotonic() + LONGEST_FAULT
        while not self.gate.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return await super().generate(requests)


def test_the_line_is_first_come_first_served_and_a_client_that_leaves_leaves_it() -> None:
    backend = GateBackend(model="gated")
    with serve(Upstream("gated", backend), max_in_flight=1) as server:

        def start(label: str, timeout: float) -> threading.Thread:
            messages = [{"role": "user", "content": label}]
            create = server.client(timeout=timeout).chat.completions.create
            thread = threading.Thread(
                target=_ignore, args=(lambda: create(model="ponder:greedy", messages=messages),)
            )
            thread.start()
            return thread

        threads = [start("first", 10.0)]
        wait_until(lambda: backend.order == ["first"])
        threads.append(start("leaves", 0.3))  # waits in line, then disconnects before a slot frees
        wait_until(lambda: server.metrics.queued == 1)
        wait_until(lambda: server.metrics.queued == 0)  # it left the line
        for count, label in enumerate(("second", "third", "fourth"), start=1):
            threads.append(start(label, 10.0))
            wait_until(lambda count=count: server.metrics.queued == count)
        assert "ponder_requests_queued 3" in server.metrics.render()
        backend.gate.set()
        for thread in threads:
            thread.join(10)
        assert backend.order == ["first", "second", "third", "fourth"]
        wait_until(lambda: server.metrics.in_flight == 0 and server.metrics.queued == 0)


# -- keys on the command line ----------------------------------------------------------------------
def test_serve_takes_keys_from_the_environment_and_warns_about_command_line_keys(monkeypatch, capsys) -> None:
    seen: dict[str, object] = {}

    def fake_serve(host: str, port: int, upstreams: list, settings, log_level: str, workers: int = 1) -> None:
        seen["settings"] = settings

    monkeypatch.setattr("ponder.server.run.serve", fake_serve)
    monkeypatch.setenv("PONDER_SERVE_API_KEYS", "alpha, beta,")
    base = ["serve", "--upstream", "m=http://127.0.0.1:9/v1"]
    assert main(base) == 0
    assert seen["settings"].api_keys == {"alpha", "beta"} and "warning" not in capsys.readouterr().err
    assert main([*base, "--api-key", "gamma", "--max-queue", "7", "--max-tokens", "99"]) == 0
    assert seen["settings"].api_keys == {"alpha", "beta", "gamma"}
    assert (seen["settings"].max_queue, seen["settings"].max_tokens) == (7, 99)
    err = capsys.readouterr().err
    assert err.count("command line") == 1 and "gamma" not in err
