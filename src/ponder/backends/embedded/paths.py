"""Where the embedded backend keeps what it downloads and builds, and a lock to share it safely.

Models (hundreds of MB) and the compiled ``llama-server`` (ten minutes of compiling) are expensive to
make, so they live in the user's cache directory and are reused by every later run. Several ponder
processes may start at once (parallel test runs, a server and a CLI), so whoever makes something
holds an exclusive file lock while the others wait and then reuse the result.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def cache_dir() -> Path:
    """Return ponder's cache directory, creating it on demand.

    ``$PONDER_CACHE_DIR`` wins (tests and shared machines point it elsewhere), then the XDG base
    directory convention (``$XDG_CACHE_HOME/ponder``), then ``~/.cache/ponder``.
    """
    explicit = os.environ.get("PONDER_CACHE_DIR")
    if explicit:
        directory = Path(explicit).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        directory = base / "ponder"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextlib.contextmanager
def exclusive_lock(lock_path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` for the duration of the block.

    The lock dies with the process (the kernel releases it), so a crashed holder never blocks later
    runs. ``on_wait`` is called once when another process holds the lock, so the caller can say why
    it is waiting instead of appearing to hang.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
