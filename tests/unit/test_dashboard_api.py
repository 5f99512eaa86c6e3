"""The dashboard's JSON API, pages, gate and live stream, on a real store in a temporary file.

The controller is a small fake at the dashboard's ``Operations`` Protocol (its log window is
the real ``LogAccumulator``); everything it is asked to do is recorded, so each test checks
what an operator's action reached. The browser tests (tests/e2e) run the real controller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from driftmend.dashboard.app import close_streams, create_app
from driftmend.dashboard.dependencies import get_controller, get_store
from driftmend.dashboard.jobs import JobBoard
from driftmend.dashboard.stream import StoreView, Tracker, event_stream, read_store
from driftmend.dashboard.views import (
    describe_drift,
    downsample,
    drift_lines,
    format_value,
    key_of,
    llm_outcome,
    resource_id,
    root_cause_text,
    sanitize_actor,
    signal_changes,
    up_state,
)
from driftmend.errors import PermanentError
from driftmend.logs import LogAccumulator
from driftmend.model import (
    Drift,
    Health,
    LogLine,
    Outcome,
    Plan,
    PlanStep,
    ReconcileResult,
    ToolResult,
)
from driftmend.settings import Settings
from driftmend.store import Store
from tests.services import poll_until

TOKEN = "s3cret-token"
BASE = "http://127.0.0.1:8080"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
XSS = "<script>window.pwned=1</script>"


# --- fixtures ------------------------------------------------------------------------------


class FakeController:
    """The dashboard's view of a controller: resources, a log window, operator actions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.resources: dict[str, Any] = {
            "Container/shop": object(),
            "RedisCache/cache": object(),
            "PostgresDatabase/db": object(),  # declared, never observed
        }
        self.logs = LogAccumulator()
        self.calls: list[tuple[Any, ...]] = []

    @property
    def llm_ready(self) -> bool:
        return False  # rules only, as a controller without an API key

    async def analyze(self, key: str, actor: str) -> dict[str, Any]:
        raise PermanentError("no LLM planner is configured")

    async def trigger_fix(
        self, key: str, actor: str, detail: Mapping[str, Any] | None = None
    ) -> ReconcileResult:
        self.calls.append(("fix", key, actor))
        self.store.audit_records.record_action(key, "fix", actor, dict(detail or {}), time.time())
        return ReconcileResult(key, Outcome.IN_SYNC, "in sync")

    def set_paused(self, key: str, paused: bool, actor: str) -> None:
        self.calls.append(("pause" if paused else "resume", key, actor))
        self.store.resource_records.set_paused(key, paused)

    async def approve_plan(self, plan_id: int, actor: str) -> ReconcileResult:
        self.calls.append(("approve", plan_id, actor))
        if not self.store.pending_records.set_pending_status(
            plan_id, "executed", actor, time.time(), "pending"
        ):
            raise PermanentError(f"plan {plan_id} is not pending")
        return ReconcileResult("RedisCache/cache", Outcome.FIXED, "fixed: flushed", None, 9)

    def reject_plan(self, plan_id: int, actor: str) -> None:
        self.calls.append(("reject", plan_id, actor))
        found = self.store.pending_records.pending_plan(plan_id)
        if found is None:
            raise PermanentError(f"no pending plan {plan_id}")
        if not self.store.pending_records.set_pending_status(
            plan_id, "rejected", actor, time.time(), "pending"
        ):
            raise PermanentError(f"plan {plan_id} is {found['status']}, not pending")


class AnalyzingController(FakeController):
    """A controller with an LLM planner for the shop's policy (none for the cache's)."""

    @property
    def llm_ready(self) -> bool:
        return True

    async def analyze(self, key: str, actor: str) -> dict[str, Any]:
        self.calls.append(("analyze", key, actor))
        if key != "Container/shop":
            raise PermanentError(f"no LLM planner is configured for {key}'s policy")
        plan = crash_plan(time.time())
        iid = self.store.llm_records.record_llm_interaction(
            key, "replay", "replay", "p", "r", plan, 10, 5, 0.1, time.time()
        )
        self.store.llm_records.set_llm_outcome(
            iid, mode="shadow", decision="shadow", reason="recorded"
        )
        return {"interaction": iid, "decision": "shadow", "reason": "recorded", "plan": None}


def crash_plan(now: float) -> Plan:
    drift = Drift(
        "Container/shop",
        "container.running",
        "== true",
        False,
        now - 30,
        "app-crash",
        "restart-on-exit",
        {"container.exit_code": -9},
    )
    return Plan(
        "Container/shop",
        (PlanStep("container_restart", "Container/shop"),),
        "rules",
        "restart the app",
        "app-crash",
        "restart-on-exit",
        (drift,),
    )


def flush_plan(now: float) -> Plan:
    drift = Drift(
        "RedisCache/cache", "redis.memory_used_ratio", "< 0.5", 0.8, now - 20, "cache-full", "flush"
    )
    return Plan(
        "RedisCache/cache",
        (PlanStep("redis_flush", "RedisCache/cache"),),
        "rules",
        "flush the cache",
        "cache-full",
        "flush",
        (drift,),
    )


def seed(store: Store, now: float) -> dict[str, int]:
    """Two resources with history, a fixed and a failed fix, a parked plan, an LLM exchange."""
    for i in range(40):
        at = now - 400 + i * 10
        up = i != 20
        store.signal_records.record_signals(
            "Container/shop",
            at,
            {
                "container.running": up,
                "container.healthy": up,
                "container.cpu_percent": 2.0 + i,
                "container.memory_bytes": 40_000_000 + i,
            },
        )
    store.resource_records.upsert_resource(
        "Container/shop",
        "Container",
        {"kind": "Container", "metadata": {"name": "shop"}},
        Health.HEALTHY,
        {"container.running": True, "container.cpu_percent": 3.5},
        now,
        f"in sync {XSS}",
    )
    store.resource_records.upsert_resource(
        "RedisCache/cache",
        "RedisCache",
        {},
        Health.NEEDS_OPERATOR,
        {"redis.up": True, "redis.memory_used_ratio": 0.8},
        now,
        "awaiting",
    )
    plan = crash_plan(now)
    fixed = store.fix_records.begin_fix(
        "Container/shop",
        plan,
        {"container.running": False},
        now - 30,
        now - 29.5,
        "container.running is false, expected == true",
    )
    step = store.fix_records.journal_step(fixed, 0, plan.steps[0])
    store.fix_records.finish_step(step, ToolResult.success(pid=42), 0.3)
    store.fix_records.finish_fix(
        fixed, Outcome.FIXED, True, {"container.running": True}, now - 28, now - 28.2
    )
    failed = store.fix_records.begin_fix(
        "Container/shop",
        plan,
        {"container.running": False},
        now - 10,
        now - 9.8,
        "container.running is false, expected == true",
    )
    store.fix_records.finish_fix(
        failed,
        Outcome.FAILED,
        False,
        {"container.running": False},
        now - 5,
        None,
        "not healthy within 30s",
    )
    store.audit_records.record_guard_decision("Container/shop", plan, True, "admitted", now - 29.6)
    pending = store.pending_records.add_pending_plan(
        "RedisCache/cache",
        flush_plan(now),
        "step 1 (redis_flush): destructive and not approved",
        now - 15,
    )
    llm = store.llm_records.record_llm_interaction(
        "Container/shop",
        "gemini",
        "gemini-2.5-flash",
        {"prompt": f"log: {XSS}"},
        {"text": f"answer {XSS}"},
        plan,
        900,
        60,
        1.2,
        now - 29.7,
    )
    store.llm_records.set_llm_outcome(
        llm, mode="auto", decision="admitted", reason="fixed", fix_id=fixed
    )
    return {"fixed": fixed, "failed": failed, "pending": pending, "llm": llm}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as s:
        yield s


@pytest.fixture
def ids(store: Store) -> dict[str, int]:
    return seed(store, time.time())


@pytest.fixture
def controller(store: Store) -> FakeController:
    fake = FakeController(store)
    now = time.time()
    fake.logs.add("Container/shop", LogLine(now - 3, "INFO", "GET /healthz 200", "replica-0"))
    fake.logs.add("Container/shop", LogLine(now - 2, "ERROR", f"boom {XSS}", "replica-0"))
    fake.logs.add("RedisCache/cache", LogLine(now - 1, "WARNING", "memory high", "redis"))
    return fake


def make_app(
    store: Store,
    controller: FakeController | None,
    *,
    token: str | None = TOKEN,
    host: str = "127.0.0.1",
) -> FastAPI:
    settings = Settings(http_host=host, dashboard_token=token)
    return create_app(store, CollectorRegistry(), controller, settings, stream_interval=0.05)


@pytest.fixture
def client(store: Store, controller: FakeController, ids: dict[str, int]) -> Iterator[TestClient]:
    # ``with``: one event loop for the whole test, so background jobs can finish.
    with TestClient(make_app(store, controller), base_url=BASE) as c:
        yield c


# --- ids, formatting and other pure pieces ----------------------------------------------------


def test_resource_ids_are_url_safe_and_map_back() -> None:
    assert resource_id("Container/shop") == "Container.shop"
    assert resource_id("RedisCache/prod/cache") == "RedisCache.prod.cache"
    for key in ("Container/shop", "PostgresDatabase/shop-db", "RedisCache/prod/cache"):
        assert key_of(resource_id(key)) == key
    assert key_of("Container/shop") == "Container/shop"  # the key form is accepted too
    for bad in ("", "shop", "Container.", "Container.Shop", "../etc", "Container.a.b.c", "C.x y"):
        assert key_of(bad) is None, bad


def test_format_value_reads_like_a_person_would() -> None:
    assert format_value(True) == "yes" and format_value(None) == "\u2013"
    assert format_value(0.8123, signal="redis.memory_used_ratio") == "81.2 %"
    assert format_value(52_000_000, signal="container.memory_bytes") == "49.6 MiB"
    assert format_value(3.14159, signal="container.cpu_percent") == "3.1 %"
    assert format_value(1.5, signal="postgres.longest_query_seconds") == "1.50 s"
    assert format_value(float("inf"), unit="ratio") == "\u2013"


def test_up_state_and_downsample_keep_outages() -> None:
    assert up_state("Container", {"container.running": False}) == "down"
    assert (
        up_state("Container", {"container.running": True, "container.healthy": False}) == "degraded"
    )
    assert up_state("RedisCache", {"redis.up": True}) == "up"
    assert up_state("PostgresDatabase", {}) == "unknown"
    samples = [
        {"at": float(i), "signals": {"container.running": i != 500, "container.healthy": True}}
        for i in range(1000)
    ]
    thin = downsample(samples, "Container", 50)
    assert len(thin) <= 50
    assert any(not s["signals"]["container.running"] for s in thin)  # the one-sample outage
    assert thin[-1]["at"] == 999.0
    assert [s["at"] for s in thin] == sorted(s["at"] for s in thin)


def test_signal_changes_put_drifted_signals_first() -> None:
    rows = signal_changes({"a": 1, "b": 2, "z": False}, {"a": 1, "b": 3, "z": True}, ["z"])
    assert [r["signal"] for r in rows] == ["z", "b", "a"]
    assert rows[0]["drifted"] and rows[1]["changed"] and not rows[2]["changed"]


def test_actor_names_are_reduced_to_a_plain_word() -> None:
    assert sanitize_actor("alice") == "dashboard:alice"
    assert sanitize_actor(None) == "dashboard" and sanitize_actor("  ") == "dashboard"
    assert sanitize_actor("<b>eve</b>\n\x00") == "dashboard:b-eve-b"
    assert len(sanitize_actor("x" * 500)) <= len("dashboard:") + 40


def cond(signal: str, operator: str, value: Any, hold: float = 0.0) -> dict[str, Any]:
    """A rule drift's condition as the store keeps it (``drift_to_dict``)."""
    return {"signal": signal, "operator": operator, "value": value, "for": hold}


def test_drifts_read_in_their_units_one_line_per_signal() -> None:
    spec = {"signal": "container.running", "expected": "== true", "observed": False}
    rule = spec | {
        "expected": "not (container.running == false)",
        "conditions": [cond("container.running", "==", False)],
        "policy": "app-crash",
        "rule": "restart-on-exit",
        "since": 5.0,
    }
    assert describe_drift(spec) == "container.running is false, expected true"
    lines = drift_lines([spec | {"since": 9.0}, rule])
    assert [line["text"] for line in lines] == ["container.running is false, expected true"]
    assert lines[0]["rules"] == ["app-crash/restart-on-exit"] and lines[0]["since"] == 5.0
    full = {
        "signal": "redis.memory_used_ratio",
        "expected": "not (redis.memory_used_ratio >= 0.95 for 10s; redis.evicting_policy == false)",
        "observed": 0.9812,
        "evidence": {"redis.evicting_policy": False},
        "conditions": [
            cond("redis.memory_used_ratio", ">=", 0.95, 10.0),
            cond("redis.evicting_policy", "==", False),
        ],
        "policy": "redis-memory-full",
        "rule": "purge",
    }
    assert describe_drift(full) == (
        "redis.memory_used_ratio is 98.1 %, at or over 95 % for 10s; redis.evicting_policy is false"
    )
    slow = {
        "signal": "postgres.longest_query_seconds",
        "expected": "not (postgres.longest_query_seconds > 10)",
        "conditions": [cond("postgres.longest_query_seconds", ">", 10)],
        "observed": 42.5,
    }
    assert describe_drift(slow) == "postgres.longest_query_seconds is 42 s, over 10 s"
    odd = {"signal": "x.y", "expected": "something else", "observed": 3}
    assert describe_drift(odd) == "x.y is 3, expected something else"  # shown as it came
    assert root_cause_text([spec, rule, full]).count("container.running") == 1


def test_llm_outcomes_are_the_recorded_ones_even_for_identical_plans(store: Store) -> None:
    # Two identical plans: the first was only recorded (shadow), the second ran as a fix.
    # Matching by resource and steps would have called both "fixed" by the earlier fix.
    now = time.time()
    seeded = seed(store, now)
    plan = crash_plan(now)

    def ask(
        decision: str,
        reason: str,
        fix_id: int | None = None,
        mode: str = "auto",
        pending: int | None = None,
    ) -> int:
        iid = store.llm_records.record_llm_interaction(
            "Container/shop", "gemini", "m", "p", "r", plan, 1, 1, 0.1, now
        )
        store.llm_records.set_llm_outcome(
            iid, mode=mode, decision=decision, reason=reason, fix_id=fix_id,
            pending_plan_id=pending,
        )  # fmt: skip
        return iid

    shadow = ask("shadow", "recorded, not run (guard: admitted)", mode="shadow")
    ran = ask("admitted", "not healthy within 30s", fix_id=seeded["failed"])
    parked = ask(
        "pending",
        f"waiting for an operator (pending plan {seeded['pending']})",
        pending=seeded["pending"],
    )
    budget = ask("over-budget", "policy app-crash ran 3/3 LLM plans in 1h")
    refused = ask("rejected", "step 1 (redis_flush) is not allowed by this policy")
    with TestClient(make_app(store, FakeController(store)), base_url=BASE) as c:
        rows = {r["id"]: r for r in c.get("/api/llm/interactions").json()}
        assert rows[shadow]["outcome"] == "shadow" and rows[shadow]["fix_id"] is None
        assert rows[ran]["outcome"] == "failed" and rows[ran]["fix_id"] == seeded["failed"]
        assert rows[parked]["outcome"] == "pending"
        assert rows[parked]["pending_plan_id"] == seeded["pending"]
        assert rows[budget]["outcome"] == "over-budget"
        assert rows[refused]["outcome"] == "refused"
        assert "not allowed" in rows[refused]["outcome_reason"]
        assert rows[seeded["llm"]]["outcome"] == "fixed"
        one = c.get(f"/api/llm/interactions/{shadow}").json()
        assert one["fix"] is None and one["summary"]["outcome_label"].startswith("shadow")
        assert c.get(f"/api/llm/interactions/{ran}").json()["fix"]["id"] == seeded["failed"]
        page = c.get(f"/llm/{shadow}").text
        assert "recorded, not run" in page and "/fixes/" not in page
        detail = c.get(f"/llm/{parked}").text
        assert "Parked plan #" in detail and "Approve" in detail  # approve it from here
        listing = c.get("/llm").text
        assert listing.count('class="badge o-shadow"') == 1
        assert 'class="badge o-over-budget"' in listing
        # Once an operator decides the parked plan, the interaction says so.
        store.pending_records.set_pending_status(
            seeded["pending"], "rejected", "dashboard:bob", now
        )
        row = next(r for r in c.get("/api/llm/interactions").json() if r["id"] == parked)
        assert row["outcome"] == "rejected" and "by dashboard:bob" in row["outcome_label"]
        assert "rejected" in c.get(f"/llm/{parked}").text
    unknown = llm_outcome({"decision": None, "plan": {"steps": []}})
    assert unknown["outcome"] == "planned"
    assert llm_outcome({"decision": None, "plan": None, "error": "timeout"})["outcome"] == "error"


# --- reading ---------------------------------------------------------------------------------


def test_resources_list_and_detail(client: TestClient, ids: dict[str, int]) -> None:
    rows = client.get("/api/resources").json()
    assert [r["id"] for r in rows] == ["Container.shop", "PostgresDatabase.db", "RedisCache.cache"]
    shop, db, cache = rows
    assert shop["health"] == "healthy" and shop["last_fix"]["id"] == ids["failed"]
    assert db["health"] == "unknown" and db["message"] == "not observed yet"
    assert cache["health"] == "needs-operator"
    detail = client.get("/api/resources/Container.shop").json()
    assert detail["key"] == "Container/shop" and detail["declared"] is True
    assert [f["id"] for f in detail["fixes"]] == [ids["failed"], ids["fixed"]]
    assert detail["guard_decisions"][0]["admitted"] is True
    assert (
        client.get("/api/resources/RedisCache.cache").json()["pending_plans"][0]["steps"][0]["tool"]
        == "redis_flush"
    )
    assert client.get("/api/resources/Container.nope").status_code == 404
    assert client.get("/api/resources/not-an-id").status_code == 404


def test_metrics_of_a_resource(client: TestClient) -> None:
    body = client.get("/api/resources/Container.shop/metrics", params={"since": 0}).json()
    assert body["key"] == "Container/shop" and len(body["samples"]) == 40
    assert "container.cpu_percent" in body["charted"]
    thin = client.get(
        "/api/resources/Container.shop/metrics",
        params={"since": 0, "names": "container.cpu_percent", "max_points": 10},
    ).json()
    assert len(thin["samples"]) <= 10
    assert set(thin["samples"][-1]["signals"]) == {"container.cpu_percent"}
    assert client.get("/api/resources/Container.shop/metrics?max_points=0").status_code == 422


def test_logs_with_filters(client: TestClient) -> None:
    everything = client.get("/api/logs").json()
    assert [line["level"] for line in everything] == ["INFO", "ERROR", "WARNING"]
    assert everything[1]["message"] == f"boom {XSS}"  # JSON carries the text as it was
    assert [x["message"] for x in client.get("/api/logs", params={"q": "BOOM"}).json()] == [
        f"boom {XSS}"
    ]
    assert len(client.get("/api/logs", params={"resource": "RedisCache.cache"}).json()) == 1
    assert len(client.get("/api/logs", params={"level": "warn"}).json()) == 2
    assert client.get("/api/logs", params={"since": time.time() + 60}).json() == []
    assert len(client.get("/api/logs", params={"until": time.time() - 1.5}).json()) == 2
    assert client.get("/api/logs", params={"limit": 1}).json()[0]["level"] == "WARNING"
    errors = client.get("/api/logs/errors").json()
    assert [x["level"] for x in errors] == ["ERROR"]
    bad = client.get("/api/logs", params={"level": "LOUD"})
    # The documented 422: a list of errors, as FastAPI's own, naming the parameter.
    assert bad.status_code == 422
    [error] = bad.json()["detail"]
    assert error["loc"] == ["query", "level"] and "unknown log level" in error["msg"]


def test_llm_interactions(client: TestClient, ids: dict[str, int]) -> None:
    rows = client.get("/api/llm/interactions").json()
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == ids["llm"] and row["outcome"] == "fixed" and row["fix_id"] == ids["fixed"]
    assert row["decision"] == "admitted" and row["mode"] == "auto"
    assert row["root_cause"] == "restart the app" and row["steps"] == ["container_restart"]
    assert "prompt" not in row  # the list stays light; the detail has it whole
    one = client.get(f"/api/llm/interactions/{ids['llm']}").json()
    assert one["prompt"] == {"prompt": f"log: {XSS}"}
    assert one["summary"]["outcome"] == "fixed"
    assert one["fix"]["steps"][0]["result"]["data"] == {"pid": 42}
    assert client.get("/api/llm/interactions/999").status_code == 404
    assert client.get("/api/llm/interactions", params={"resource": "RedisCache.cache"}).json() == []


def test_fixes_and_evaluations(client: TestClient, ids: dict[str, int]) -> None:
    fixes = client.get("/api/fixes").json()
    assert [f["id"] for f in fixes] == [ids["failed"], ids["fixed"]]
    assert fixes[0]["resource_id"] == "Container.shop"
    assert [f["id"] for f in client.get("/api/fixes", params={"outcome": "fixed"}).json()] == [
        ids["fixed"]
    ]
    one = client.get(f"/api/fixes/{ids['fixed']}").json()
    assert one["steps"][0]["tool"] == "container_restart" and one["outcome"] == "fixed"
    assert client.get("/api/fixes/999").status_code == 404
    ev = client.get("/api/fixes/evaluations").json()
    assert ev["summary"]["count"] == 2 and ev["summary"]["success_rate"] == 0.5
    assert ev["by_scenario"]["app-crash/restart-on-exit"]["count"] == 2
    assert ev["by_tool"]["container_restart"]["steps"] == 1
    assert [p["id"] for p in ev["time_to_recover"]] == [ids["fixed"], ids["failed"]]
    assert ev["time_to_recover"][1]["time_to_recover"] is None


def test_a_resumed_fix_says_so_with_its_step_of_unknown_outcome(
    client: TestClient, store: Store
) -> None:
    now = time.time()
    plan = crash_plan(now)
    fid = store.fix_records.begin_fix("Container/shop", plan, {}, now - 9, now - 8, "crash")
    store.fix_records.journal_step(fid, 0, plan.steps[0])  # its controller died here
    store.fix_records.mark_interrupted(now - 5)
    assert store.fix_records.resume_fix(fid, now - 4, "outcome unknown: not run again")
    page = client.get(f"/fixes/{fid}").text
    assert "data-resumed" in page and "data-fix-resumed" in page
    assert 'badge o-unknown">unknown</span>' in page and "outcome unknown: not run again" in page
    assert client.get(f"/api/fixes/{fid}").json()["resumed_at"] == now - 4
    # A fix that was never cut short says nothing of it.
    other = client.get(f"/fixes/{fid - 1}").text
    assert "data-resumed" not in other and "data-fix-resumed" not in other


def test_plans_and_audit(client: TestClient, ids: dict[str, int]) -> None:
    plans = client.get("/api/plans").json()
    assert [p["id"] for p in plans] == [ids["pending"]]
    assert plans[0]["resource_id"] == "RedisCache.cache" and "destructive" in plans[0]["reason"]
    assert client.get(f"/api/plans/{ids['pending']}").json()["status"] == "pending"
    assert client.get("/api/plans/999").status_code == 404
    assert client.get("/api/plans", params={"status": "rejected"}).json() == []
    assert client.get("/api/actions").json() == []


def test_without_a_controller_the_store_is_still_served(store: Store, ids: dict[str, int]) -> None:
    with TestClient(make_app(store, None), base_url=BASE) as c:
        assert len(c.get("/api/resources").json()) == 2
        assert c.get("/api/logs").json() == []
        for path in ("/", "/resources", "/logs", "/llm", "/fixes"):
            assert c.get(path).status_code == 200, path
        refused = c.post("/api/fixes/trigger", json={"resource": "Container.shop"}, headers=AUTH)
        assert refused.status_code == 503 and "no controller" in refused.json()["detail"]


def test_store_and_controller_come_through_depends(store: Store, tmp_path: Path) -> None:
    app = make_app(store, None)
    other = Store(tmp_path / "other.db")
    other.resource_records.upsert_resource(
        "Container/elsewhere", "Container", {}, Health.HEALTHY, {}, 1.0
    )
    fake = FakeController(other)
    app.dependency_overrides[get_store] = lambda: other
    app.dependency_overrides[get_controller] = lambda: fake
    with TestClient(app, base_url=BASE) as c:
        assert "Container/elsewhere" in [r["key"] for r in c.get("/api/resources").json()]
        assert (
            c.post("/api/resources/Container.shop/pause", json={}, headers=AUTH).status_code == 200
        )
    assert fake.calls == [("pause", "Container/shop", "dashboard")]
    other.close()


# --- actions ---------------------------------------------------------------------------------


def test_fix_button_runs_in_the_background_and_is_recorded(
    client: TestClient, controller: FakeController
) -> None:
    started = client.post(
        "/api/fixes/trigger", json={"resource": "Container.shop", "actor": "alice"}, headers=AUTH
    )
    assert started.status_code == 202
    job = started.json()
    assert job["action"] == "fix" and job["key"] == "Container/shop"
    done = poll_until(
        lambda: (j := client.get(f"/api/jobs/{job['id']}").json())["status"] != "running" and j,
        deadline_s=5,
        what=f"job {job['id']} finished",
    )
    assert done["status"] == "done" and done["result"]["outcome"] == "in-sync"
    assert controller.calls == [("fix", "Container/shop", "dashboard:alice")]
    assert client.get("/api/actions").json()[0]["actor"] == "dashboard:alice"
    waited = client.post(
        "/api/fixes/trigger", json={"resource": "Container/shop", "wait": True}, headers=AUTH
    )
    assert waited.status_code == 200 and waited.json()["result"]["message"] == "in sync"
    unknown = client.post("/api/fixes/trigger", json={"resource": "Container.nope"}, headers=AUTH)
    assert unknown.status_code == 404 and "no resource Container/nope" in unknown.json()["detail"]
    assert client.get("/api/jobs/999").status_code == 404


def test_pause_and_resume(client: TestClient, controller: FakeController, store: Store) -> None:
    r = client.post("/api/resources/Container.shop/pause", json={"actor": "bob"}, headers=AUTH)
    assert r.json() == {"key": "Container/shop", "id": "Container.shop", "paused": True}
    assert store.resource_records.resource("Container/shop")["paused"] is True  # type: ignore[index]
    client.post("/api/resources/Container.shop/resume", json={}, headers=AUTH)
    assert controller.calls == [
        ("pause", "Container/shop", "dashboard:bob"),
        ("resume", "Container/shop", "dashboard"),
    ]
    assert client.post("/api/resources/Kind.nope/pause", json={}, headers=AUTH).status_code == 404


def test_approve_and_reject_plans(
    client: TestClient, controller: FakeController, ids: dict[str, int], store: Store
) -> None:
    pid = ids["pending"]
    approved = client.post(f"/api/plans/{pid}/approve", json={"wait": True}, headers=AUTH)
    assert approved.status_code == 200
    assert approved.json()["result"] == {
        "key": "RedisCache/cache",
        "resource_id": "RedisCache.cache",
        "outcome": "fixed",
        "message": "fixed: flushed",
        "fix_id": 9,
        "plan_id": pid,
    }
    again = client.post(f"/api/plans/{pid}/approve", json={}, headers=AUTH)
    assert again.status_code == 409 and "executed, not pending" in again.json()["detail"]
    assert client.post("/api/plans/999/approve", json={}, headers=AUTH).status_code == 404
    other = store.pending_records.add_pending_plan(
        "RedisCache/cache", flush_plan(time.time()), "why", time.time()
    )
    assert client.post(f"/api/plans/{other}/reject", json={}, headers=AUTH).json() == {
        "id": other,
        "status": "rejected",
    }
    assert client.post(f"/api/plans/{other}/reject", json={}, headers=AUTH).status_code == 409
    assert client.post("/api/plans/999/reject", json={}, headers=AUTH).status_code == 404
    assert ("reject", other, "dashboard") in controller.calls


def test_retry_only_what_failed(
    client: TestClient, controller: FakeController, ids: dict[str, int]
) -> None:
    ok = client.post(f"/api/fixes/{ids['fixed']}/retry", json={}, headers=AUTH)
    assert ok.status_code == 409 and "succeeded" in ok.json()["detail"]
    retried = client.post(f"/api/fixes/{ids['failed']}/retry", json={"wait": True}, headers=AUTH)
    assert retried.status_code == 200 and retried.json()["result"]["retry_of"] == ids["failed"]
    assert controller.calls == [("fix", "Container/shop", "dashboard")]
    # One press, one audited action: the controller's "fix" (the job says what it retried).
    [action] = client.get("/api/actions").json()
    assert action["action"] == "fix" and action["detail"] == {"retry_of": ids["failed"]}
    assert client.post("/api/fixes/999/retry", json={}, headers=AUTH).status_code == 404


def test_analyze_needs_an_llm_planner(client: TestClient, store: Store) -> None:
    refused = client.post("/api/llm/analyze", json={"resource": "Container.shop"}, headers=AUTH)
    assert refused.status_code == 503
    assert "no LLM planner is configured" in refused.json()["detail"]
    assert "GEMINI_API_KEY" in refused.json()["detail"]  # and says how to get one
    assert 'data-action="analyze"' in client.get("/resources").text
    assert "No LLM planner is configured" in client.get("/resources").text  # disabled, why
    fake = AnalyzingController(store)
    with TestClient(make_app(store, fake), base_url=BASE) as c:
        answer = c.post(
            "/api/llm/analyze", json={"resource": "Container.shop", "wait": True}, headers=AUTH
        )
        assert answer.status_code == 200
        result = answer.json()["result"]
        assert result["decision"] == "shadow" and result["resource_id"] == "Container.shop"
        assert c.get(f"/api/llm/interactions/{result['interaction']}").json()["decision"] == (
            "shadow"
        )
        other = c.post(
            "/api/llm/analyze", json={"resource": "RedisCache.cache", "wait": True}, headers=AUTH
        ).json()
        assert other["status"] == "error" and "no LLM planner" in other["error"]
        assert "No LLM planner is configured" not in c.get("/resources").text
    assert fake.calls == [
        ("analyze", "Container/shop", "dashboard"),
        ("analyze", "RedisCache/cache", "dashboard"),
    ]


# --- the gate --------------------------------------------------------------------------------

ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("/api/fixes/trigger", {"resource": "Container.shop"}),
    ("/api/resources/Container.shop/pause", {}),
    ("/api/resources/Container.shop/resume", {}),
    ("/api/plans/1/approve", {}),
    ("/api/plans/1/reject", {}),
    ("/api/fixes/1/retry", {}),
    ("/api/llm/analyze", {"resource": "Container.shop"}),
]


@pytest.mark.parametrize(("path", "body"), ACTIONS)
def test_every_action_needs_the_token(
    client: TestClient, controller: FakeController, path: str, body: dict[str, Any]
) -> None:
    missing = client.post(path, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "needs the dashboard token" in missing.json()["detail"]
    wrong = client.post(path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert controller.calls == []


@pytest.mark.parametrize(("path", "body"), ACTIONS)
def test_without_a_configured_token_actions_say_how_to_set_one(
    store: Store, controller: FakeController, path: str, body: dict[str, Any]
) -> None:
    with TestClient(make_app(store, controller, token=None), base_url=BASE) as c:
        r = c.post(path, json=body, headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403
        assert "DRIFTMEND_DASHBOARD_TOKEN=" in r.json()["detail"]
        assert "banner" in c.get("/").text  # the pages say so too
    assert controller.calls == []


def test_cross_site_requests_are_refused(client: TestClient, controller: FakeController) -> None:
    body = {"resource": "Container.shop", "wait": True}
    evil = client.post(
        "/api/fixes/trigger", json=body, headers=AUTH | {"Origin": "http://evil.example"}
    )
    assert evil.status_code == 403 and "cross-origin" in evil.json()["detail"]
    site = client.post(
        "/api/fixes/trigger", json=body, headers=AUTH | {"Sec-Fetch-Site": "cross-site"}
    )
    assert site.status_code == 403 and "cross-site" in site.json()["detail"]
    assert controller.calls == []
    same = client.post(
        "/api/fixes/trigger",
        json=body,
        headers=AUTH | {"Origin": BASE, "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 200
    # A form post from another site cannot carry the header; a cookie never authorizes.
    client.cookies.set("driftmend_read", "whatever")
    form = client.post(
        "/api/fixes/trigger",
        content="resource=Container.shop",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 401


def test_loopback_answers_only_loopback_host_names(
    store: Store, controller: FakeController
) -> None:
    app = make_app(store, controller)
    with TestClient(app, base_url="http://rebound.example:8080") as c:
        r = c.get("/api/resources")
        assert r.status_code == 403 and "answers only requests addressed to localhost" in r.text
        assert c.get("/").status_code == 403
        # The schema, its page and the metrics too: a rebinding page reads none of them.
        for path in ("/openapi.json", "/docs", "/metrics"):
            assert c.get(path).status_code == 403, path
        assert c.get("/healthz").status_code == 200
    for base in ("http://localhost:8080", "http://[::1]:8080", BASE):
        with TestClient(app, base_url=base) as c:
            for path in ("/api/resources", "/openapi.json", "/docs", "/metrics"):
                assert c.get(path).status_code == 200, (base, path)


def test_beyond_localhost_reading_needs_the_token(
    store: Store, controller: FakeController, ids: dict[str, int]
) -> None:
    app = make_app(store, controller, host="0.0.0.0")
    with TestClient(app, base_url="http://dash.example") as c:
        refused = c.get("/api/resources")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        page = c.get("/fixes")
        assert page.status_code == 401 and "/login?next=%2Ffixes" in page.text
        assert c.get("/api/stream").status_code == 401
        assert c.get("/api/resources", headers=AUTH).status_code == 200
        for path in ("/openapi.json", "/docs", "/metrics"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=AUTH).status_code == 200, path  # Prometheus: a bearer
        assert c.get("/healthz").status_code == 200
        assert c.get("/login").status_code == 200
        wrong = c.post(
            "/login",
            content="token=nope&next=/fixes",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert wrong.status_code == 401 and "not the dashboard token" in wrong.text
        ok = c.post(
            "/login",
            content=f"token={TOKEN}&next=//evil.example/x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/"  # no open redirect
        cookie = ok.cookies.get("driftmend_read")
        assert cookie and TOKEN not in cookie
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert "samesite=strict" in ok.headers["set-cookie"].lower()
        c.cookies.set("driftmend_read", cookie)
        assert c.get("/api/resources").status_code == 200
        assert c.get("/fixes").status_code == 200
        # The read cookie is not a key to act.
        assert c.post("/api/resources/Container.shop/pause", json={}).status_code == 401
    with TestClient(
        make_app(store, controller, token=None, host="0.0.0.0"), base_url="http://dash.example"
    ) as c:
        r = c.get("/api/resources")
        assert r.status_code == 403 and "DRIFTMEND_DASHBOARD_TOKEN" in r.json()["detail"]


# --- pages and escaping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/resources",
        "/resources/Container.shop",
        "/resources/PostgresDatabase.db",
        "/logs",
        "/logs?q=boom&level=ERROR&resource=Container.shop&range=5m",
        "/llm",
        "/llm/1",
        "/fixes",
        "/fixes/1",
        "/fixes/2",
        "/docs",
        "/login",
    ],
)
def test_every_page_renders_with_strict_headers(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script>window.pwned" not in r.text
    assert 'src="http' not in r.text and 'href="http' not in r.text  # nothing from a CDN


def test_untrusted_text_is_escaped_everywhere(client: TestClient, ids: dict[str, int]) -> None:
    escaped = "&lt;script&gt;window.pwned=1&lt;/script&gt;"
    logs = client.get("/logs").text
    assert f"boom {escaped}" in logs
    assert escaped in client.get("/").text  # a resource message
    assert escaped in client.get("/resources").text  # the card's recent logs
    detail = client.get(f"/llm/{ids['llm']}").text
    assert detail.count(escaped) == 2  # prompt and response
    # The JSON for the script escapes markup too, so it cannot close its <script> block.
    block = re.search(
        r'<script type="application/json" id="page-data">(.*?)</script>', client.get("/").text, re.S
    )
    assert block and "<" not in block.group(1)
    assert json.loads(block.group(1))["page"] == "overview"


def test_errors_are_pages_for_people_and_json_for_programs(client: TestClient) -> None:
    page = client.get("/fixes/999")
    assert page.status_code == 404 and "no fix 999" in page.text and "<html" in page.text
    api = client.get("/api/fixes/999")
    assert api.status_code == 404 and api.json() == {"detail": "no fix 999"}
    assert client.get("/fixes/abc").status_code == 422


def test_openapi_documents_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in [
        "/api/resources",
        "/api/resources/{rid}",
        "/api/resources/{rid}/metrics",
        "/api/logs",
        "/api/logs/errors",
        "/api/llm/interactions",
        "/api/llm/interactions/{iid}",
        "/api/llm/analyze",
        "/api/fixes/trigger",
        "/api/fixes",
        "/api/fixes/{fid}",
        "/api/fixes/evaluations",
        "/api/plans/{pid}/approve",
        "/api/plans/{pid}/reject",
        "/api/resources/{rid}/pause",
        "/api/resources/{rid}/resume",
        "/api/stream",
    ]:
        assert path in paths, path
    assert "/metrics" not in paths and "/" not in paths
    assert client.get("/docs").text.count("/api/") >= 17


def test_metrics_and_healthz_are_unchanged(store: Store) -> None:
    registry = CollectorRegistry()
    Counter("driftmend_test_total", "a test counter", registry=registry).inc()
    app = create_app(store, registry)
    with TestClient(app, base_url=BASE) as c:
        m = c.get("/metrics")
        assert m.status_code == 200 and "driftmend_test_total 1.0" in m.text
        assert m.headers["content-type"].startswith("text/plain")
        assert "content-security-policy" not in m.headers
        assert c.get("/healthz").json() == {"status": "ok"}


# --- contrast ---------------------------------------------------------------------------------

CSS = Path(__file__).resolve().parents[2] / "driftmend" / "dashboard" / "static" / "dashboard.css"
# (text, background, what a translucent background lies on): every pair the pages use.
CONTRAST_PAIRS = [
    *[(t, b, None) for t in ("text", "muted", "accent") for b in ("bg", "surface", "surface-2")],
    *[(t, b, base) for t in ("text", "muted", "accent") for b in ("warn-bg", "bad-bg")
      for base in ("surface", "surface-2")],
    ("accent-text", "accent", None),
    *[(c, f"{c}-bg", base) for c in ("ok", "warn", "heal", "bad", "none")
      for base in ("surface", "surface-2")],
    *[(c, b, None) for c in ("ok", "warn", "heal", "bad") for b in ("surface", "surface-2")],
]  # fmt: skip


def _theme(css: str, selector: str) -> dict[str, str]:
    start = css.index(selector)
    return dict(re.findall(r"--([\w-]+):\s*([^;]+);", css[start : css.index("}", start)]))


def _rgba(value: str) -> tuple[float, float, float, float]:
    value = value.strip()
    if value.startswith("#"):
        r, g, b = (int(value[i : i + 2], 16) for i in (1, 3, 5))
        return r, g, b, 1.0
    parts = [float(p) for p in value[value.index("(") + 1 : -1].split(",")]
    return parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0


def _luminance(c: tuple[float, ...]) -> float:
    lin = [
        (x / 255) / 12.92 if x / 255 <= 0.03928 else ((x / 255 + 0.055) / 1.055) ** 2.4
        for x in c[:3]
    ]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]  # fmt: skip


def test_every_text_reaches_4_5_to_1_in_both_themes() -> None:
    css = CSS.read_text()
    dark = _theme(css, ':root[data-theme="dark"] {')
    assert _theme(css, ':root:not([data-theme="light"]) {') == dark  # the two dark blocks
    weak = []
    for name, theme in (("light", _theme(css, ":root {")), ("dark", dark)):
        for fg, bg, base in CONTRAST_PAIRS:
            b = _rgba(theme[bg])
            if b[3] < 1 and base is not None:  # a translucent tint, laid over its panel
                under = _rgba(theme[base])
                b = (*(b[i] * b[3] + under[i] * (1 - b[3]) for i in range(3)), 1.0)
            hi, lo = sorted((_luminance(_rgba(theme[fg])), _luminance(b)), reverse=True)
            ratio = (hi + 0.05) / (lo + 0.05)
            if ratio < 4.5:
                weak.append(f"{name}: {fg} on {bg} ({base}) is {ratio:.2f}:1")
    assert not weak, weak
    tick = re.search(r"\.chart-svg \.tick \{[^}]*font-size: ([\d.]+)px", css)
    assert tick and float(tick.group(1)) >= 11  # chart labels stay readable


# --- the live stream -------------------------------------------------------------------------


def _view(store: Store) -> StoreView:
    return read_store(store)


def test_tracker_sends_only_what_changed(store: Store, ids: dict[str, int]) -> None:
    tracker = Tracker()
    events, fixes_changed, llm_changed = tracker.diff(_view(store))
    names = [name for name, _ in events]
    assert names.count("resource") == 2 and names.count("fix") == 2 and "plans" in names
    assert fixes_changed and llm_changed == []  # the first poll only takes note of the LLM
    assert tracker.diff(_view(store)) == ([], False, [])
    store.resource_records.upsert_resource(
        "Container/shop", "Container", {}, Health.HEALING, {}, time.time(), "x"
    )
    fresh = store.llm_records.record_llm_interaction(
        "Container/shop", "gemini", "m", "p", "r", None, 1, 1, 0.1, time.time()
    )
    events, fixes_changed, llm_changed = tracker.diff(_view(store))
    assert [(n, d["health"]) for n, d in events] == [("resource", "healing")]
    assert [i["id"] for i in llm_changed] == [fresh] and not fixes_changed
    # The controller records the outcome after the exchange: the row is sent again.
    store.llm_records.set_llm_outcome(fresh, mode="approve", decision="pending", reason="waiting")
    _, _, llm_changed = tracker.diff(_view(store))
    assert [(i["id"], i["decision"]) for i in llm_changed] == [(fresh, "pending")]
    assert tracker.diff(_view(store)) == ([], False, [])
    store.resource_records.remove_resource("RedisCache/cache")
    events, _, _ = tracker.diff(_view(store))
    assert events == [("resource-removed", {"key": "RedisCache/cache", "id": "RedisCache.cache"})]


def test_tracker_sends_new_log_lines_once() -> None:
    tracker = Tracker()
    a = {"key": "k/a", "at": 10.0, "level": "INFO", "source": "", "message": "one"}
    b = a | {"at": 11.0, "message": "two"}
    assert tracker.new_logs([a], since=5.0) == [a]
    assert tracker.new_logs([a, b], since=5.0) == [b]
    assert tracker.new_logs([a, b], since=5.0) == []
    assert Tracker().new_logs([a, b], since=None) == []  # no ``since``: only what comes later


async def test_event_stream_pushes_changes_and_ends_when_closed(
    store: Store, controller: FakeController, ids: dict[str, int]
) -> None:
    closing = asyncio.Event()
    jobs = JobBoard()
    chunks: list[str] = []

    async def consume() -> None:
        async for chunk in event_stream(
            store=store,
            logs=controller.logs,
            jobs=jobs,
            is_disconnected=_never,
            closing=closing,
            since=0.0,
            interval=0.02,
        ):
            chunks.append(chunk)

    task = asyncio.create_task(consume())
    await _until(lambda: any("event: plans" in c for c in chunks))
    text = "".join(chunks)
    assert text.startswith("retry: 1000\n\n") and "event: hello" in text
    assert "event: logs" in text and json.dumps(f"boom {XSS}")[1:-1] in text
    store.resource_records.upsert_resource(
        "Container/shop", "Container", {}, Health.HEALING, {}, time.time(), ""
    )
    controller.logs.add("Container/shop", LogLine(time.time(), "ERROR", "fresh line", ""))
    jobs.start("fix", "Container/shop", "dashboard", _result)
    await _until(lambda: "fresh line" in "".join(chunks) and "event: job" in "".join(chunks))
    assert '"health":"healing"' in "".join(chunks)
    closing.set()
    await asyncio.wait_for(task, 2)


async def test_event_stream_ends_when_the_client_goes_away(store: Store) -> None:
    gone = False

    async def disconnected() -> bool:
        return gone

    async def consume() -> int:
        n = 0
        async for _ in event_stream(
            store=store,
            logs=None,
            jobs=JobBoard(),
            is_disconnected=disconnected,
            closing=asyncio.Event(),
            since=None,
            interval=0.02,
        ):
            n += 1
        return n

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    gone = True
    assert await asyncio.wait_for(task, 2) >= 2


async def test_event_stream_ends_when_the_store_closes(tmp_path: Path) -> None:
    store = Store(tmp_path / "closing.db")
    stream = event_stream(
        store=store,
        logs=None,
        jobs=JobBoard(),
        is_disconnected=_never,
        closing=asyncio.Event(),
        since=None,
        interval=0.02,
    )
    assert (await anext(stream)).startswith("retry:")
    store.close()
    rest = [chunk async for chunk in stream]
    assert len(rest) <= 2  # hello, and at most one poll that raced the close


def test_close_streams_lets_the_http_stream_end(store: Store, ids: dict[str, int]) -> None:
    app = make_app(store, None)
    close_streams(app)
    with TestClient(app, base_url=BASE) as c:
        r = c.get("/api/stream")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert "event: hello" in r.text  # closed before it began: hello, then the response ends


async def _never() -> bool:
    return False


async def _result() -> dict[str, Any]:
    return {"outcome": "in-sync"}


async def _until(check: Any, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


def test_a_fix_page_says_when_a_fix_was_a_backoff_retry_or_a_fix_now(
    client: TestClient, store: Store
) -> None:
    now = time.time()
    retry = dataclasses.replace(
        crash_plan(now), trigger="backoff", reasoning="the ladder is exhausted; retry 2 now"
    )
    by_hand = dataclasses.replace(crash_plan(now), trigger="operator")
    retry_id = store.fix_records.begin_fix("Container/shop", retry, {}, now, now, "crash")
    hand_id = store.fix_records.begin_fix("Container/shop", by_hand, {}, now, now, "crash")
    page = client.get(f"/fixes/{retry_id}").text
    assert 'data-trigger="backoff"' in page and "retry 2 now" in page
    assert 'data-trigger="operator"' in client.get(f"/fixes/{hand_id}").text
    listed = {f["id"]: f["plan"]["trigger"] for f in client.get("/api/fixes").json()}
    assert listed[retry_id] == "backoff" and listed[hand_id] == "operator"


def test_why_a_container_cannot_start_shows_on_its_tile_and_page(
    client: TestClient, store: Store
) -> None:
    # The reconciler writes the observation's start error into the row's message.
    why = (
        "container.running is false, expected == true; cannot start: replica 0: "
        "/srv/app/run.sh cannot be run as user nobody: /srv (mode 0700, owner root) does not "
        "let user nobody pass through it"
    )
    store.resource_records.upsert_resource(
        "Container/pg", "Container", {}, Health.DRIFTING, {"container.running": False},
        time.time(), why,
    )  # fmt: skip
    tiles = re.findall(
        r'<p class="tile-message" data-slot="message">(.*?)</p>', client.get("/").text
    )
    assert why in tiles
    page = client.get("/resources/Container.pg").text
    card = re.search(r'<p class="card-message" data-slot="message">(.*?)</p>', page)
    assert card is not None and card.group(1) == why
