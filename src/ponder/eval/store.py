"""An append-only JSONL store of finished work that survives ``kill -9``.

One line per finished (strategy, seed, problem[, budget]), flushed and fsync'd before the next starts,
so a crash loses at most the line being written. On load, a torn last line is cut off (and reported),
so appending after a crash starts on a clean line and ``--resume`` repeats nothing that finished.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"


def record_key(record: dict[str, Any]) -> tuple[str, int, str, int | None]:
    return (record["strategy"], int(record["seed"]), str(record["problem"]["id"]), record.get("budget"))


class RecordStore:
    def __init__(self, directory: Path, name: str = RECORDS):
        self.directory = directory
        self.path = directory / name
        self.dropped_lines = 0

    def load(self, repair: bool = False) -> list[dict[str, Any]]:
        """Every complete record; with ``repair``, truncate a torn tail so appends start clean."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        good_end = 0
        offset = 0
        self.dropped_lines = 0
        for line in data.splitlines(keepends=True):
            offset += len(line)
            if not line.endswith(b"\n"):  # the last line, cut mid-write (even if it happens to parse)
                self.dropped_lines += 1
                break
            try:
                records.append(json.loads(line))
            except ValueError:
                self.dropped_lines += 1
                continue
            good_end = offset
        if repair and good_end < len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())
        return records

    def append(self, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
