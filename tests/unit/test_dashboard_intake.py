"""What the dashboard checks before it reads a body, and the ids it answers without the store.

The app is called as ASGI directly, with a receive channel that counts what it hands out,
so "refused before one body byte is read" is an observed fact, not an inference from the
status code. Issue 17: an anonymous 200 MB POST used to be read and parsed whole before
its token was checked, and an id past SQLite's range was a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from driftmend.dashboard.api.common import action_router, read_router
from driftmend.dashboard.app import create_app
from driftmend.dashboard.dependencies import require_action
from driftmend.dashboard.fragments import fragment_router
from driftmend.dashboard.intake import MAX_BODY_ENV, NOT_ACTIONS, READ_METHODS
from driftmend.dashboard.pages import login_router, page_router
from driftmend.dashboard.record_ids import MAX_ID
from driftmend.settings import Settings
from driftmend.store import Store
from tests.unit.test_dashboard_api import ACTIONS, AUTH, BASE, TOKEN, FakeController, make_app

LIMIT = 64 * 1024


@dataclass
class Exchange:
    """One request sent straight to the ASGI app: what it pulled of the body, what it sent."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    pulled: int = 0  # body bytes the app took from the receive channel

    @property
    def detail(self) -> Any:
        return json.loads(self.body)["detail"]


async def exchange(
    app: FastAPI,
    method: str,
    path: str,
    headers: dict[str, str],
    chunks: Iterator[bytes],
) -> Exchange:
    """Send ``method path`` with ``headers`` and a body of ``chunks`` (pulled lazily, one per
    receive), as a server would: the app sees the body only if it asks for it."""
    out = Exchange()
    raw = [
        (k.lower().encode(), v.encode()) for k, v in ({"Host": "127.0.0.1:8080"} | headers).items()
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }

    async def receive() -> dict[str, Any]:
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        out.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out.status = message["status"]
            out.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            out.body += message.get("body", b"")

    await app(scope, receive, send)
    return out


def endless(size: int = 1024, total: int = 8 * 2**20) -> Iterator[bytes]:
    """A body far over any limit (8 MiB, in 1 KiB chunks): a refused request pulls none of
    it, a limited one stops within a chunk of the limit. Finite, so that without the limit
    a test fails on what was pulled rather than hanging."""
    for _ in range(total // size):
        yield b"x" * size


def declared(n: int) -> dict[str, str]:
    return {"content-type": "application/json", "content-length": str(n)}


@pytest.fixture
def controller(store: Store) -> FakeController:
    return FakeController(store)


@pytest.fixture
def store(tmp_path: Any) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as s:
        yield s


# --- the action gate runs on headers ----------------------------------------------------------


@pytest.mark.parametrize(("path", "body"), ACTIONS)
async def test_an_action_without_the_token_is_refused_before_its_body_is_read(
    store: Store, controller: FakeController, path: str, body: dict[str, Any]
) -> None:
    app = make_app(store, controller)
    for headers in ({}, {"Authorization": "Bearer nope"}):
        # 200 MB declared, and a body that never ends: an answer at all proves it unread.
        r = await exchange(app, "POST", path, headers | declared(200 * 2**20), endless())
        assert (r.status, r.pulled) == (401, 0)
        assert r.headers["www-authenticate"] == "Bearer"
        assert "needs the dashboard token" in r.detail
        # The same security headers as every other answer.
        assert "content-security-policy" in r.headers
        chunked = await exchange(app, "POST", path, headers, endless())
        assert (chunked.status, chunked.pulled) == (401, 0)
    assert controller.calls == []


@pytest.mark.parametrize(("path", "body"), ACTIONS)
async def test_no_configured_token_and_cross_site_are_refused_before_the_body(
    store: Store, controller: FakeController, path: str, body: dict[str, Any]
) -> None:
    untokened = make_app(store, controller, token=None)
    r = await exchange(untokened, "POST", path, AUTH, endless())
    assert (r.status, r.pulled) == (403, 0)
    assert "DRIFTMEND_DASHBOARD_TOKEN=" in r.detail
    app = make_app(store, controller)
    evil = await exchange(app, "POST", path, AUTH | {"Origin": "http://evil.example"}, endless())
    assert (evil.status, evil.pulled) == (403, 0)
    rebound = await exchange(
        app, "POST", path, AUTH | {"Host": "evil.example"} | declared(10), endless()
    )
    assert rebound.status == 403 and rebound.pulled == 0
    assert controller.calls == []


async def test_any_write_is_gated_even_to_a_read_route_or_no_route(store: Store) -> None:
    app = make_app(store, None)
    for method, path in (("POST", "/api/fixes"), ("PUT", "/api/fixes/1"), ("DELETE", "/nope")):
        r = await exchange(app, method, path, {}, endless())
        assert (r.status, r.pulled) == (401, 0), (method, path)
    # With the token it is told what the router says: no such method, no such path.
    assert (await exchange(app, "POST", "/api/fixes", AUTH, iter([b""]))).status == 405
    assert (await exchange(app, "DELETE", "/nope", AUTH, iter([b""]))).status == 404


def _routes(router: APIRouter) -> list[tuple[str, set[str]]]:
    return [(r.path, set(r.methods or ())) for r in router.routes]  # type: ignore[attr-defined]


def test_every_write_route_is_an_action_or_a_known_exception() -> None:
    # The middleware gates every method but READ_METHODS, except NOT_ACTIONS: this keeps the
    # routers agreeing with it, so a new write route is declared an action or listed there.
    assert any(d.dependency is require_action for d in action_router.dependencies)
    for path, methods in _routes(action_router):
        assert methods and not methods & READ_METHODS, path
    writes = {
        (path, method)
        for router in (read_router, page_router, fragment_router, login_router)
        for path, methods in _routes(router)
        for method in methods - READ_METHODS
    }
    assert writes == {(path, "POST") for path in NOT_ACTIONS}


async def test_an_authorized_action_under_the_limit_goes_through(
    store: Store, controller: FakeController
) -> None:
    app = make_app(store, controller)
    body = json.dumps({"actor": "alice"}).encode()
    r = await exchange(
        app, "POST", "/api/resources/Container.shop/pause", AUTH | declared(len(body)), iter([body])
    )
    assert r.status == 200 and r.pulled == len(body)
    assert controller.calls == [("pause", "Container/shop", "dashboard:alice")]


# --- the body limit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/api/fixes/trigger", AUTH),
        ("POST", "/login", {}),
        ("GET", "/api/fixes", {}),
        ("GET", "/healthz", {}),
    ],
)
async def test_a_declared_length_over_the_limit_is_413_before_reading(
    store: Store, controller: FakeController, method: str, path: str, headers: dict[str, str]
) -> None:
    app = make_app(store, controller)
    r = await exchange(app, method, path, headers | declared(LIMIT + 1), endless())
    assert (r.status, r.pulled) == (413, 0)
    assert str(LIMIT) in r.detail and MAX_BODY_ENV in r.detail
    assert controller.calls == []
    bad = await exchange(app, method, path, headers | {"content-length": "lots"}, endless())
    assert (bad.status, bad.pulled) == (400, 0)


@pytest.mark.parametrize(("path", "headers"), [("/api/fixes/trigger", AUTH), ("/login", {})])
async def test_a_chunked_body_is_cut_off_once_over_the_limit(
    store: Store, controller: FakeController, path: str, headers: dict[str, str]
) -> None:
    app = make_app(store, controller)
    # No Content-Length: the body is counted as it arrives, and the endless one is stopped.
    r = await exchange(app, "POST", path, headers | {"content-type": "application/json"}, endless())
    assert r.status == 413 and MAX_BODY_ENV in r.detail
    assert LIMIT < r.pulled <= LIMIT + 1024
    assert controller.calls == []


def test_the_limit_is_the_setting_and_its_variable_is_the_one_named(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_BODY_ENV, "2048")
    settings = Settings(dashboard_token=TOKEN)
    assert settings.dashboard_max_body == 2048
    app = create_app(store, CollectorRegistry(), FakeController(store), settings)
    json_auth = AUTH | {"Content-Type": "application/json"}
    with TestClient(app, base_url=BASE) as c:
        fits = c.post(
            "/api/resources/Container.shop/pause", headers=json_auth, content=b"{}" + b" " * 2046
        )
        assert fits.status_code == 200
        over = c.post("/api/resources/Container.shop/pause", headers=json_auth, content=b" " * 2049)
        assert over.status_code == 413 and "2048 bytes" in over.json()["detail"]


# --- ids out of range are missing records -----------------------------------------------------

ID_ROUTES = [
    ("GET", "/api/fixes/{}", "no fix"),
    ("POST", "/api/fixes/{}/retry", "no fix"),
    ("GET", "/api/plans/{}", "no pending plan"),
    ("POST", "/api/plans/{}/approve", "no pending plan"),
    ("POST", "/api/plans/{}/reject", "no pending plan"),
    ("GET", "/api/llm/interactions/{}", "no LLM interaction"),
    ("GET", "/api/jobs/{}", "no job"),
    ("GET", "/fixes/{}", "no fix"),
    ("GET", "/llm/{}", "no LLM interaction"),
    ("GET", "/fragments/fixes/{}", "no fix"),
]
OUT_OF_RANGE = ["0", "-1", str(MAX_ID + 1), "99999999999999999999", "-" + "9" * 30, "9" * 5000]


@pytest.mark.parametrize(("method", "template", "missing"), ID_ROUTES)
def test_ids_out_of_range_are_404_like_a_missing_record(
    store: Store, controller: FakeController, method: str, template: str, missing: str
) -> None:
    with TestClient(make_app(store, controller), base_url=BASE) as c:
        for rid in [*OUT_OF_RANGE, str(MAX_ID)]:  # the largest id is in range, and missing
            r = c.request(method, template.format(rid), headers=AUTH, json={})
            assert r.status_code == 404, (template, rid[:30], r.text[:300])
            text = (
                r.json()["detail"]
                if r.headers["content-type"].startswith("application/json")
                else r.text
            )
            assert f"{missing} {rid[:20]}" in text, (template, text[:300])
        # Not a number at all stays FastAPI's validation error.
        assert c.request(method, template.format("abc"), headers=AUTH, json={}).status_code == 422
    # Only the id in range reached the controller (reject asks it whether the plan exists).
    assert all(call[1] == MAX_ID for call in controller.calls), controller.calls
