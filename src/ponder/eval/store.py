"""An append-only JSONL store of finished work that survives ``kill -9`` and power loss.

One line per finished (strategy, seed, problem[, budget]). A unit counts as finished only once its line
is on disk: ``commit`` returns after the fsync that covers it. Records committed while a write is under
way wait for the next one, which takes them all in one write and one fsync (group commit), so a run
finishing many units a second pays a few fsyncs a second instead of one per unit (an fsync per record
was 5% of an eval's client CPU, issue 19) and the event loop never waits on the disk. A crash loses only
records whose commit had not returned, and ``--resume`` redoes exactly those. On load, a torn last line
is cut off (and reported), so appending after a crash starts on a clean line. ``append`` writes one
record at once, for callers outside an event loop.
"""

from __future__ import annotations

import asyncio
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
        #: lines handed to ``commit`` and not yet written, each with the future its caller awaits
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

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
        """Write one record and fsync it before returning."""
        self._write(_line(record))

    async def commit(self, record: dict[str, Any]) -> None:
        """Append ``record``; return once it is on disk, sharing the write and fsync of its batch.

        A caller cancelled while waiting does not stop the write: the record may still be stored, which
        is harmless (it was finished), but only a returned commit promises it is.
        """
        future = asyncio.get_running_loop().create_future()
        self._pending.append((_line(record), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_pending())
        await asyncio.shield(future)

    async def _write_pending(self) -> None:
        """Write what is pending in batches until nothing is, each batch off the event loop."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, b"".join(line for line, _ in batch))
            except BaseException as error:  # every waiter learns why (a full disk, a cancelled run)
                batch, self._pending = batch + self._pending, []
                cancelled = isinstance(error, asyncio.CancelledError)
                for _, future in batch:
                    if future.done():
                        continue
                    if cancelled:
                        future.cancel()
                    else:
                        future.set_exception(error)
                if cancelled:
                    raise
                return
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write(self, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()
