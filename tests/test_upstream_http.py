"""The pass-through's lean HTTP client: kept-alive connections, chunked replies, failures as httpx's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from ponder.server.upstream_http import UpstreamClient

Answer = Callable[[bytes], bytes | None]  # request bytes -> raw reply (None: close without answering)


async def serve(answer: Answer, close: bool = False) -> tuple[asyncio.Server, list[int]]:
    """A raw HTTP server on 127.0.0.1 (``close``: each connection closed after one reply); the list counts
    the connections it accepted."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                reply = answer(head + await reader.readexactly(length))
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def url_of(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


async def body_of(client: UpstreamClient, url: str, content: bytes = b"{}") -> tuple[int, bytes]:
    response = await client.post(url, content, {"content-type": "application/json"})
    try:
        return response.status_code, b"".join([chunk async for chunk in response.aiter_bytes()])
    finally:
        await response.aclose()


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    client = UpstreamClient(connect_timeout=2)
    yield client
    await client.aclose()


async def test_requests_reuse_one_kept_alive_connection(client: UpstreamClient) -> None:
    seen: list[bytes] = []
    server, connections = await serve(lambda request: seen.append(request) or ok(b'{"n": %d}' % len(seen)))
    async with server:
        for i in range(1, 4):
            assert await asyncio.wait_for(body_of(client, url_of(server), b'{"a": 1}'), 5) == (
                200,
                b'{"n": %d}' % i,
            )
    assert len(connections) == 1 and seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert seen[0].endswith(b'\r\n\r\n{"a": 1}') and b"content-type: application/json" in seen[0]


async def test_a_chunked_reply_is_read_whole(client: UpstreamClient) -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    server, _ = await serve(lambda request: chunked)
    async with server:
        assert await asyncio.wait_for(body_of(client, url_of(server)), 5) == (200, b"hello world")


async def test_a_stale_kept_alive_connection_is_retried_once_on_a_new_one(client: UpstreamClient) -> None:
    answers = iter([ok(b"first"), None, ok(b"second")])  # the server drops the kept connection
    server, connections = await serve(lambda request: next(answers))
    async with server:
        assert await asyncio.wait_for(body_of(client, url_of(server)), 5) == (200, b"first")
        assert await asyncio.wait_for(body_of(client, url_of(server)), 5) == (200, b"second")
    assert len(connections) == 2


async def test_failures_are_httpx_errors(client: UpstreamClient) -> None:
    server, _ = await serve(lambda request: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\ncut", close=True)
    closed_port = url_of(server)  # nothing listens there once the server is closed
    async with server:
        with pytest.raises(httpx.ReadError):  # closed mid-body
            await asyncio.wait_for(body_of(client, url_of(server)), 5)
    garbage, _ = await serve(lambda request: b"NOT HTTP AT ALL\r\n\r\n")
    async with garbage:
        with pytest.raises(httpx.RemoteProtocolError):
            await asyncio.wait_for(body_of(client, url_of(garbage)), 5)
    with pytest.raises(httpx.ConnectError):
        await asyncio.wait_for(body_of(client, closed_port), 5)
