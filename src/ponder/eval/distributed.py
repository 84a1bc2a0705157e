"""An eval run's units sharded over Ray workers: ``ponder eval --ray [ADDRESS]`` (extra ``ponder[ray]``).

One process fills one endpoint pool well; past that, the run's units go to Ray actors (Ray is what vLLM
itself scales with: no home-made cluster protocol). The driver plans the run as a local run does
(``pending_units``: the plan less what the store holds and what ``--reuse`` copies in) and hands units to
the workers, least busy first, in plan order. Each worker builds its own backend from a recipe (its own
endpoints: an embedded ``llama-server``, or one of several base URLs; or the same endpoints as every other
worker), loads the dataset itself, runs a unit as the local runner does (``unit_context``, the strategy,
``grade``, ``to_record``) and returns the record. Only the driver writes the store, one record per
finished unit, as it arrives, so ``--resume``, ``--reuse`` and the crash guarantees are the local run's:
a unit's record is in the store, or the unit is redone.

A worker that dies (killed, out of memory, its node lost) fails the units it held with ``RayActorError``;
the driver starts a replacement in its slot and sends those units again, to whichever live worker is least
busy. A record is written only when a worker returns it, so no unit is written twice and none is lost.
What a dead worker spent on units it never returned is in no record: its server billed it, as it bills the
units in flight when a local run is killed.

``--ray`` with no address starts a Ray instance on this machine bound to 127.0.0.1: Ray's servers (GCS,
raylet, each worker) listen on every interface unless Ray believes it runs alone on the machine, which
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` tells it. Seen with ``ss -ltnp`` (Ray 2.60, Linux): without it
every Ray server listened on ``*`` and advertised the machine's address; with it, on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ponder.backends.base import Backend
from ponder.backends.pool import Backends
from ponder.core.errors import BackendError, UsageError
from ponder.core.extras import import_extra
from ponder.eval.runner import (
    EvalConfig,
    EvalProgress,
    Unit,
    grade,
    pending_units,
    to_record,
    unit_context,
    write_summary,
)
from ponder.tasks.datasets import load_dataset

#: tells Ray it runs on one machine alone, so that it binds and advertises 127.0.0.1 (see the docstring)
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: a slot whose worker died this many times is given up (a unit that kills every worker stops the run)
MAX_RESTARTS = 3


@dataclass(frozen=True)
class BackendRecipe:
    """How worker ``index`` builds its backend: ``make_backend``'s arguments, pickled to the worker.

    With ``split``, worker i takes the i-th base URL (modulo their number) as its own endpoint; without
    it every worker balances over all of them. No base URL means the embedded model, one per worker.
    """

    model: str | None = None
    base_urls: tuple[str, ...] = ()
    api_key: str | None = None
    server: str | None = None
    parameters: float | None = None
    chat_template: str | None = None
    max_in_flight: str | int | None = None
    split: bool = False

    def __call__(self, index: int) -> Backend:
        from ponder.backends import make_backend

        urls = self.base_urls
        if self.split and urls:
            urls = (urls[index % len(urls)],)
        return make_backend(
            self.model,
            list(urls) or None,
            self.api_key,
            self.server,
            self.parameters,
            self.chat_template,
            self.max_in_flight,
        )


class UnitWorker:
    """A Ray actor's body: one backend, the dataset and a pool of other models, for many units at once."""

    def __init__(self, index: int, dataset: str, budget: str | None, recipe: Callable[[int], Backend]):
        self.dataset = load_dataset(dataset)
        self.budget = budget
        self.backend = recipe(index)
        self.backends = Backends()

    async def ready(self) -> tuple[int, int]:
        """Start the backend; return this process's id and the samples its backend takes in flight."""
        await self.backend.start()
        return os.getpid(), self.backend.in_flight_limit()

    async def run(self, unit: Unit) -> tuple[dict[str, Any], int]:
        """The unit's record, and the samples the backend takes in flight now (an adaptive limit moves)."""
        ctx = unit_context(unit, self.dataset, self.backend, self.backends, self.budget)
        result = await unit.strategy.solve(unit.problem, ctx)
        marks, correct = await grade(self.dataset, unit.problem, result)
        return to_record(unit, result, marks, correct), self.backend.in_flight_limit()

    async def close(self) -> None:
        await self.backends.close()
        await self.backend.close()


@dataclass
class _Slot:
    """One worker position: its current actor, what that actor holds, and how often it was replaced."""

    index: int
    actor: Any = None
    pid: int = 0
    capacity: int = 1
    load: int = 0
    restarts: int = 0
    replacing: asyncio.Task[None] | None = None


@dataclass
class RayWorkers:
    """``workers`` Ray actors running units for one driver, replaced when they die.

    ``address``: a running cluster's (``ray start --head`` printed it), or None for a Ray instance on
    this machine bound to 127.0.0.1. ``actor_options`` go to Ray as they are (``num_gpus=1`` to give each
    worker a GPU for its embedded server, say).
    """

    recipe: Callable[[int], Backend]
    dataset: str
    budget: str | None = None
    workers: int = 2
    address: str | None = None
    actor_options: dict[str, Any] = field(default_factory=dict)
    #: units sent again after their worker died, and workers replaced (what the tests and logs read)
    resent: int = 0
    replaced: int = 0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError(f"--ray-workers must be at least 1, got {self.workers}")
        self._slots = [_Slot(index) for index in range(self.workers)]
        self._room = asyncio.Condition()
        self._queue: list[object] = []
        self._owns_ray = False

    @property
    def pids(self) -> list[int]:
        """The process ids of the live workers (a test kills one)."""
        return [slot.pid for slot in self._slots if slot.actor is not None]

    async def start(self) -> None:
        ray, self._owns_ray = connect(self.address, cpus=self.workers)
        self._actor_class = ray.remote(UnitWorker).options(**self.actor_options)
        await asyncio.gather(*(self._launch(slot) for slot in self._slots))

    async def _launch(self, slot: _Slot) -> None:
        slot.actor = self._actor_class.remote(slot.index, self.dataset, self.budget, self.recipe)
        slot.pid, slot.capacity = await _unwrapped(slot.actor.ready.remote())
        slot.capacity = max(1, slot.capacity)

    async def run(self, unit: Unit) -> dict[str, Any]:
        """The unit's record, from the least busy live worker; redone elsewhere if that worker dies."""
        ray = _ray()
        while True:
            async with self._hold(unit.samples) as slot:
                actor = slot.actor
                try:
                    record: dict[str, Any]
                    record, limit = await _unwrapped(actor.run.remote(unit))
                    slot.capacity = max(1, limit)
                    return record
                except ray.exceptions.RayActorError:
                    self.resent += 1
                    failed = actor
            await self._replace(slot, failed)

    @contextlib.asynccontextmanager
    async def _hold(self, samples: int) -> AsyncIterator[_Slot]:
        """Wait (first come, first served) for a live worker with room for ``samples``; hold it."""
        ticket = object()
        chosen: list[_Slot] = []

        def fits() -> bool:
            if self._queue[0] is not ticket:
                return False
            live = [slot for slot in self._slots if slot.actor is not None and slot.replacing is None]
            if not live and all(slot.actor is None for slot in self._slots):
                raise BackendError(f"every Ray worker died {MAX_RESTARTS} times; see the Ray logs")
            room = [s for s in live if s.load == 0 or s.load + min(samples, s.capacity) <= s.capacity]
            if room:
                chosen.append(min(room, key=lambda s: s.load / s.capacity))
            return bool(room)

        async with self._room:
            self._queue.append(ticket)
            try:
                await self._room.wait_for(fits)
            finally:
                self._queue.remove(ticket)
                self._room.notify_all()
            slot, amount = chosen[-1], min(samples, chosen[-1].capacity)
            slot.load += amount
        try:
            yield slot
        finally:
            async with self._room:
                slot.load -= amount
                self._room.notify_all()

    async def _replace(self, slot: _Slot, failed: Any) -> None:
        """Start a new actor in ``slot`` unless one already replaced ``failed``; give up after a few."""
        ray = _ray()
        async with self._room:
            if slot.actor is failed and slot.replacing is None:
                with contextlib.suppress(Exception):
                    ray.kill(failed, no_restart=True)
                slot.restarts += 1
                if slot.restarts > MAX_RESTARTS:
                    slot.actor = None
                else:
                    slot.replacing = asyncio.ensure_future(self._relaunch(slot))
            self._room.notify_all()

    async def _relaunch(self, slot: _Slot) -> None:
        try:
            await self._launch(slot)
            self.replaced += 1
        except Exception:  # the replacement failed to start: this slot is given up
            slot.actor = None
        finally:
            async with self._room:
                slot.replacing = None
                self._room.notify_all()

    async def close(self) -> None:
        ray = _ray()
        for slot in self._slots:
            if slot.replacing is not None:
                slot.replacing.cancel()
            if slot.actor is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(_unwrapped(slot.actor.close.remote()), 30)
                with contextlib.suppress(Exception):
                    ray.kill(slot.actor, no_restart=True)
                slot.actor = None
        if self._owns_ray:
            ray.shutdown()


def _ray() -> Any:
    return import_extra("ray", "ray", "ponder eval --ray")


async def _unwrapped(reference: Any) -> Any:
    """Await a Ray call; a worker's own error comes back as itself (a ``BackendError``, say), not
    wrapped in ``RayTaskError``, so the CLI maps it to its exit code and message as it does locally."""
    ray = _ray()
    try:
        return await reference
    except ray.exceptions.RayTaskError as error:
        raise error.as_instanceof_cause() from None


def connect(address: str | None, cpus: int) -> tuple[Any, bool]:
    """Ray, connected to ``address`` or to a new instance on this machine bound to 127.0.0.1, and whether
    this call connected it (then the caller disconnects; else whoever connected it does).

    Refuses to go on if a local instance would still advertise another address than 127.0.0.1 (Ray was
    imported before the loopback setting could apply).
    """
    if address is None:
        os.environ.setdefault(LOOPBACK_ENV, "0")  # read when Ray is imported
    ray = _ray()
    if ray.is_initialized():
        return ray, False
    if address is not None:
        ray.init(address=address, log_to_driver=False)
        return ray, True
    ray.init(
        address="local",
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    gcs = ray.get_runtime_context().gcs_address
    if not gcs.startswith("127.0.0.1:"):
        ray.shutdown()
        raise UsageError(
            f"a local Ray instance came up on {gcs}, not 127.0.0.1: set {LOOPBACK_ENV}=0 before Ray is "
            "imported, or start a cluster yourself and pass its address to --ray"
        )
    return ray, True


async def run_eval_on_ray(
    config: EvalConfig,
    workers: RayWorkers,
    directory: Path,
    resume: bool = False,
    console: Console | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """``run_eval`` with the units run by ``workers``: the same plan, store, resume and summary."""
    console = console or Console(stderr=True)
    _, todo, store = pending_units(config, directory, resume, console)
    progress = EvalProgress(len(todo), console, show_progress)

    async def work(unit: Unit) -> None:
        record = await workers.run(unit)
        await store.commit(record)  # the driver alone writes the store (group commit, as a local run)
        progress.advance(unit.identity, record)

    try:
        await workers.start()
        with progress.progress:
            tasks = [asyncio.create_task(work(unit)) for unit in todo]  # plan order: first come, first served
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await workers.close()
    return write_summary(directory, config)
