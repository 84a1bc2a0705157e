"""The OpenAI-compatible backend under upstream faults, against local fakes on 127.0.0.1 only.

Malformed replies, redirects, oversized and slow-drip bodies, hangs, ``Retry-After`` and labels each end
in one backend error class with a one-line cause. Recovery: an upstream that is frozen, hit by many
requests that are then cancelled, killed and restarted on the same port is used again within seconds,
by the backend and by ``ponder serve`` in strategy mode (issue 14, item 6). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import completion, serve_locally, stop
from test_server import running

from ponder.backends import GenRequest, OpenAIBackend
from ponder.backends.openai import server_capabilities
from ponder.core import Message
from ponder.core.errors import (
    BackendFailedError,
    BackendProtocolError,
    BackendRejectedError,
    BackendUnavailableError,
)
from ponder.server import ServerSettings, create_app
from ponder.server.run import parse_upstream

REQUEST = GenRequest(messages=(Message("user", "hi"),), max_tokens=8)
OK = json.dumps(completion(["ok"])).encode()

#: (status, body, headers) for one request; ``None`` as body means: send headers, then hang
Reply = Callable[[], tuple[int, bytes | None, dict[str, str]]]


@pytest.fixture
def raw_upstream() -> Iterator[Callable[[Reply], str]]:
    """A fake upstream answering every POST with the bytes ``reply()`` gives (no JSON encoding)."""
    servers: list[ThreadingHTTPServer] = []
    release = threading.Event()

    def start(reply: Reply) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                self.rfile.read(int(self.headers["Content-Length"]))
                status, body, headers = reply()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if body is not None and "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body is None:
                    release.wait(10)
                else:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = serve_locally(Handler)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    release.set()
    for server in servers:
        stop(server)


def backend_for(url: str, **kwargs: object) -> OpenAIBackend:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("capabilities", server_capabilities("generic"))
    return OpenAIBackend(model="m", base_url=url, backoff=0.01, **kwargs)


async def cancel_a_burst(backend: OpenAIBackend, size: int, ticks: int) -> None:
    """Start ``size`` requests, let the loop turn ``ticks`` times, and cancel them all at that point."""
    tasks = [asyncio.create_task(backend.generate([REQUEST])) for _ in range(size)]
    for _ in range(ticks):
        await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def failure_of(backend: OpenAIBackend) -> Exception:
    """The error one request ends with (bounded in time), after closing the backend."""
    try:
        async with asyncio.timeout(8):
            await backend.generate([REQUEST])
    except Exception as error:  # noqa: BLE001 - the test inspects it
        return error
    finally:
        await backend.close()
    raise AssertionError("the request succeeded")


def choice(**fields: object) -> bytes:
    return json.dumps({"choices": [{"index": 0, "message": {"content": "x"}, **fields}]}).encode()


MALFORMED = {
    "truncated JSON": OK[: len(OK) // 2],
    "invalid JSON": b"{'choices': nope}",
    "a JSON array": b"[1, 2]",
    "null": b"null",
    "HTML": b"<html><body>502 Bad Gateway</body></html>",
    "empty body": b"",
    "no choices": b'{"choices": []}',
    "choices not a list": b'{"choices": {"0": {"text": "x"}}}',
    "message not an object": json.dumps({"choices": [{"message": "hi"}]}).encode(),
    "content a number": json.dumps({"choices": [{"message": {"content": 5}}]}).encode(),
    "usage a string": json.dumps({**completion(["x"]), "usage": {"prompt_tokens": "12"}}).encode(),
    "usage negative": json.dumps({**completion(["x"]), "usage": {"completion_tokens": -3}}).encode(),
    "logprobs not a list": choice(logprobs={"content": {"token": "x"}}),
    "logprob a string": choice(logprobs={"content": [{"token": "x", "logprob": "low"}]}),
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_reply_is_a_protocol_error_with_a_one_line_cause(raw_upstream, body) -> None:
    url = raw_upstream(lambda: (200, body, {"Content-Type": "application/json"}))
    error = await failure_of(backend_for(url))
    assert type(error) is BackendProtocolError
    assert "malformed reply" in str(error) and "\n" not in str(error) and len(str(error)) < 400


async def test_reply_over_the_size_cap_is_refused(raw_upstream) -> None:
    big = json.dumps(completion(["x" * 5000])).encode()
    declared = raw_upstream(lambda: (200, big, {}))
    error = await failure_of(backend_for(declared, max_response_bytes=1000))
    assert isinstance(error, BackendProtocolError) and "over 1000 bytes" in str(error)
    # no Content-Length: read until the cap, then refused
    chunked = raw_upstream(
        lambda: (200, b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big), {"Transfer-Encoding": "chunked"})
    )
    error = await failure_of(backend_for(chunked, max_response_bytes=1000))
    assert isinstance(error, BackendProtocolError) and "over 1000 bytes" in str(error)


async def test_redirect_is_not_followed_nor_relayed(raw_upstream, fake_openai_server) -> None:
    target = fake_openai_server(lambda body, _: (200, completion(["ok"]), {}))
    url = raw_upstream(lambda: (307, b"", {"Location": target.url + "/chat/completions"}))
    error = await failure_of(backend_for(url))
    assert isinstance(error, BackendProtocolError) and "HTTP 307, a redirect (not followed)" in str(error)
    assert target.url not in str(error) and target.bodies == []


async def test_statuses_map_to_failed_and_rejected(raw_upstream) -> None:
    failing = raw_upstream(lambda: (500, b'{"error": {"message": "boom\\nsecond line"}}', {}))
    error = await failure_of(backend_for(failing, max_retries=1))
    assert isinstance(error, BackendFailedError) and error.status == 500 and error.attempts == 2
    assert "failed after 2 attempt(s): HTTP 500: boom second line" in str(error)
    refusing = raw_upstream(lambda: (404, b"<html>no such model</html>", {}))
    error = await failure_of(backend_for(refusing, max_retries=3))
    assert isinstance(error, BackendRejectedError) and error.status == 404
    assert "rejected the request: HTTP 404: <html>no such model</html>" in str(error)


async def test_hanging_and_slow_drip_upstreams_time_out(raw_upstream) -> None:
    hanging = raw_upstream(lambda: (200, None, {"Content-Length": "100"}))
    started = time.monotonic()
    error = await failure_of(backend_for(hanging, timeout=0.5))
    assert isinstance(error, BackendUnavailableError) and error.timed_out
    drip = b" " * 40 + OK  # valid JSON with leading blanks, sent one byte at a time below
    url = raw_upstream(lambda: (200, drip, {}))
    backend = backend_for(url, timeout=0.5)
    original = backend._new_client

    def slow_client() -> httpx.AsyncClient:  # a transport that yields each byte 50 ms apart
        client = original()
        transport = client._transport

        class Drip(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                response = await transport.handle_async_request(request)
                body = await response.aread()

                async def stream():
                    for byte in body:
                        await asyncio.sleep(0.05)
                        yield bytes([byte])

                return httpx.Response(response.status_code, headers=response.headers, content=stream())

        client._transport = Drip()
        return client

    backend._new_client = slow_client  # type: ignore[method-assign]
    error = await failure_of(backend)
    assert isinstance(error, BackendUnavailableError) and error.timed_out
    assert "no complete reply within 0.5 s" in str(error)
    assert time.monotonic() - started < 4


async def test_retry_after_is_capped(raw_upstream) -> None:
    url = raw_upstream(lambda: (429, b'{"error": {"message": "busy"}}', {"Retry-After": "86400"}))
    started = time.monotonic()
    error = await failure_of(backend_for(url, max_retries=2, max_retry_after=0.2))
    assert isinstance(error, BackendFailedError) and error.status == 429 and error.attempts == 3
    assert time.monotonic() - started < 3


async def test_label_replaces_the_url_in_every_error(raw_upstream) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for url in (f"http://127.0.0.1:{port}/v1", raw_upstream(lambda: (200, b"[]", {}))):
        upstream = parse_upstream(f"qwen={url}")
        upstream.backend.max_retries = 0
        error = await failure_of(upstream.backend)
        assert "backend at qwen " in str(error) and "127.0.0.1" not in str(error)
    assert upstream.backend.label == "qwen" and backend_for(url).label == "m"


# -- recovery after cancellations and an outage ------------------------------------------------------
class ClosingAfterReply(BaseHTTPRequestHandler):
    """Promises keep-alive but closes each connection after replying: the client finds it expired."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(OK)))
        self.end_headers()
        self.wfile.write(OK)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


async def test_cancelled_requests_never_strand_the_pool() -> None:
    """httpcore strands a pool slot when a request is cancelled at the wrong moment (encode/httpcore#1093).

    Cancelling bursts at every point of a request's first steps hits that moment; with one slot, a
    stranded one used to block every later request until the pool timeout.
    """
    server = serve_locally(ClosingAfterReply)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    # retries as a real client does: the server closes each connection, and a pooled one may be stale
    backend = backend_for(url, capabilities=server_capabilities("generic", 1), timeout=3.0, max_retries=2)
    try:
        for ticks in range(40):
            await backend.generate([REQUEST])
            await cancel_a_burst(backend, size=4, ticks=ticks)
        started = time.monotonic()
        async with asyncio.timeout(3):
            [[generation]] = await backend.generate([REQUEST])
        assert generation.text == "ok" and time.monotonic() - started < 1
    finally:
        await backend.close()
        stop(server)


UPSTREAM = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
choice = {"index": 0, "message": {"content": "\\\\boxed{4}"}, "finish_reason": "stop"}
reply = json.dumps({"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


class Outage:
    """A fake upstream in its own process on a fixed port: frozen (SIGSTOP), killed, restarted."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process = self.start()

    def start(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM, str(self.port)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return process

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def kill_and_restart(self) -> None:
        self.kill()
        self.process = self.start()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def outage() -> Iterator[Outage]:
    upstream = Outage()
    yield upstream
    upstream.kill()


async def test_backend_recovers_after_a_frozen_then_killed_upstream(outage) -> None:
    backend = backend_for(
        outage.url, capabilities=server_capabilities("generic", 1), max_retries=3, timeout=30
    )
    try:
        await asyncio.gather(*(backend.generate([REQUEST]) for _ in range(4)))
        outage.freeze()
        tasks = [asyncio.create_task(backend.generate([REQUEST])) for _ in range(30)]
        await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outage.kill_and_restart()
        for ticks in range(12):  # clients retrying at once while the restarted upstream comes back
            await cancel_a_burst(backend, size=6, ticks=ticks)
        started = time.monotonic()
        async with asyncio.timeout(5):
            [[generation]] = await backend.generate([REQUEST])
        assert generation.text == "\\boxed{4}" and time.monotonic() - started < 3
    finally:
        await backend.close()


def test_server_strategy_mode_recovers_after_an_outage(outage) -> None:
    upstream = parse_upstream(f"m={outage.url}", timeout=30)
    settings = ServerSettings(request_timeout=1.0, max_in_flight=64)
    body = {"model": "ponder:self-consistency:n=2@m", "messages": [{"role": "user", "content": "2+2?"}]}
    with running(create_app([upstream], settings)) as server, httpx.Client(timeout=10) as http:
        assert http.post(server.url + "/v1/chat/completions", json=body).status_code == 200
        outage.freeze()
        with_clients = [
            threading.Thread(target=lambda: http.post(server.url + "/v1/chat/completions", json=body))
            for _ in range(12)
        ]
        for thread in with_clients:
            thread.start()
        for thread in with_clients:
            thread.join(10)
        outage.kill_and_restart()
        started = time.monotonic()
        response = http.post(server.url + "/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        assert "4" in response.json()["choices"][0]["message"]["content"]
        assert time.monotonic() - started < 5
