"""Progress of a long task that reads well on a terminal and in a log.

A rich progress bar redraws one line in place: on a terminal that is what a person wants, but piped into
a file or a CI log it shows nothing until the end (or one final frame), so a ten-minute build or an
hour-long eval looks hung. ``TaskProgress`` therefore draws the live bar only on a terminal; anywhere
else it prints one plain line every ``PONDER_PROGRESS_INTERVAL`` seconds (default 30) with the amount
done, the current step, the elapsed time and an estimate of what is left. Either way the caller ends
with ``done("built llama-server")``, which prints how long the whole task took.

This module is a leaf below every layer (it imports nothing from ponder), so the embedded backend's
build and assembly, the eval and the command line share one display.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

#: seconds between plain progress lines when the output is not a terminal
INTERVAL_ENV = "PONDER_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0

#: what ``completed`` and ``total`` count: items (units, candidates), a percentage, or bytes
Kind = Literal["count", "percent", "bytes"]


def progress_interval() -> float:
    """Seconds between plain progress lines: ``$PONDER_PROGRESS_INTERVAL``, else 30; 0 turns them off."""
    value = os.environ.get(INTERVAL_ENV, "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_INTERVAL
    return seconds if seconds >= 0 else DEFAULT_INTERVAL


def format_duration(seconds: float) -> str:
    """``9m12s``, ``45s``, ``1h02m``: short enough for a progress line, exact enough for a build."""
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def format_bytes(count: float) -> str:
    """Decimal units, as ``ponder models`` prints sizes: ``150 MB``, ``1.12 GB``."""
    if count >= 1e9:
        return f"{count / 1e9:.2f} GB"
    if count >= 1e6:
        return f"{count / 1e6:.0f} MB"
    return f"{count / 1e3:.0f} kB"


def _columns(kind: Kind, total: float | None) -> list[str | ProgressColumn]:
    columns: list[str | ProgressColumn] = [TextColumn("{task.description}"), BarColumn()]
    if kind == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    elif kind == "percent":
        columns.append(TaskProgressColumn())
    elif total is not None:
        columns.append(MofNCompleteColumn())
    columns.append(TimeElapsedColumn())
    if total is not None:
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    columns.append(TextColumn("{task.fields[status]}"))
    return columns


class TaskProgress:
    """One long task: a live bar on a terminal, a plain line every interval elsewhere, a closing line.

    ``kind`` says what ``completed`` counts (``unit`` names the items of a ``count``); ``total`` may be
    None when the amount of work is unknown (a configure step, a search). A ``transient`` bar is erased
    when it stops (the result printed next says it all). ``clock`` and ``background`` exist for tests:
    with ``background=False`` no thread prints lines, and ``tick()`` does it on demand.
    """

    def __init__(
        self,
        console: Console,
        label: str,
        total: float | None = None,
        *,
        kind: Kind = "count",
        unit: str = "",
        quiet: bool = False,
        interval: float | None = None,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        transient: bool = False,
    ):
        self.console, self.label, self.total, self.kind, self.unit = console, label, total, kind, unit
        self.quiet = quiet
        self.interval = progress_interval() if interval is None else interval
        self.live = (console.is_terminal and not console.is_dumb_terminal) if live is None else live
        self.clock, self.background = clock, background
        self.completed = 0.0
        self.step = ""
        self.status = ""
        self.started = clock()
        self._last_line = self.started
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = Progress(
            *_columns(kind, total),
            console=console,
            disable=quiet or not self.live,
            get_time=clock,
            transient=transient,
        )
        self._task = self._bar.add_task(self._description(), total=total, status="")

    # -- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> TaskProgress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the clock, and the live bar or the thread that prints plain lines."""
        self.started = self._last_line = self.clock()
        self._bar.reset(self._task, total=self.total, completed=int(self.completed))
        if self.quiet:
            return
        if self.live:
            self._bar.start()
        elif self.background and self.interval > 0:
            self._thread = threading.Thread(target=self._run_ticker, name="ponder-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the bar or the thread (the bar's last frame stays on the terminal unless transient)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._bar.stop()

    def _run_ticker(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            self.tick()

    # -- reporting ------------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def update(
        self,
        completed: float | None = None,
        *,
        advance: float = 0,
        label: str | None = None,
        step: str | None = None,
        status: str | None = None,
        total: float | None = None,
    ) -> None:
        """Record progress; any argument left out keeps its value."""
        with self._lock:
            if completed is not None:
                self.completed = completed
            self.completed += advance
            if label is not None:
                self.label = label
            if step is not None:
                self.step = step
            if status is not None:
                self.status = status
            if total is not None:
                self.total = total
        self._bar.update(
            self._task,
            completed=self.completed,
            total=self.total,
            description=self._description(),
            status=escape(self.status),
        )

    def tick(self) -> bool:
        """Print a plain line if one is due (not live, an interval has passed); say whether it did."""
        if self.quiet or self.live or self.interval <= 0:
            return False
        with self._lock:
            now = self.clock()
            if now - self._last_line < self.interval:
                return False
            self._last_line = now
            text = self.line()
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        return True

    def done(self, message: str) -> str:
        """Stop, and print ``MESSAGE in 9m12s`` (how long since ``start``); returns that line."""
        self.stop()
        text = f"{message} in {format_duration(self.elapsed)}"
        if not self.quiet:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        return text

    def line(self) -> str:
        """The plain progress line: ``LABEL: amount, step, status, 4m12s elapsed, ~5m left``."""
        parts = [part for part in (self._amount(), self.step, self.status) if part]
        parts.append(f"{format_duration(self.elapsed)} elapsed")
        left = self.remaining()
        if left is not None:
            parts.append(f"~{format_duration(left)} left")
        return f"{self.label}: " + ", ".join(parts)

    def remaining(self) -> float | None:
        """Seconds left at the rate so far (None before any progress, or with no total)."""
        if self.total is None or self.completed <= 0 or self.completed >= self.total:
            return None
        return self.elapsed * (self.total - self.completed) / self.completed

    def _amount(self) -> str:
        total = self.total
        if self.kind == "percent":
            return f"{self.completed:.0f}%" if total is not None else ""
        if self.kind == "bytes":
            done = format_bytes(self.completed)
            return done if total is None else f"{done}/{format_bytes(total)} ({self.completed / total:.0%})"
        unit = f" {self.unit}" if self.unit else ""
        if total is None:
            return f"{self.completed:.0f}{unit}" if self.completed else ""
        share = f" ({self.completed / total:.0%})" if total else ""
        return f"{self.completed:.0f}/{total:.0f}{unit}{share}"

    def _description(self) -> str:
        text = f"{self.label}: {self.step}" if self.step else self.label
        return escape(text)
