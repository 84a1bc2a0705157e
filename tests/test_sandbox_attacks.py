"""Attacks on the sandbox's verdicts and isolation: faked HumanEval passes, other processes' command
lines, a fork bomb as root, and a run that outlives the task that awaited it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

import pytest
from processes import live_processes_with, wait_until_gone

from ponder.core.types import Problem
from ponder.tasks.datasets import load_dataset
from ponder.tasks.sandbox import Limits, arun_checks, run_python

HUMANEVAL_IDS = [
    "HumanEval/0",
    "HumanEval/2",
    "HumanEval/32",
    "HumanEval/38",
    "HumanEval/53",
    "HumanEval/111",
]

CHEATS = {
    "exit before the tests": "import os\nos._exit(0)\n",
    "exit hook after a failing assert": "import atexit, os\natexit.register(lambda: os._exit(0))\n",
    "exception hook that exits 0": "import os, sys\nsys.excepthook = lambda *args: os._exit(0)\n",
    "exit in the call": "import sys\n",
}


@pytest.fixture(scope="module")
def humaneval() -> tuple[object, dict[str, Problem]]:
    dataset = load_dataset("humaneval")
    return dataset, {problem.id: problem for problem in dataset.problems() if problem.id in HUMANEVAL_IDS}


def _whole_function(problem: Problem, body: str) -> str:
    """A full function for ``problem`` with ``body`` (already indented) after its signature."""
    dataset_prompt = problem.question.split("```python\n", 1)[1].rsplit("\n```", 1)[0]
    return f"{dataset_prompt}\n{body}"


def test_canonical_solutions_pass_and_wrong_ones_fail(humaneval) -> None:
    dataset, problems = humaneval
    assert sorted(problems) == sorted(HUMANEVAL_IDS)
    for problem in problems.values():
        assert dataset.grade(problem, problem.reference, problem.reference), problem.id
        assert not dataset.grade(problem, "    return None\n", "    return None\n"), problem.id


@pytest.mark.parametrize("cheat", list(CHEATS))
def test_exit_tricks_fail_humaneval(humaneval, cheat: str) -> None:
    dataset, problems = humaneval
    problem = problems["HumanEval/53"]  # add(x, y)
    call = "    import sys\n    sys.exit(0)\n" if cheat == "exit in the call" else "    return x - y\n"
    code = CHEATS[cheat] + _whole_function(problem, call)
    assert not dataset.grade(problem, code, code)


@pytest.mark.parametrize("base", ["int", "object", "list"])
def test_a_value_that_equals_anything_fails_humaneval(humaneval, base: str) -> None:
    dataset, problems = humaneval
    problem = problems["HumanEval/53"]
    anything = f"class Anything({base}):\n    def __eq__(self, other):\n        return True\n\n"
    code = anything + _whole_function(problem, "    return Anything()\n")
    assert not dataset.grade(problem, code, code)


def test_a_subclass_value_is_compared_by_its_plain_value(humaneval) -> None:
    dataset, problems = humaneval
    problem = problems["HumanEval/53"]
    honest = "class Number(int):\n    pass\n\n" + _whole_function(problem, "    return Number(x + y)\n")
    assert dataset.grade(problem, honest, honest)


def test_the_candidate_cannot_replace_a_helper_the_tests_use(humaneval) -> None:
    dataset, problems = humaneval
    problem = problems["HumanEval/38"]  # decode_cyclic; its tests encode with the prompt's encode_cyclic
    code = "def encode_cyclic(s: str):\n    return s\n\n\ndef decode_cyclic(s: str):\n    return s\n"
    assert not dataset.grade(problem, code, code)


def test_other_processes_command_lines_are_unreadable() -> None:
    marker = f"ponder-secret-{uuid.uuid4().hex}"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "--api-key", marker])
    try:
        code = (
            "import os\nfound = []\nfor entry in os.listdir('/proc'):\n"
            "    try:\n        found.append(open(f'/proc/{entry}/cmdline', 'rb').read())\n"
            "    except OSError:\n        pass\n"
            f"print(any({marker.encode()!r} in line for line in found), len(found))"
        )
        result = run_python(code, timeout=5.0)
        if not result.proc_isolated:
            pytest.skip("this kernel refused a PID namespace: the program sees the host's /proc")
        assert result.ok and result.stdout.startswith("False ")
        assert live_processes_with(marker) == [sleeper.pid]  # it was there to be found
    finally:
        sleeper.kill()
        sleeper.wait()


def test_runs_as_an_unprivileged_user() -> None:
    result = run_python("import os\nprint(os.getuid(), os.getgid(), os.getgroups())")
    uid, gid, groups = result.stdout.split(" ", 2)
    assert result.ok and result.unprivileged
    assert int(uid) != 0 and int(gid) != 0 and groups.strip() == "[]"


def test_the_process_limit_holds_even_as_root() -> None:
    code = (
        "import os, time\nstarted = 0\ntry:\n    for _ in range(40):\n"
        "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n"
        "        started += 1\nexcept OSError:\n    pass\nprint(started)"
    )
    started = time.monotonic()
    result = run_python(code, timeout=5.0, max_processes=8)
    assert result.ok and int(result.stdout) < 8
    assert time.monotonic() - started < 5


def test_cancelling_the_task_kills_the_run_at_once() -> None:
    marker = f"ponder-cancel-{uuid.uuid4().hex}"
    candidate = (
        f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'while True: pass', {marker!r}])"
    )

    cancelled_at: list[float] = []

    async def scenario() -> None:
        task = asyncio.ensure_future(arun_checks(candidate, "assert True", limits=Limits(timeout=30.0)))
        deadline = time.monotonic() + 5
        while not live_processes_with(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert live_processes_with(marker), "the run did not start"
        task.cancel()
        cancelled_at.append(time.monotonic())
        with pytest.raises(asyncio.CancelledError):
            await task
        assert wait_until_gone(marker, seconds=1.0) == []

    asyncio.run(scenario())  # returns only once the default executor's threads have ended
    assert time.monotonic() - cancelled_at[0] < 1.0  # so no thread kept waiting on the run
