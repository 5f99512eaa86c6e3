"""A small threaded HTTP server that answers POSTs from a script, for the LLM fakes.

Not a mock of a client: the real ``google-genai`` and ``openai`` clients talk HTTP to it on
127.0.0.1, so retries, timeouts and JSON decoding run exactly as in production. Each fake
(``gemini_server``, ``openai_server``) routes and formats; this module queues the scripted
replies, records every request, and can hold a reply back to provoke a client timeout.

A reply held back waits on an event that ``stop()`` sets, so a test never waits for a slow
reply to finish before it can shut the server down.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived, to see backoff

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, body (bytes, or JSON-ready data), headers, delay."""

    status: int = 200
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to hold the answer back (a client timeout shorter than it fires)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


Responder = Callable[[Request], Reply]
Router = Callable[[Request, "ScriptedServer"], Reply]


class ScriptedServer:
    """Serves ``router``'s replies on a free port of 127.0.0.1, in a background thread."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._script: deque[Reply | Responder] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[Request] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *replies: Reply | Responder) -> None:
        """Queue replies (or functions of the request that make one), answered in order."""
        with self._lock:
            self._script.extend(replies)

    def next_reply(self, request: Request) -> Reply | None:
        """The next scripted reply for ``request``, or None when the script is used up."""
        with self._lock:
            item = self._script.popleft() if self._script else None
        if item is None or isinstance(item, Reply):
            return item
        return item(request)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        with self._lock:
            return len(self._script)

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs and clients use

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )  # fmt: skip
                with server._lock:
                    server.requests.append(request)
                reply = server._router(request, server)
                if reply.delay and server._stopping.wait(reply.delay):
                    return  # the server stops: drop the held-back reply
                body = reply.encoded()
                try:
                    self.send_response(reply.status)
                    headers = {"content-type": "application/json", **reply.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away: what a timeout test wants

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: pytest shows what a failing test needs

        return Handler


@contextmanager
def serving(router: Router) -> Iterator[ScriptedServer]:
    """A started server, stopped on exit."""
    server = ScriptedServer(router).start()
    try:
        yield server
    finally:
        server.stop()
