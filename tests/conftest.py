"""Shared fixtures: a scripted backend factory and a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Handler = Callable[[dict[str, Any], int], tuple[int, dict[str, Any], dict[str, str]]]


@dataclass
class FakeServer:
    """Answers POST /v1/chat/completions with whatever ``handler(body, attempt)`` returns."""

    handler: Handler
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


class _Server(ThreadingHTTPServer):
    #: a listen backlog like real servers' (socketserver's 5 resets connections in a burst, which an
    #: adaptive in-flight limit growing past a few dozen requests makes)
    request_queue_size = 1024


def serve_locally(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """``handler`` served on a free port of 127.0.0.1 from a daemon thread (stop it with ``stop``)."""
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_openai_server() -> Iterator[Callable[[Handler], FakeServer]]:
    servers: list[ThreadingHTTPServer] = []

    def start(handler: Handler) -> FakeServer:
        fake = FakeServer(handler)
        lock = threading.Lock()

        class RequestHandler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    fake.bodies.append(body)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    attempt = len(fake.bodies)
                status, payload, headers = fake.handler(body, attempt)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = serve_locally(RequestHandler)
        servers.append(server)
        fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return fake

    yield start
    for server in servers:
        stop(server)


def completion(
    texts: list[str],
    prompt_tokens: int = 10,
    completion_tokens: int | None = None,
    cached: int | None = None,
    logprobs: list[list[float]] | None = None,
) -> dict[str, Any]:
    """An OpenAI chat-completion payload with one choice per text."""
    choices = []
    for i, text in enumerate(texts):
        choice: dict[str, Any] = {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        if logprobs is not None:
            choice["logprobs"] = {
                "content": [
                    {"token": f"t{j}", "logprob": lp, "top_logprobs": []} for j, lp in enumerate(logprobs[i])
                ]
            }
        choices.append(choice)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens
        if completion_tokens is not None
        else sum(len(t.split()) for t in texts),
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}
