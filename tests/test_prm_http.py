"""``prm-http``: step scores from a fake vLLM pooling server on 127.0.0.1, both response shapes."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import serve_locally, stop

from ponder.backends.scripted import ScriptedBackend
from ponder.context import Context
from ponder.core.errors import BackendError, BackendUnavailableError
from ponder.core.types import Candidate, Problem
from ponder.scorers import SCORERS

PROBLEM = Problem(question="what is 2 + 3 - 4")
SOLUTION = "add: 2 + 3 = 5\n\nsubtract: 5 - 4 = 1\n\nthe answer is 1"
SEPARATOR_ID = 99
#: token ids of the formatted conversation: three steps, each followed by the separator
TOKENS = [1, 2, 3, 4, 5, 99, 6, 7, 99, 8, 99, 0]
PER_TOKEN = (
    [[0.5, 0.5]] * 5 + [[0.1, 0.9]] + [[0.5, 0.5]] * 2 + [[0.4, 0.6]] + [[0.5, 0.5]] + [[0.3, 0.7]] + [[1, 0]]
)

Route = Callable[[str, dict[str, Any], int], tuple[int, dict[str, Any]]]


@pytest.fixture
def server() -> Iterator[Callable[[Route], tuple[str, list[tuple[str, dict[str, Any]]]]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(route: Route) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
        seen: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    seen.append((self.path, body))
                    attempt = len(seen)
                status, payload = route(self.path, body, attempt)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        httpd = serve_locally(Handler)
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}", seen

    yield start
    for httpd in servers:
        stop(httpd)


def _pooling(rows: list[list[float]], tokens: int = len(TOKENS)) -> dict[str, Any]:
    return {
        "id": "pool-1",
        "object": "list",
        "data": [{"index": 0, "object": "pooling", "data": rows}],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _run(spec: str, texts: list[str]) -> tuple[list[float], list[Candidate], Context]:
    ctx = Context(backend=ScriptedBackend())
    candidates = [Candidate(text=text) for text in texts]
    scores = asyncio.run(SCORERS.build(spec).score(PROBLEM, candidates, ctx))
    return scores, candidates, ctx


def test_one_row_per_step(server: Any) -> None:
    url, seen = server(lambda path, body, attempt: (200, _pooling([[0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])))
    scores, candidates, ctx = _run(f"prm-http:{url}/v1,model=prm,parameters=1000", [SOLUTION, ""])
    assert scores == [pytest.approx(0.3), 0.0]
    [(path, body)] = seen
    assert path == "/pooling" and body["model"] == "prm"
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant"]
    assert (
        body["messages"][2]["content"]
        == "add: 2 + 3 = 5<extra_0>subtract: 5 - 4 = 1<extra_0>the answer is 1<extra_0>"
    )
    line = ctx.ledger.lines["scorer:prm-http"]
    assert (line.calls, line.prompt_tokens, line.flops) == (1, len(TOKENS), 2 * 1000 * len(TOKENS))
    assert candidates[0].scoring_usage.prompt_tokens == len(TOKENS)


def test_one_row_per_token_picks_the_separators(server: Any) -> None:
    def route(path: str, body: dict[str, Any], attempt: int) -> tuple[int, dict[str, Any]]:
        if path == "/tokenize":
            tokens = [SEPARATOR_ID] if body.get("prompt") == "<extra_0>" else TOKENS
            return 200, {"tokens": tokens, "count": len(tokens), "max_model_len": 4096}
        return 200, _pooling(PER_TOKEN)

    url, seen = server(route)
    scorer = SCORERS.build(f"prm-http:{url},aggregate=mean")
    [steps] = asyncio.run(
        scorer.score_steps(PROBLEM, [SOLUTION.split("\n\n")], Context(backend=ScriptedBackend()))
    )
    assert steps == pytest.approx([0.9, 0.6, 0.7])
    tokenize = [body for path, body in seen if path == "/tokenize"]
    assert (
        tokenize[0]["messages"] == seen[0][1]["messages"] or tokenize[1]["messages"] == seen[0][1]["messages"]
    )
    assert "model" not in seen[0][1]


def test_logits_are_softmaxed_when_asked(server: Any) -> None:
    url, _ = server(lambda path, body, attempt: (200, _pooling([[0.0, 0.0], [0.0, 2.0], [1.0, 0.0]])))
    scores, _, _ = _run(f"prm-http:{url},softmax=true,aggregate=product", [SOLUTION])
    sigmoid = lambda x: 1 / (1 + 2.718281828459045**-x)  # noqa: E731
    assert scores == [pytest.approx(0.5 * sigmoid(2.0) * sigmoid(-1.0))]


def test_retries_then_succeeds(server: Any) -> None:
    def route(path: str, body: dict[str, Any], attempt: int) -> tuple[int, dict[str, Any]]:
        return (503, {"error": "busy"}) if attempt < 3 else (200, _pooling([[0, 1], [0, 1], [0.5, 0.5]]))

    url, seen = server(route)
    scores, _, _ = _run(f"prm-http:{url},backoff=0.01", [SOLUTION])
    assert scores == [0.5] and len(seen) == 3


def test_gives_up_after_bounded_retries(server: Any) -> None:
    url, seen = server(lambda path, body, attempt: (503, {"error": "down"}))
    with pytest.raises(BackendUnavailableError) as caught:
        _run(f"prm-http:{url},backoff=0.01,max_retries=2", [SOLUTION])
    assert caught.value.attempts == 3 and len(seen) == 3 and "503" in caught.value.cause
    assert caught.value.url == f"{url}/pooling"


def test_a_rejected_request_is_not_retried(server: Any) -> None:
    url, seen = server(lambda path, body, attempt: (400, {"error": "bad"}))
    with pytest.raises(BackendError, match="rejected"):
        _run(f"prm-http:{url},backoff=0.01", [SOLUTION])
    assert len(seen) == 1


def test_an_unreachable_server_is_reported() -> None:
    with pytest.raises(BackendUnavailableError):
        _run("prm-http:http://127.0.0.1:9,backoff=0.01,max_retries=1", [SOLUTION])


def test_rows_that_fit_neither_shape_are_an_error(server: Any) -> None:
    def route(path: str, body: dict[str, Any], attempt: int) -> tuple[int, dict[str, Any]]:
        if path == "/tokenize":
            return 200, {"tokens": [SEPARATOR_ID] if body.get("prompt") else TOKENS}
        return 200, _pooling([[0.5, 0.5]] * 5)

    url, _ = server(route)
    with pytest.raises(BackendError, match="neither one row per step"):
        _run(f"prm-http:{url}", [SOLUTION])
