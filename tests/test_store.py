"""The append-only store: torn tails after a crash are cut, nothing finished is lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ponder.eval.store import RecordStore, record_key


def record(i: int) -> dict:
    return {"strategy": "greedy", "seed": 0, "budget": None, "problem": {"id": f"p{i}"}, "correct": True}


def test_append_and_load_round_trip(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    for i in range(3):
        store.append(record(i))
    assert [record_key(r) for r in store.load()] == [("greedy", 0, f"p{i}", None) for i in range(3)]


def test_torn_tail_is_dropped_and_repaired(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.append(record(0))
    store.append(record(1))
    with store.path.open("a") as handle:
        handle.write(json.dumps(record(2))[:25])  # killed mid-write
    assert len(store.load()) == 2 and store.dropped_lines == 1
    store.load(repair=True)
    store.append(record(2))
    lines = store.path.read_text().splitlines()
    assert [json.loads(line)["problem"]["id"] for line in lines] == ["p0", "p1", "p2"]


def test_complete_json_without_newline_is_redone(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.append(record(0))
    with store.path.open("a") as handle:
        handle.write(json.dumps(record(1)))  # the newline never made it to disk
    assert [r["problem"]["id"] for r in store.load(repair=True)] == ["p0"]
    store.append(record(1))
    assert len(store.load()) == 2


async def test_commits_share_fsyncs_and_return_only_once_synced(tmp_path: Path, monkeypatch) -> None:
    store = RecordStore(tmp_path)
    synced: list[int] = []
    first = threading.Event()
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        if not synced:
            first.wait(5)  # the first batch's fsync is slow: later commits pile up behind it
        real_fsync(descriptor)
        synced.append(len(store.path.read_text().splitlines()))

    monkeypatch.setattr(os, "fsync", fsync)
    early = [asyncio.create_task(store.commit(record(i))) for i in range(10)]
    await asyncio.sleep(0.05)
    late = [asyncio.create_task(store.commit(record(i))) for i in range(10, 40)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in early + late)  # written perhaps, but not yet synced
    first.set()
    await asyncio.wait_for(asyncio.gather(*early, *late), 5)
    assert synced == [10, 40]  # two fsyncs for 40 records: the 30 that waited went together
    assert [r["problem"]["id"] for r in store.load()] == [f"p{i}" for i in range(40)]


async def test_a_failed_write_fails_its_commits(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").mkdir()  # the store's path is a directory: every write fails
    store = RecordStore(tmp_path)
    results = await asyncio.gather(*(store.commit(record(i)) for i in range(3)), return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results)


CRASHING_WRITER = """
import asyncio, sys
from pathlib import Path
from ponder.eval.store import RecordStore

async def worker(store, first):
    for i in range(first, first + 2000):  # bounded: the child ends by itself if never killed
        record = {"strategy": "s", "seed": 0, "budget": None, "problem": {"id": f"p{i}"}, "pad": "x" * 5000}
        await store.commit(record)
        print(i, flush=True)  # acknowledged: on disk

async def main():
    store = RecordStore(Path(sys.argv[1]))
    await asyncio.gather(*(worker(store, w * 2000) for w in range(16)))

asyncio.run(main())
"""


def test_a_crash_loses_no_acknowledged_record_and_resume_redoes_the_rest(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged = {f"p{child.stdout.readline().strip()}" for _ in range(300)}
    child.send_signal(signal.SIGKILL)  # mid-run: batches written, half-written and pending
    child.wait(10)
    store = RecordStore(tmp_path)
    stored = [r["problem"]["id"] for r in store.load(repair=True)]
    assert acknowledged <= set(stored) and len(stored) == len(set(stored))
    redo = [i for i in range(32000) if f"p{i}" not in set(stored)][:5]  # what --resume would redo
    for i in redo:
        store.append(record(i))
    assert len(store.load()) == len(stored) + len(redo) and store.dropped_lines == 0
