"""A real controller, its HTTP server and a real browser, for the dashboard's browser tests.

Everything runs on the test's event loop, as ``driftmend run`` runs it: the controller's
workers, uvicorn serving ``driftmend.dashboard.app`` (so the dashboard's actions reach the very
controller that reconciles), and Playwright driving Debian's chromium.

The stack: a small web app supervised on the ``process`` runtime (a health probe, a crash
policy, and a start-up delay so that "healing" lasts long enough to be seen), and a Redis
server filled past a policy's threshold whose remedy, ``redis_flush``, is destructive: the
controller parks that plan for an operator's approval. The app's policy escalates to the
replay planner (recorded answers, no model) in shadow mode, so "Ask the LLM" has a planner
to ask and what the rules cannot fix is recorded as the LLM would have fixed it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from fastapi import FastAPI
from playwright.async_api import Browser, Playwright, async_playwright

from driftmend.controller import Controller
from driftmend.dashboard.app import create_app
from driftmend.planners.replay import ReplayPlanner
from driftmend.spec import Container, LoadResult
from tests.integration.harness import REPO, down_all, load, running, write_specs
from tests.integration.harness import serving as harness_serving
from tests.services import RedisServer, free_port, running_redis

API = "driftmend.dev/v1alpha1"
TOKEN = "e2e-dashboard-token"
# Screenshots go to tests/artifacts/ (ignored by git) so that a test run leaves the checkout
# clean; `make screenshots` points this at docs/screenshots/ to refresh the README's pictures.
SCREENSHOTS = Path(
    os.environ.get("DRIFTMEND_SCREENSHOTS_DIR", REPO / "tests" / "artifacts" / "screenshots")
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# A web app that takes STARTUP seconds to listen, answers GET with 200 (500 and an ERROR
# line under /fail), and logs each request line as it came: a path can carry anything, which
# is the point of one test.
WEB = (
    "import http.server, os, sys, time\n"
    "time.sleep(float(os.environ.get('STARTUP', '0')))\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        if self.path.startswith('/fail'):\n"
    "            print('ERROR request failed:', self.path, flush=True)\n"
    "            self.send_response(500); self.end_headers(); return\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, fmt, *a): print('INFO', fmt % a, flush=True)\n"
    "print('INFO web listening', flush=True)\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
)


def specs(web_port: int, redis_port: int) -> list[dict[str, Any]]:
    """The web app, the cache, and a policy for each."""
    return [
        {
            "apiVersion": API,
            "kind": "Container",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "process": {"command": [sys.executable, "-c", WEB], "env": {"STARTUP": "1.5"}},
                "port": web_port,
                "portEnv": "PORT",
                "health": {
                    "http": {"path": "/healthz"},
                    "interval": "200ms",
                    "timeout": "500ms",
                    "failureThreshold": 2,
                },
            },
        },
        {
            "apiVersion": API,
            "kind": "RedisCache",
            "metadata": {"name": "cache", "labels": {"app": "web"}},
            "spec": {"host": "127.0.0.1", "port": redis_port},
        },
        {
            "apiVersion": API,
            "kind": "HealingPolicy",
            "metadata": {"name": "app-crash"},
            "spec": {
                "selector": {"kind": "Container", "matchLabels": {"app": "web"}},
                "rules": [
                    {
                        "name": "restart-on-exit",
                        "when": [{"signal": "container.running", "value": False}],
                        "do": [{"tool": "container_restart"}],
                        "verify": {"timeout": "20s", "interval": "100ms"},
                        "attempts": {"max": 10, "window": "5m"},
                    }
                ],
                # What no rule fixes (a failing health probe while the app starts) is asked
                # of the replay planner, and only recorded: the operator stays in charge.
                "escalate": {"planner": "replay", "mode": "shadow"},
            },
        },
        {
            "apiVersion": API,
            "kind": "HealingPolicy",
            "metadata": {"name": "cache-full"},
            "spec": {
                "selector": {"kind": "RedisCache"},
                "approval": "operator",  # redis_flush is destructive: a person decides
                "rules": [
                    {
                        "name": "flush-when-full",
                        "when": [
                            {"signal": "redis.memory_used_ratio", "operator": ">", "value": 0.5}
                        ],
                        "do": [{"tool": "redis_flush"}],
                        "verify": {"timeout": "10s", "interval": "100ms"},
                    }
                ],
            },
        },
    ]


@dataclass
class Stack:
    """What the browser tests reach for."""

    controller: Controller
    app: FastAPI
    url: str
    web_port: int
    redis: RedisServer
    result: LoadResult
    browser: Browser

    @property
    def web(self) -> Container:
        found = next(r for r in self.result.resources if r.key == "Container/web")
        assert isinstance(found, Container)
        return found


# The replay planner's recorded answer for the web app.
REPLAY = {
    "plans": [
        {
            "key": "Container/*",
            "reasoning": "The app's process is gone or its health probe fails: restart it.",
            "steps": [{"tool": "container_restart"}],
            "tokens_in": 812,
            "tokens_out": 64,
        }
    ]
}


def fill_redis(port: int) -> None:
    """Fill the 16 MiB cache past half (10 x 1 MiB): the flush policy's condition holds."""
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for i in range(10):
            client.set(f"page:{i}", b"x" * (1024 * 1024))
    finally:
        client.close()


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` on a free port of 127.0.0.1, on this event loop, until the block ends."""
    async with harness_serving(app) as port:
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian chromium through Playwright."""
    pw: Playwright = await async_playwright().start()
    try:
        chromium = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()
    finally:
        await pw.stop()


@contextlib.asynccontextmanager
async def stack(tmp: Path) -> AsyncIterator[Stack]:
    """The whole stack, torn down in reverse: browser, HTTP server, controller, processes."""
    web_port = free_port()
    with running_redis() as cache:
        fill_redis(cache.port)
        result = load(write_specs(tmp / "specs.yaml", specs(web_port, cache.port)))
        replay = tmp / "replay.json"
        replay.write_text(json.dumps(REPLAY))
        state = tmp / "state"
        try:
            async with running(
                state,
                result,
                dashboard_token=TOKEN,
                resync_period=1.0,
                log_poll_interval=0.2,
                planners={"replay": ReplayPlanner.from_file(replay)},
            ) as controller:
                app = create_app(
                    controller.store,
                    controller.metrics.registry,
                    controller.operations,
                    controller.settings,
                )
                async with serving(app) as url, browser() as chromium:
                    yield Stack(controller, app, url, web_port, cache, result, chromium)
        finally:
            await down_all(state, result)


def screenshot_path(name: str) -> Path:
    """Where a page's screenshot goes: tests/artifacts/screenshots/, or
    $DRIFTMEND_SCREENSHOTS_DIR (`make screenshots`: docs/screenshots/, shown by the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
