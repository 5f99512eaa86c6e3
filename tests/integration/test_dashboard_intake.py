"""The dashboard server (uvicorn, as ``driftmend run`` serves it) turns away a flood it will
not read: issue 17's anonymous 200 MB POST, which used to be read whole before its token was
checked (the controller grew to 826 MB and ``/healthz`` stalled for seconds).

The uploads are raw sockets that stream a body slowly and count what they sent; no test
holds more than one chunk of it in memory. The answer must arrive while only a small part
has been sent: a server that read the body would answer after all 200 MB, or never.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from prometheus_client import CollectorRegistry

from driftmend.dashboard.app import create_app
from driftmend.settings import Settings
from driftmend.spec import LoadResult
from tests.integration.harness import running, serving

pytestmark = pytest.mark.integration

TOKEN = "intake-test-token"
LIMIT = 64 * 1024
CHUNK = 16 * 1024
HUGE = 200 * 2**20
# What "a small part" means: the socket buffers of loopback can hold a few MiB before a
# writer blocks, so an answer within this many bytes was sent before the server read more.
SMALL = 8 * 2**20


@dataclass
class Upload:
    """A POST whose body is streamed in chunks until the server answers or ``size`` is sent."""

    port: int
    path: str
    headers: dict[str, str]
    size: int
    sent: int = 0
    sent_at_answer: int | None = None
    status: int | None = None
    detail: bytes = b""

    async def run(self, halfway: asyncio.Event | None = None) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()) + "\r\n"
        writer.write(head.encode())
        chunked = "Transfer-Encoding" in self.headers
        sender = asyncio.create_task(self._send(writer, chunked, halfway))
        try:
            status_line = await asyncio.wait_for(reader.readline(), 30)
            self.sent_at_answer = self.sent
            self.status = int(status_line.split()[1])
            self.detail = await asyncio.wait_for(reader.read(4096), 10)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _send(
        self, writer: asyncio.StreamWriter, chunked: bool, halfway: asyncio.Event | None
    ) -> None:
        chunk = b"x" * CHUNK
        with contextlib.suppress(ConnectionError):  # the server may close once it answered
            while self.sent < self.size:
                frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                writer.write(frame)
                await writer.drain()
                self.sent += len(chunk)
                if halfway is not None and self.sent >= LIMIT // 2:
                    halfway.set()
                # The slow client of the probe: a chunk per millisecond at most (16 MB/s),
                # so the whole 200 MB would take seconds; the answer must come long before.
                await asyncio.sleep(0.001)


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[int]:
    """The dashboard of a started controller (no resources), with a token, on a free port."""
    settings = Settings(state_dir=tmp_path, dashboard_token=TOKEN, dashboard_max_body=LIMIT)
    async with running(tmp_path, LoadResult([], []), dashboard_token=TOKEN) as controller:
        app = create_app(controller.store, CollectorRegistry(), controller.operations, settings)
        async with serving(app) as port:
            yield port


async def healthz(port: int) -> int:
    async with httpx2.AsyncClient(timeout=5) as client:
        return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code


async def test_an_anonymous_flood_is_refused_before_it_is_read(dashboard: int) -> None:
    upload = Upload(
        dashboard,
        "/api/fixes/trigger",
        {"Content-Type": "application/json", "Content-Length": str(HUGE)},
        HUGE,
    )
    flood = asyncio.create_task(upload.run())
    # The server answers others while the upload is open.
    assert await healthz(dashboard) == 200
    await asyncio.wait_for(flood, 30)
    assert upload.status == 401, upload.detail
    assert b"needs the dashboard token" in upload.detail
    assert upload.sent_at_answer is not None and upload.sent_at_answer < SMALL, upload.sent
    assert await healthz(dashboard) == 200


async def test_an_authorized_body_declared_over_the_limit_is_refused_unread(
    dashboard: int,
) -> None:
    upload = Upload(
        dashboard,
        "/api/fixes/trigger",
        {
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Content-Length": str(HUGE),
        },
        HUGE,
    )
    await asyncio.wait_for(upload.run(), 30)
    assert upload.status == 413, upload.detail
    assert b"DRIFTMEND_DASHBOARD_MAX_BODY" in upload.detail
    assert upload.sent_at_answer is not None and upload.sent_at_answer < SMALL


async def test_an_authorized_chunked_flood_is_cut_off_at_the_limit(dashboard: int) -> None:
    upload = Upload(
        dashboard,
        "/api/fixes/trigger",
        {
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
        HUGE,
    )
    halfway = asyncio.Event()
    flood = asyncio.create_task(upload.run(halfway))
    await asyncio.wait_for(halfway.wait(), 30)
    # Half the limit is in, the upload goes on: the server still answers others.
    assert await healthz(dashboard) == 200
    await asyncio.wait_for(flood, 30)
    assert upload.status == 413, upload.detail
    assert upload.sent_at_answer is not None and upload.sent_at_answer < LIMIT + SMALL
