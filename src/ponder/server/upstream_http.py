"""A lean HTTP/1.1 client for pass-through: kept-alive connections, one write per request, httptools.

Pass-through costs the server one upstream exchange per request, and through httpx that exchange was
most of the server's CPU (2-3 ms per request on 2 cores, measured by benchmarks/client_ceiling.py): its
pool checks every connection, with a system call each, for every request, and writes headers and body
apart. Here a request is one write on an idle connection of its upstream, and the reply is parsed by
httptools (the parser uvicorn uses) as it arrives; bodies are read as they come, with reading paused
while a reader lags, so a large or streamed answer is never held whole unless the caller asks.

Failures raise httpx's exceptions (``ConnectError``, ``ConnectTimeout``, ``ReadError``,
``RemoteProtocolError``), so the proxy maps them to the same 502s and 504s as before. A kept-alive
connection that the upstream had closed is retried once on a new one when it failed before any byte of
the reply came (the request never reached the upstream); nothing else is retried.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools
import httpx

#: reply bytes buffered ahead of the reader before the connection stops reading
HIGH_WATER = 1 << 20


class _Connection(asyncio.Protocol):
    """One connection to an upstream, carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reset()
        self.lost: Exception | None = None

    def reset(self) -> None:
        self.status = 0
        self.keep_alive = False
        self.header_pairs: list[tuple[bytes, bytes]] = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.received_any = False
        self.complete = False
        self.headers_done = asyncio.Event()
        self.readable = asyncio.Event()
        self.paused = False

    # -- asyncio.Protocol -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, without subclassing it

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(httpx.RemoteProtocolError("upstream switched protocols"))
        except httptools.HttpParserError as error:
            self.fail(httpx.RemoteProtocolError(f"malformed HTTP from upstream: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete:
            self.fail(
                httpx.ReadError(
                    "upstream closed the connection mid-answer"
                    if self.received_any
                    else "upstream closed the connection without answering"
                )
            )
        self.lost = self.lost or httpx.ReadError("connection closed")

    # -- httptools callbacks --------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_pairs.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # only known while the message is parsed
        self.headers_done.set()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        self.readable.set()
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True
        self.headers_done.set()
        self.readable.set()

    # -- the exchange ---------------------------------------------------------------------------------
    def fail(self, error: Exception) -> None:
        self.lost = error
        self.headers_done.set()
        self.readable.set()
        if self.transport is not None:
            self.transport.close()

    def reusable(self) -> bool:
        return (
            self.lost is None
            and self.complete
            and self.transport is not None
            and not self.transport.is_closing()
            and self.keep_alive
        )

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            while self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                yield chunk
            if self.complete:
                return
            if self.lost is not None:
                raise self.lost
            self.readable.clear()
            await self.readable.wait()


class UpstreamResponse:
    """A reply whose headers came; its body is read with ``aiter_bytes`` and it must be ``aclose``d."""

    def __init__(self, client: UpstreamClient, origin: tuple[str, int], connection: _Connection) -> None:
        self._client, self._origin, self._connection = client, origin, connection
        self.status_code = connection.status
        self.headers = httpx.Headers(connection.header_pairs)
        self._closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._connection.body():
            yield chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client._release(self._origin, self._connection)


class UpstreamClient:
    """Kept-alive connections per upstream origin (``max_idle`` of each kept), for POSTs of JSON."""

    def __init__(self, connect_timeout: float = 10.0, max_idle: int = 64) -> None:
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], list[_Connection]] = collections.defaultdict(list)
        self._targets: dict[str, tuple[tuple[str, int], bytes, bytes]] = {}

    async def post(self, url: str, content: bytes, headers: dict[str, str]) -> UpstreamResponse:
        """Send ``content`` to ``url`` and return once the reply's headers came."""
        origin, host, path = self._target(url)
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
        head = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (path, host, len(content))
        message = head + extra + b"\r\n" + content
        for attempt in range(2):
            connection, reused = await self._connection(origin)
            try:
                return await self._exchange(origin, connection, message)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                if not (reused and not connection.received_any and attempt == 0):
                    raise
            except BaseException:
                connection.fail(httpx.ReadError("exchange abandoned"))
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self, origin: tuple[str, int], connection: _Connection, message: bytes
    ) -> UpstreamResponse:
        assert connection.transport is not None
        connection.transport.write(message)
        await connection.headers_done.wait()
        if connection.lost is not None:
            raise connection.lost
        return UpstreamResponse(self, origin, connection)

    def _target(self, url: str) -> tuple[tuple[str, int], bytes, bytes]:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise httpx.UnsupportedProtocol(f"pass-through speaks plain http, not {parts.scheme}")
            port = parts.port or 80
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.netloc.rpartition("@")[2]
            target = self._targets[url] = ((parts.hostname, port), host.encode(), path.encode())
        return target

    async def _connection(self, origin: tuple[str, int]) -> tuple[_Connection, bool]:
        idle = self._idle[origin]
        while idle:
            connection = idle.pop()
            if connection.transport is not None and not connection.transport.is_closing():
                connection.reset()
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(_Connection, *origin)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection within {self.connect_timeout:g} s") from None
        except OSError as error:
            raise httpx.ConnectError(str(error) or type(error).__name__) from None
        return protocol, False

    def _release(self, origin: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle[origin]
        if connection.reusable() and len(idle) < self.max_idle:
            idle.append(connection)
        elif connection.transport is not None:
            connection.transport.close()

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                if connection.transport is not None:
                    connection.transport.close()
        self._idle.clear()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
