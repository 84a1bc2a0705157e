"""The execution sandbox: limits hold, and nothing it starts outlives it."""

from __future__ import annotations

import os
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator

import pytest
from processes import wait_until_gone

from ponder.tasks.sandbox import OUTPUT_LIMIT, run_python


def _sleeper(marker: str, new_session: bool = False) -> str:
    """Sandbox code that starts a child process sleeping for a minute, tagged with ``marker``."""
    return (
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}],"
        f" start_new_session={new_session})"
    )


def test_a_normal_run_returns_its_output() -> None:
    result = run_python("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert result.exit_code == 0 and result.ok
    assert result.stdout == "out\n" and result.stderr == "err\n"
    assert not result.timed_out and result.seconds < 5


def test_runs_in_a_fresh_directory_with_a_minimal_environment() -> None:
    first = run_python("import os; open('left.txt', 'w').write('x'); print(os.getcwd())")
    second = run_python("import os; print(os.listdir('.'), sorted(os.environ))")
    assert first.ok and second.ok
    assert "left.txt" not in second.stdout
    assert "PYTHONPATH" not in second.stdout and "HOME" in second.stdout


def test_an_exception_gives_a_nonzero_exit_and_its_traceback() -> None:
    result = run_python("raise ValueError('broken')")
    assert result.exit_code == 1 and not result.ok
    assert "ValueError: broken" in result.stderr


def test_an_infinite_loop_is_killed_at_the_timeout() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass", timeout=1.0)
    assert result.timed_out and not result.ok
    assert result.exit_code < 0
    assert time.monotonic() - started < 5


def test_child_processes_are_killed_with_the_group() -> None:
    marker = f"ponder-test-{uuid.uuid4().hex}"
    code = textwrap.dedent(f"""
        import subprocess, sys, time
        started = 0
        try:
            for _ in range(30):
                {_sleeper(marker)}
                started += 1
        except OSError:
            pass
        print(started, flush=True)
        time.sleep(60)
    """)
    result = run_python(code, timeout=2.0, max_processes=8)
    assert result.timed_out
    if os.geteuid() != 0:  # Linux does not apply RLIMIT_NPROC to root
        assert int(result.stdout) < 8
    assert wait_until_gone(marker) == []


def test_processes_left_behind_are_killed_after_a_normal_exit() -> None:
    marker = f"ponder-test-{uuid.uuid4().hex}"
    code = f"import subprocess, sys\n{_sleeper(marker)}\n{_sleeper(marker, new_session=True)}\nprint('done')"
    result = run_python(code, timeout=5.0)
    assert result.ok and result.stdout == "done\n"
    survivors = wait_until_gone(marker)
    if result.pid_isolated:
        assert survivors == []
    else:  # without a PID namespace, a child that left the process group escapes
        assert len(survivors) <= 1
        for pid in survivors:
            os.kill(pid, 9)


def test_a_memory_hog_fails() -> None:
    result = run_python("block = bytearray(2 * 1024**3)\nprint('allocated')", memory_mb=256)
    assert result.exit_code != 0
    assert "allocated" not in result.stdout
    assert "MemoryError" in result.stderr


def test_writing_a_huge_file_fails() -> None:
    code = "with open('big', 'wb') as f:\n    f.write(b'x' * (8 * 1024 * 1024))\nprint('written')"
    result = run_python(code, max_file_mb=1)
    assert result.exit_code != 0
    assert "written" not in result.stdout


def test_output_is_truncated() -> None:
    result = run_python(f"print('x' * {OUTPUT_LIMIT * 4})")
    assert result.ok
    assert len(result.stdout) < OUTPUT_LIMIT + 100
    assert "more bytes not shown" in result.stdout


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    yield server.getsockname()[1]
    server.close()


def test_no_network_when_isolated(listener: int) -> None:
    code = (
        f"import socket\nsocket.create_connection(('127.0.0.1', {listener}), timeout=3)\nprint('connected')"
    )
    result = run_python(code, timeout=5.0)
    if not result.network_isolated:
        pytest.skip("this kernel refused new network namespaces; the sandbox ran without one")
    assert "connected" not in result.stdout
    assert result.exit_code != 0 and "OSError" in result.stderr


def test_runs_from_several_threads_at_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda n: run_python(f"print({n} * 2)"), range(8)))
    assert [result.stdout for result in results] == [f"{n * 2}\n" for n in range(8)]
