"""One backend over several endpoints serving the same model: replicas, load-balanced.

Users with many GPUs run one vLLM or SGLang server per GPU (or node) and give ponder every URL
(``--base-url`` repeated). Each request goes to the replica with the fewest samples outstanding for
its in-flight limit (each endpoint keeps its own limit, adaptive or fixed), so a faster replica, whose
limit grows, takes more. Requests for several samples from a server that does not honour ``n`` are
split first, so that their samples spread over the replicas.

A replica that fails a request after its own retries (unreachable, timed out, 5xx, malformed reply) is
skipped for ``cooldown`` seconds and the request is sent to another one: a generation has no side
effect and a failed attempt returns no usage to bill, so sending it again is safe. A refusal (4xx) is
the request's fault, not the replica's, and propagates at once, as does a cancellation. Usage is what
the replica that answered reports, so billing is unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ponder.backends.base import Backend, Capabilities, Generation, GenRequest
from ponder.core.errors import BackendFailedError, BackendProtocolError, BackendUnavailableError, UsageError

#: a failure that says the replica, not the request, is at fault: the request may go to another one
REPLICA_FAULTS = (BackendUnavailableError, BackendFailedError, BackendProtocolError)
#: seconds a replica that failed is skipped (then tried again with real traffic)
DEFAULT_COOLDOWN = 10.0


@dataclass
class ReplicaBackend(Backend):
    """Several backends of one model as one; build it with :meth:`of`."""

    replicas: list[Backend] = field(default_factory=list)
    cooldown: float = DEFAULT_COOLDOWN

    @classmethod
    def of(cls, replicas: Sequence[Backend], cooldown: float = DEFAULT_COOLDOWN) -> ReplicaBackend:
        """The replicas as one backend: their model, size and capabilities (slots added up)."""
        if not replicas:
            raise UsageError("replicas: give at least one backend")
        models = {replica.model for replica in replicas}
        if len(models) > 1:
            raise UsageError(f"replicas must serve one model, got {sorted(models)}")
        first = replicas[0]
        slots = sum(replica.capabilities.max_concurrency for replica in replicas)
        return cls(
            model=first.model,
            parameters=first.parameters,
            capabilities=Capabilities(**{**first.capabilities.__dict__, "max_concurrency": slots}),
            replicas=list(replicas),
            cooldown=cooldown,
        )

    def __post_init__(self) -> None:
        self._outstanding = [0] * len(self.replicas)
        self._down_until = [0.0] * len(self.replicas)

    def in_flight_limit(self) -> int:
        return sum(replica.in_flight_limit() for replica in self.replicas)

    async def start(self) -> None:
        await asyncio.gather(*(replica.start() for replica in self.replicas))

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.close()

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        return list(await asyncio.gather(*(self._one(request) for request in requests)))

    async def _one(self, request: GenRequest) -> list[Generation]:
        if request.n == 1 or self.capabilities.honours_n:
            return await self._route(request)
        seeds = [None if request.seed is None else request.seed + i for i in range(request.n)]
        singles = await asyncio.gather(*(self._route(request.with_(n=1, seed=s)) for s in seeds))
        return [generation for batch in singles for generation in batch]

    async def _route(self, request: GenRequest) -> list[Generation]:
        """Send to the least loaded healthy replica; on a replica's fault, mark it down and try another."""
        tried: set[int] = set()
        while True:
            index = self._pick(tried)
            tried.add(index)
            self._outstanding[index] += request.n
            try:
                return (await self.replicas[index].generate([request]))[0]
            except REPLICA_FAULTS:
                self._down_until[index] = time.monotonic() + self.cooldown
                if len(tried) == len(self.replicas):
                    raise
            finally:
                self._outstanding[index] -= request.n

    def _pick(self, tried: set[int]) -> int:
        """The untried replica with the fewest samples outstanding per slot of its limit, healthy ones
        first (when every one is down, the one that comes back soonest)."""
        now = time.monotonic()
        untried = [i for i in range(len(self.replicas)) if i not in tried]
        healthy = [i for i in untried if self._down_until[i] <= now]
        if not healthy:
            return min(untried, key=lambda i: self._down_until[i])
        return min(healthy, key=lambda i: (self._outstanding[i] + 1) / self.replicas[i].in_flight_limit())
