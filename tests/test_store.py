"""The append-only store: torn tails after a crash are cut, nothing finished is lost."""

from __future__ import annotations

import json
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
