"""The execution scorer: exact fractions on honest code, and hostile snippets contained and reported.

Every hostile snippet is a candidate; the scorer must give it 0 with a reason, and the machine (and
this test process, which is the scorer's process) must be unharmed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from processes import live_processes_with, wait_until_gone

from ponder.backends.scripted import ScriptedBackend
from ponder.context import Context
from ponder.core.errors import UsageError
from ponder.core.types import Candidate, Problem
from ponder.scorers import SCORERS
from ponder.scorers.execution import ExecutionOptions, parse_tests, run_tests
from ponder.tasks.sandbox import run_python

ADD_TESTS = [
    "assert add(2, 3) == 5",
    "assert add(-1, 1) == 0",
    "assert add(0, 0) == 0",
    "assert add(2, 2) == 5",
]
PROBLEM = Problem(question="Write add(a, b).", id="add", metadata={"tests": ADD_TESTS})


def _fenced(code: str) -> str:
    return f"Here it is.\n\n```python\n{code}\n```\n"


def _score(
    spec: str, texts: list[str], problem: Problem = PROBLEM, script: Any = ("",)
) -> tuple[list[float], list[dict[str, Any]], Context]:
    events: list[dict[str, Any]] = []
    ctx = Context(backend=ScriptedBackend(script=script), on_event=lambda kind, data: events.append(data))
    candidates = [Candidate(text=text) for text in texts]
    scores = asyncio.run(SCORERS.build(spec).score(problem, candidates, ctx))
    return scores, events[-1]["results"], ctx


def test_score_is_the_fraction_of_given_tests_passed() -> None:
    right = _fenced("def add(a, b):\n    return a + b")
    wrong = _fenced("def add(a, b):\n    return a - b")
    scores, results, ctx = _score("tests", [right, wrong, "no code here"])
    assert scores == [0.75, 0.25, 0.0]
    assert results[0]["outcomes"] == ["passed", "passed", "passed", "AssertionError"]
    assert results[2]["reason"] == "no code block"
    assert ctx.ledger.lines["scorer:tests"].seconds > 0


def test_one_test_program_as_a_string() -> None:
    problem = Problem(question="add", metadata={"tests": "assert add(1, 2) == 3\nassert add(0, 5) == 5"})
    scores, _, _ = _score("tests", [_fenced("def add(a, b):\n    return a + b")], problem)
    assert scores == [1.0]


def test_given_tests_missing_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="metadata\\['tests'\\]"):
        _score("tests", [_fenced("x = 1")], Problem(question="add"))


def test_generated_tests_are_parsed_and_billed() -> None:
    reply = _fenced("import math\nassert add(1, 1) == 2\nassert add(2, 2) == 4\nassert add(1, 0) == 2")
    scores, results, ctx = _score(
        "tests:tests=generated,k=3", [_fenced("def add(a, b):\n    return a + b")], script=[reply]
    )
    assert scores == [pytest.approx(2 / 3)]
    assert len(results[0]["outcomes"]) == 3
    assert ctx.ledger.lines["scorer:tests"].calls == 1
    assert ctx.backend.requests[0].messages[0].content.startswith("Write 3 independent assert")


def test_parse_tests() -> None:
    reply = _fenced("from math import sqrt\nassert f(4) == sqrt(16)\nassert (\n    f(1) == 1\n)\nprint('x')")
    assert parse_tests(reply, 5) == [
        "from math import sqrt\nprint('x')\nassert f(4) == sqrt(16)",
        "from math import sqrt\nprint('x')\nassert (\n    f(1) == 1\n)",
    ]
    assert parse_tests(_fenced("assert f(1) == 1\nassert f(2 ==\nassert f(3) == 3"), 5) == [
        "assert f(1) == 1",
        "assert f(3) == 3",
    ]
    assert parse_tests("no block", 5) == []
    restated = _fenced("from typing import List\ndef f(x):\n    return 1\nassert f(2) == 2")
    assert parse_tests(restated, 5) == ["from typing import List\nassert f(2) == 2"]  # not the writer's f


# -- hostile snippets ---------------------------------------------------------------------------------

HOSTILE_OPTIONS = ExecutionOptions(timeout=2.0, memory_mb=256, workers=1)


def _hostile(code: str, timeout: float = 2.0) -> tuple[float, str]:
    started = time.monotonic()
    report = run_tests(code, ["assert True"], HOSTILE_OPTIONS.model_copy(update={"timeout": timeout}))
    assert time.monotonic() - started < timeout + 10
    [outcome] = report.outcomes
    return report.score, outcome.reason


def test_fork_bomb_is_bounded_and_killed_with_its_namespace() -> None:
    marker = f"ponder-bomb-{uuid.uuid4().hex}"
    # Bounded (2**7 = 128 processes) so that a failed containment cannot take the machine down. The
    # process limit (64) holds even when ponder runs as root: the run drops to a user of its own.
    code = (
        "import os, sys\n"
        "for _ in range(7):\n"
        "    os.fork()\n"
        "os.setsid()\n"
        f"os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])"
    )
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(_hostile, code)
        most = 0
        while not running.done():
            most = max(most, len(live_processes_with(marker)))
            time.sleep(0.05)
        score, reason = running.result()
    assert score == 0.0 and reason in (
        "timed out after 2s",
        "BlockingIOError: [Errno 11] Resource temporarily unavailable",
    )
    assert 0 < most < HOSTILE_OPTIONS.max_processes  # the bomb went off, within the limit...
    assert wait_until_gone(marker) == []  # ...and nothing of it is left


def test_infinite_loop_times_out() -> None:
    assert _hostile("while True:\n    pass", timeout=1.0) == (0.0, "timed out after 1s")


def test_memory_hog_fails() -> None:
    score, reason = _hostile("hog = []\nwhile True:\n    hog.append(bytearray(50 * 1024 * 1024))")
    assert score == 0.0 and reason == "MemoryError"


def test_writing_outside_the_working_directory_is_refused(tmp_path: Path) -> None:
    if not run_python("pass").files_isolated:
        pytest.skip(
            "this kernel refused a mount namespace: the sandbox cannot make the file system read-only"
        )
    targets = [tmp_path / "escaped.txt", Path("/root") / f"ponder-escaped-{uuid.uuid4().hex}.txt"]
    code = "".join(f"open({str(t)!r}, 'w').write('x')\n" for t in targets[:1])
    score, reason = _hostile(code)
    assert score == 0.0 and "Read-only file system" in reason
    score, reason = _hostile(f"open({str(targets[1])!r}, 'w').write('x')")
    assert score == 0.0 and "Read-only file system" in reason
    assert not any(t.exists() for t in targets)
    # the program's own directory stays writable
    assert _hostile("open('here.txt', 'w').write('x')\nassert open('here.txt').read() == 'x'") == (
        1.0,
        "passed",
    )


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    yield server
    server.close()


def test_opening_a_socket_fails(listener: socket.socket) -> None:
    if not run_python("pass").network_isolated:
        pytest.skip("this kernel refused a network namespace: the sandbox ran with the host's network")
    port = listener.getsockname()[1]
    score, reason = _hostile(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)")
    assert score == 0.0 and "OSError" in reason
    with pytest.raises(TimeoutError):
        listener.accept()


def test_killing_the_parent_does_not_kill_the_scorer() -> None:
    if not run_python("pass").pid_isolated:
        pytest.skip("this kernel refused a PID namespace: the program could signal the scorer's process")
    # The candidate's parent is the checks' process, process 1 of the PID namespace, which a signal from
    # inside cannot kill; the scorer's real process id names no process there.
    score, reason = _hostile(
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(5)"
    )
    assert (score, reason) == (0.0, "timed out after 2s")
    score, reason = _hostile(f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)")
    assert (score, reason) == (0.0, "ProcessLookupError: [Errno 3] No such process")
    # still here: this process is the scorer's


# -- cheats: a verdict comes from the harness, never from the candidate -----------------------------------

CHEATS = {
    "exit before the tests": "import os\nos._exit(0)",
    "exit hook": "import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(a, b):\n    return 7",
    "exception hook": (
        "import os, sys\nsys.excepthook = lambda *args: os._exit(0)\ndef add(a, b):\n    return 7"
    ),
    "always equal": (
        "class Anything(int):\n    def __eq__(self, other):\n        return True\n\n"
        "def add(a, b):\n    return Anything(7)"
    ),
    "always equal, not a number": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
        "def add(a, b):\n    return Anything()"
    ),
    "exit during the call": "import sys\ndef add(a, b):\n    sys.exit(0)",
}


@pytest.mark.parametrize("cheat", list(CHEATS))
def test_cheats_fail_every_test(cheat: str) -> None:
    scores, results, _ = _score(
        "tests", [_fenced(CHEATS[cheat]), _fenced("def add(a, b):\n    return a + b")]
    )
    assert scores == [0.0, 0.75], results[0]
