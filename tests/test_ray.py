"""``ponder eval --ray``: units sharded over Ray workers, the driver alone writing the store.

Ray runs on this machine only, bound to 127.0.0.1: ``ponder.eval.distributed.connect`` sets
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` before Ray is imported. Checked by hand with ``ss -ltnp`` while a
local Ray instance with two actors ran (Ray 2.60, Linux, 2026-12-02): with the setting every Ray process
(gcs_server, raylet, both actors, the driver) listened on ``[::ffff:127.0.0.1]:PORT`` and the runtime-env
agent on ``127.0.0.1:PORT``; without it the same processes listened on ``*:PORT`` (every interface) and
the instance advertised the machine's address, even with ``_node_ip_address="127.0.0.1"``.
``test_ray_listens_on_loopback_only`` asserts the same from /proc for every process this test started.
The workers talk to a fake OpenAI-compatible server on 127.0.0.1 that answers slowly enough for a kill to
land mid-run.

Bounded: one local Ray instance for the module (4 CPUs), 16 units of 4 samples per run, every wait with a
deadline; the module takes about a minute on 2 busy cores.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed (pip install 'ponder[ray]')", allow_module_level=True)

from conftest import FakeServer, completion  # noqa: E402

from ponder.core.errors import BackendError  # noqa: E402
from ponder.eval import distributed  # noqa: E402
from ponder.eval.distributed import BackendRecipe, RayWorkers, run_eval_on_ray  # noqa: E402
from ponder.eval.runner import EvalConfig, plan  # noqa: E402
from ponder.eval.store import RecordStore, record_key  # noqa: E402
from ponder.tasks.datasets import load_dataset  # noqa: E402

PROBLEMS = 16
REPLY_SECONDS = 0.4
DEADLINE = 120.0
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray, owned = distributed.connect(None, cpus=4)
    assert owned, "another test left Ray running"
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    path = tmp_path / "problems.jsonl"
    rows = [
        {"id": f"q{i}", "question": f"What is {i} + {i}? (q{i})", "answer": str(2 * i)} for i in range(16)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return f"jsonl:{path}"


@pytest.fixture
def slow_server(fake_openai_server: Callable[..., FakeServer]) -> FakeServer:
    """Answers each request after REPLY_SECONDS with the right boxed answer, n choices of it."""

    def handler(body: dict[str, Any], attempt: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        if "messages" not in body:  # /tokenize: the choices carry logprobs, so none is needed
            return 404, {"error": {"message": "not found"}}, {}
        time.sleep(REPLY_SECONDS)
        question = body["messages"][-1]["content"]
        number = int(question.split("What is ")[1].split(" +")[0])
        n = body.get("n", 1)
        return 200, completion([f"\\boxed{{{2 * number}}}"] * n, logprobs=[[-0.1, -0.2, -0.3]] * n), {}

    return fake_openai_server(handler)


def config_for(dataset: str) -> EvalConfig:
    return EvalConfig(dataset=dataset, strategies=["self-consistency"], budgets=[4], model="m")


def recipe_for(server: FakeServer) -> BackendRecipe:
    # one unit (4 samples) in flight per worker, so a worker holds a unit whenever it is killed
    return BackendRecipe(model="m", base_urls=(server.url,), server="vllm", max_in_flight=4)


def stored(directory: Path) -> list[dict[str, Any]]:
    return RecordStore(directory).load() if (directory / "records.jsonl").exists() else []


def planned_keys(config: EvalConfig) -> set[Any]:
    return {unit.key for unit in plan(config, load_dataset(config.dataset).problems())}


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def listening_addresses(pids: set[int]) -> list[str]:
    """The local addresses of the listening TCP sockets that ``pids`` hold (hex, as /proc shows them)."""
    inodes = set()
    for pid in pids:
        with _suppress_os():
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with _suppress_os():
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    addresses.append(fields[1].split(":")[0])
    return addresses


class _suppress_os:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: object, trace: object) -> bool:
        return isinstance(error, OSError)


LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_recipe_gives_each_worker_its_own_endpoint_or_all_of_them() -> None:
    shared = BackendRecipe(model="m", base_urls=("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"))
    assert {backend.base_url for backend in shared(0).replicas} == set(shared.base_urls)  # type: ignore[attr-defined]
    split = BackendRecipe(model="m", base_urls=shared.base_urls, split=True)
    assert split(0).base_url == "http://127.0.0.1:1/v1"  # type: ignore[attr-defined]
    assert split(3).base_url == "http://127.0.0.1:2/v1"  # type: ignore[attr-defined]


def test_ray_listens_on_loopback_only(ray_address: str) -> None:
    assert ray_address.startswith("127.0.0.1:")
    addresses = listening_addresses(descendants(os.getpid()))
    assert addresses, "found none of Ray's listening sockets"
    assert set(addresses) <= LOOPBACK, addresses


async def test_a_killed_worker_has_its_units_redone_elsewhere_once(
    ray_address: str, dataset: str, slow_server: FakeServer, tmp_path: Path
) -> None:
    config = config_for(dataset)
    directory = tmp_path / "run"
    workers = RayWorkers(recipe_for(slow_server), dataset, workers=2)
    killed: list[int] = []

    async def kill_one_mid_run() -> None:
        await wait_for(lambda: len(stored(directory)) >= 3 and len(workers.pids) == 2, "three records")
        killed.append(workers.pids[0])
        os.kill(killed[0], signal.SIGKILL)

    killer = asyncio.create_task(kill_one_mid_run())
    summary = await asyncio.wait_for(
        run_eval_on_ray(config, workers, directory, show_progress=False), DEADLINE
    )
    await killer
    records = stored(directory)
    keys = [record_key(record) for record in records]
    assert len(keys) == len(set(keys)) == PROBLEMS  # every unit once: none lost, none twice
    assert set(keys) == planned_keys(config)
    assert all(record["correct"] for record in records)
    assert workers.resent >= 1 and workers.replaced == 1  # the dead worker held a unit; it was replaced
    assert summary["run"]["problems"] == PROBLEMS
    # every sample the server answered for a stored record was billed in it, and only the killed worker's
    # unfinished units were asked twice
    billed = sum(len(record["candidates"]) for record in records)
    assert billed == PROBLEMS * 4 <= len(slow_server.bodies) * 4


_DRIVER = """
import asyncio, sys
from pathlib import Path
from ponder.eval.distributed import BackendRecipe, RayWorkers, run_eval_on_ray
from ponder.eval.runner import EvalConfig
address, dataset, url, directory = sys.argv[1:]
config = EvalConfig(dataset=dataset, strategies=["self-consistency"], budgets=[4], model="m")
recipe = BackendRecipe(model="m", base_urls=(url,), server="vllm", max_in_flight=4)
workers = RayWorkers(recipe, dataset, workers=2, address=address)
asyncio.run(run_eval_on_ray(config, workers, Path(directory), show_progress=False))
"""


async def test_resume_after_a_driver_crash_repeats_nothing(
    ray_address: str, dataset: str, slow_server: FakeServer, tmp_path: Path
) -> None:
    config = config_for(dataset)
    directory = tmp_path / "run"
    environment = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, ray_address, dataset, slow_server.url, str(directory)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(driver.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        await wait_for(lambda: len(stored(directory)) >= 4 or driver.poll() is not None, "four records")
        assert driver.poll() is None, f"the driver ended early: {b''.join(errors).decode()[-2000:]}"
        driver.send_signal(signal.SIGKILL)  # the crash: no cleanup, records half written at most
    finally:
        driver.kill()
        driver.wait(30)
    before = {record_key(record) for record in stored(directory)}
    assert 4 <= len(before) < PROBLEMS
    finished_questions = {record["problem"]["question"] for record in stored(directory)}
    asked_before_resume = len(slow_server.bodies)

    workers = RayWorkers(recipe_for(slow_server), dataset, workers=2)
    await asyncio.wait_for(
        run_eval_on_ray(config, workers, directory, resume=True, show_progress=False), DEADLINE
    )
    keys = [record_key(record) for record in stored(directory)]
    assert len(keys) == len(set(keys)) == PROBLEMS and set(keys) == planned_keys(config)
    since = slow_server.bodies[asked_before_resume:]
    asked_since = [body["messages"][-1]["content"] for body in since if "messages" in body]
    assert not finished_questions & set(asked_since)  # nothing finished was asked again


async def test_a_workers_error_comes_back_as_itself(
    ray_address: str, dataset: str, fake_openai_server: Callable[..., FakeServer], tmp_path: Path
) -> None:
    server = fake_openai_server(lambda body, attempt: (400, {"error": {"message": "bad request"}}, {}))
    workers = RayWorkers(recipe_for(server), dataset, workers=1)
    with pytest.raises(BackendError, match="400"):
        await asyncio.wait_for(
            run_eval_on_ray(config_for(dataset), workers, tmp_path / "run", show_progress=False), DEADLINE
        )


def test_ponder_eval_ray_runs_the_command_on_workers(
    ray_address: str, dataset: str, slow_server: FakeServer, tmp_path: Path
) -> None:
    from ponder.cli.main import main

    directory = tmp_path / "run"
    arguments = ["eval", "--dataset", dataset, "--strategy", "self-consistency", "--budgets", "4"]
    arguments += ["--base-url", slow_server.url, "--model", "m", "--server", "vllm", "--max-in-flight", "4"]
    assert main([*arguments, "--ray", "--ray-workers", "2", "--out", str(directory)]) == 0
    keys = [record_key(record) for record in stored(directory)]
    assert len(keys) == len(set(keys)) == PROBLEMS
    assert (directory / "summary.json").exists()
