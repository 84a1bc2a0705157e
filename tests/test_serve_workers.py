"""``ponder serve --workers N``: forked processes serve one port; refused where it cannot work."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from conftest import completion

from ponder.backends.embedded.backend import embedded_backend
from ponder.cli.main import main
from ponder.core.errors import UsageError
from ponder.server import ServerSettings, Upstream
from ponder.server.run import serve


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_workers_serve_one_port_and_stop_together(fake_openai_server) -> None:
    fake = fake_openai_server(lambda body, attempt: (200, completion(["hi"]), {}))
    port = free_port()
    command = [sys.executable, "-m", "ponder.cli.main", "serve", "--upstream", f"m={fake.url}"]
    server = subprocess.Popen([*command, "--port", str(port), "--workers", "2", "--log-level", "warning"])
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        workers = [int(pid) for pid in os.popen(f"pgrep -P {server.pid}").read().split()]
        assert len(workers) == 2
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        with httpx.Client(trust_env=False, timeout=10) as client:
            replies = [
                client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) for _ in range(20)
            ]
        assert [r.status_code for r in replies] == [200] * 20 and len(fake.bodies) == 20
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)  # stopped and reaped


def test_workers_are_refused_below_one_and_for_the_embedded_model(capsys) -> None:
    assert main(["serve", "--upstream", "m=http://127.0.0.1:9/v1", "--workers", "0"]) != 0
    assert "--workers must be at least 1" in capsys.readouterr().err
    embedded = Upstream("local", embedded_backend())
    with pytest.raises(UsageError, match="embedded model takes one worker"):
        serve("127.0.0.1", free_port(), [embedded], ServerSettings(), workers=2)
