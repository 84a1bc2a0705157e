"""Process inspection for the tests that check nothing outlives a sandbox or a server."""

from __future__ import annotations

import time
from pathlib import Path


def live_processes_with(marker: str) -> list[int]:
    """Processes (zombies excluded) whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in command and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until_gone(marker: str, seconds: float = 5.0) -> list[int]:
    """Wait (bounded) for every process with ``marker`` to end; return those still alive."""
    deadline = time.monotonic() + seconds
    while (alive := live_processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
