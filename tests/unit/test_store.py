"""The store: round trips, the fix journal across a crash, stats, retention, threads.

Every test that takes ``backend`` (or ``store``) runs twice: on SQLite and on a real
PostgreSQL server (``tests/unit/conftest.py``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftmend.errors import (
    ConfigurationError,
    StoreBusyError,
    StoreError,
    StoreUnusableError,
)
from driftmend.model import Drift, Health, Outcome, Plan, PlanStep, ToolResult
from driftmend.store import SCHEMA_VERSION, Store, plan_from_dict, plan_to_dict
from tests.unit.conftest import StoreBackend

KEY = "Container/web"


class Clock:
    """A settable clock, so rows stamped by the store have known times."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(backend: StoreBackend, clock: Clock) -> Iterator[Store]:
    s = backend.open(clock=clock)
    yield s
    s.close()


def make_plan(key: str = KEY, *, rule: str | None = "restart", source: str = "rules") -> Plan:
    drift = Drift(
        key=key,
        signal="container.running",
        expected="== true",
        observed=False,
        since=990.0,
        policy="web-heal",
        rule=rule,
        evidence={"container.exit_code": 137, "container.oom_killed": True},
    )
    return Plan(
        key=key,
        steps=(
            PlanStep("docker_restart", key, {"timeout": 10}),
            PlanStep("container_logs", key, {"lines": 50, "filters": ["error", "oom"]}),
        ),
        source=source,  # type: ignore[arg-type]
        reasoning="the container exited; restart it",
        policy="web-heal" if rule else None,
        rule=rule,
        drifts=(drift,),
        verify_timeout=20.0,
        verify_interval=1.0,
    )


# -- schema and modes


def test_creates_parent_dirs_wal_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    with Store(path) as s:
        assert path.exists()
        assert s.journal_mode() == "wal"
        assert s.schema_version() == SCHEMA_VERSION
    # Reopening runs no migration twice.
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION


def test_reopening_runs_no_migration_twice(backend: StoreBackend) -> None:
    with backend.open() as s:
        assert s.schema_version() == SCHEMA_VERSION
    with backend.open() as s:
        assert s.schema_version() == SCHEMA_VERSION
    versions = backend.peek("SELECT version FROM schema_version ORDER BY version")
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_refuses_a_newer_schema(backend: StoreBackend) -> None:
    backend.open().close()
    backend.run("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigurationError, match="newer"):
        backend.open()


def test_closed_store_refuses_calls(backend: StoreBackend) -> None:
    s = backend.open()
    s.close()
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.resource_records.resources()


# -- plans as data


def test_plan_round_trip() -> None:
    plan = make_plan()
    assert plan_from_dict(plan_to_dict(plan)) == plan
    gemini = make_plan(rule=None, source="gemini")
    assert plan_from_dict(plan_to_dict(gemini)) == gemini


def test_plan_from_dict_refuses_unknown_source() -> None:
    d = plan_to_dict(make_plan())
    d["source"] = "mystery"
    with pytest.raises(ValueError, match="unknown plan source"):
        plan_from_dict(d)


# -- resources


def test_resource_round_trip_and_pause(store: Store) -> None:
    spec = {"runtime": "process", "replicas": 2}
    store.resource_records.upsert_resource(
        KEY, "Container", spec, Health.HEALTHY, {"container.running": True}, 1000.0, "ok"
    )
    r = store.resource_records.resource(KEY)
    assert r is not None
    assert r["key"] == KEY and r["kind"] == "Container" and r["health"] == "healthy"
    assert r["spec"] == spec and r["signals"] == {"container.running": True}
    assert r["observed_at"] == 1000.0 and r["message"] == "ok"
    assert r["paused"] is False and r["last_fix"] is None and r["needs_operator"] is False

    store.resource_records.set_paused(KEY, True)
    store.resource_records.upsert_resource(KEY, "Container", spec, Health.DRIFTING, {}, 1001.0)
    r = store.resource_records.resource(KEY)
    assert r is not None and r["paused"] is True and r["health"] == "drifting"
    store.resource_records.upsert_resource(
        KEY, "Container", spec, Health.DRIFTING, {}, 1002.0, paused=False
    )
    assert store.resource_records.resource(KEY)["paused"] is False  # type: ignore[index]

    assert store.resource_records.resource("Container/absent") is None


def test_resources_sorted_with_last_fix(store: Store) -> None:
    for key in ("RedisCache/cache", "Container/web"):
        store.resource_records.upsert_resource(key, key.split("/")[0], {}, Health.HEALTHY, {}, 1.0)
    first = store.fix_records.begin_fix(KEY, make_plan(), {}, 10.0, 12.0, "exit")
    second = store.fix_records.begin_fix(KEY, make_plan(), {}, 20.0, 21.0, "exit")
    rows = store.resource_records.resources()
    assert [r["key"] for r in rows] == ["Container/web", "RedisCache/cache"]
    assert rows[0]["last_fix"]["id"] == second != first
    assert rows[1]["last_fix"] is None


def test_pause_before_first_observation(store: Store) -> None:
    store.resource_records.set_paused("PostgresDatabase/db", True)
    store.resource_records.upsert_resource(
        "PostgresDatabase/db", "PostgresDatabase", {}, Health.HEALTHY, {}, 5.0
    )
    r = store.resource_records.resource("PostgresDatabase/db")
    assert r is not None and r["paused"] is True and r["kind"] == "PostgresDatabase"


def test_remove_resource_keeps_history(store: Store) -> None:
    store.resource_records.upsert_resource(KEY, "Container", {}, Health.DRIFTING, {}, 1.0)
    fix_id = store.fix_records.begin_fix(KEY, make_plan(), {}, 1.0, 2.0, "exit")
    store.reconciliation_records.record_reconciliation(
        KEY, "Container", 1.0, 0.1, Outcome.FIXED, [], {}
    )
    store.signal_records.record_signals(KEY, 1.0, {"container.running": False})
    store.resource_records.set_needs_operator(KEY, "no plan")
    store.resource_records.remove_resource(KEY)
    assert store.resource_records.resource(KEY) is None
    assert store.resource_records.needs_operator(KEY) is False
    assert store.signal_records.signal_history(KEY, None, 0.0) == []
    assert store.fix_records.fix(fix_id) is not None
    assert len(store.reconciliation_records.reconciliations(KEY)) == 1


def test_needs_operator_cleared_when_healthy(store: Store) -> None:
    store.resource_records.upsert_resource(KEY, "Container", {}, Health.NEEDS_OPERATOR, {}, 1.0)
    assert store.resource_records.needs_operator(KEY) is False
    store.resource_records.set_needs_operator(KEY, "gemini unavailable", at=2.0)
    assert store.resource_records.needs_operator(KEY) is True
    r = store.resource_records.resource(KEY)
    assert r is not None and r["needs_operator_reason"] == "gemini unavailable"
    store.resource_records.upsert_resource(KEY, "Container", {}, Health.DRIFTING, {}, 3.0)
    assert store.resource_records.needs_operator(KEY) is True
    store.resource_records.upsert_resource(KEY, "Container", {}, Health.HEALTHY, {}, 4.0)
    assert store.resource_records.needs_operator(KEY) is False
    store.resource_records.set_needs_operator(KEY, "again")
    store.resource_records.set_needs_operator(KEY, None)
    assert store.resource_records.needs_operator(KEY) is False


def test_non_finite_signals_stored_as_null(store: Store) -> None:
    store.resource_records.upsert_resource(
        KEY, "Container", {}, Health.HEALTHY, {"a": float("inf"), "b": float("nan"), "c": 1.5}, 1.0
    )
    r = store.resource_records.resource(KEY)
    assert r is not None and r["signals"] == {"a": None, "b": None, "c": 1.5}


# -- signal history


def test_signal_history_filters_and_is_bounded(backend: StoreBackend) -> None:
    with backend.open(signal_retention_s=100.0) as s:
        for t in range(0, 300, 10):
            s.signal_records.record_signals(KEY, float(t), {"x": t, "y": -t, "z": True})
        s.signal_records.record_signals("Container/other", 0.0, {"x": 1})
        history = s.signal_records.signal_history(KEY, None, 0.0)
        # Only the last 100 s of samples survive the writes (190..290).
        assert [h["at"] for h in history] == [float(t) for t in range(190, 300, 10)]
        assert history[0]["signals"] == {"x": 190, "y": -190, "z": True}
        picked = s.signal_records.signal_history(KEY, ["x"], 250.0)
        assert picked == [{"at": float(t), "signals": {"x": t}} for t in (250, 260, 270, 280, 290)]
        # Pruning is per key: another resource's old sample stays until it writes again.
        assert len(s.signal_records.signal_history("Container/other", None, 0.0)) == 1


# -- reconciliations


def test_reconciliation_round_trip_and_counts(store: Store) -> None:
    drift = make_plan().drifts[0]
    rid = store.reconciliation_records.record_reconciliation(
        KEY, "Container", 100.0, 0.25, Outcome.FIXED, [drift], {"container.running": False}
    )
    eid = store.reconciliation_records.record_reconciliation(
        KEY, "Container", 200.0, 0.5, Outcome.ERROR, [], {}, error="docker unreachable"
    )
    store.reconciliation_records.record_reconciliation(
        "RedisCache/c", "RedisCache", 150.0, 0.1, Outcome.WAITING, [], {}
    )
    store.reconciliation_records.count_reconciliations({(KEY, Outcome.IN_SYNC): (3, 3.0)})

    rows = store.reconciliation_records.reconciliations(KEY)
    assert [r["id"] for r in rows] == [eid, rid]
    assert rows[0]["outcome"] == "error" and rows[0]["error"] == "docker unreachable"
    assert rows[1]["drifts"][0]["signal"] == "container.running"
    assert rows[1]["drifts"][0]["evidence"] == {
        "container.exit_code": 137,
        "container.oom_killed": True,
    }
    assert rows[1]["signals"] == {"container.running": False}
    assert rows[1]["duration_s"] == 0.25
    assert len(store.reconciliation_records.reconciliations()) == 3
    assert len(store.reconciliation_records.reconciliations(limit=1)) == 1
    assert store.reconciliation_records.reconciliation_counts(KEY) == {
        "fixed": 1,
        "error": 1,
        "in-sync": 3,
    }
    assert store.reconciliation_records.reconciliation_counts() == {
        "fixed": 1,
        "error": 1,
        "in-sync": 3,
        "waiting": 1,
    }


# -- fixes and the journal


def test_fix_journal_round_trip(store: Store, clock: Clock, backend: StoreBackend) -> None:
    plan = make_plan()
    fix_id = store.fix_records.begin_fix(
        KEY,
        plan,
        {"container.running": False},
        fault_at=100.0,
        detected_at=102.5,
        root_cause="process exited with 137",
    )
    running = store.fix_records.fix(fix_id)
    assert running is not None
    assert running["status"] == "running" and running["outcome"] is None
    assert running["source"] == "rules" and running["policy"] == "web-heal"
    assert running["rule"] == "restart" and running["reasoning"] == plan.reasoning
    assert running["drifts"][0]["evidence"]["container.exit_code"] == 137
    assert [s["tool"] for s in running["planned_steps"]] == ["docker_restart", "container_logs"]
    assert plan_from_dict(running["plan"]) == plan
    assert running["time_to_detect"] == 2.5 and running["steps"] == []

    clock.now = 103.0
    step_id = store.fix_records.journal_step(fix_id, 0, plan.steps[0])
    # The journal row is committed before the step runs: another connection sees it.
    assert backend.peek("SELECT status FROM fix_steps WHERE id = ?", (step_id,)) == [("started",)]
    started = store.fix_records.fix(fix_id)
    assert started is not None
    assert started["steps"][0]["status"] == "started" and started["steps"][0]["result"] is None

    clock.now = 104.0
    store.fix_records.finish_step(
        step_id, ToolResult.success(pid=42), 1.0, mcp_call={"name": "docker_restart"}
    )
    failing = store.fix_records.journal_step(fix_id, 1, plan.steps[1])
    store.fix_records.finish_step(failing, ToolResult.failure("no logs"), 0.2)
    store.fix_records.finish_fix(
        fix_id,
        Outcome.FIXED,
        True,
        {"container.running": True},
        finished_at=110.0,
        recovered_at=109.0,
        message="verified",
    )
    done = store.fix_records.fix(fix_id)
    assert done is not None
    assert done["status"] == "done" and done["outcome"] == "fixed" and done["verified"] is True
    assert done["signals_before"] == {"container.running": False}
    assert done["signals_after"] == {"container.running": True}
    assert done["time_to_detect"] == 2.5 and done["time_to_recover"] == 9.0
    assert done["finished_at"] == 110.0 and done["message"] == "verified"
    first, second = done["steps"]
    assert first["index"] == 0 and first["params"] == {"timeout": 10}
    assert first["started_at"] == 103.0 and first["finished_at"] == 104.0
    assert first["result"] == {"status": "ok", "data": {"pid": 42}, "error": None}
    assert first["mcp_call"] == {"name": "docker_restart"} and first["duration_s"] == 1.0
    assert second["result"] == {"status": "error", "data": {}, "error": "no logs"}
    assert store.fix_records.last_fix(KEY)["id"] == fix_id  # type: ignore[index]
    assert store.fix_records.last_fix("Container/none") is None
    assert store.fix_records.fix(9999) is None


def test_a_step_of_a_fix_is_journaled_once(store: Store) -> None:
    # The execution journal's claim: a second row for the same (fix, step) is refused, so
    # two controllers sharing a store can never both run one step.
    plan = make_plan()
    fix_id = store.fix_records.begin_fix(KEY, plan, {}, 1.0, 2.0, "exit")
    first = store.fix_records.journal_step(fix_id, 0, plan.steps[0])
    with pytest.raises(StoreError, match=r"already journaled") as caught:
        store.fix_records.journal_step(fix_id, 0, plan.steps[0])
    assert not isinstance(caught.value, StoreBusyError | StoreUnusableError)
    fix = store.fix_records.fix(fix_id)
    assert fix is not None and [s.id for s in fix.steps] == [first]
    # The refused claim was rolled back whole: the store goes on, and the next step is free.
    store.fix_records.journal_step(fix_id, 1, plan.steps[1])
    assert store.writable and store.backlog_size == 0


def test_not_recovered_fix_has_no_time_to_recover(store: Store) -> None:
    fix_id = store.fix_records.begin_fix(KEY, make_plan(), {}, 10.0, 11.0, "oom", dry_run=True)
    store.fix_records.finish_fix(fix_id, Outcome.DRY_RUN, False, {}, 12.0, None)
    fix = store.fix_records.fix(fix_id)
    assert fix is not None
    assert fix["dry_run"] is True and fix["verified"] is False
    assert fix["time_to_recover"] is None and fix["recovered_at"] is None


def test_fixes_filters(store: Store) -> None:
    a = store.fix_records.begin_fix(KEY, make_plan(), {}, 1.0, 2.0, "x")
    store.fix_records.finish_fix(a, Outcome.FIXED, True, {}, 3.0, 3.0)
    b = store.fix_records.begin_fix(KEY, make_plan(), {}, 4.0, 5.0, "x")
    store.fix_records.finish_fix(b, Outcome.FAILED, False, {}, 6.0, None)
    c = store.fix_records.begin_fix("RedisCache/c", make_plan("RedisCache/c"), {}, 7.0, 8.0, "x")
    assert [f["id"] for f in store.fix_records.fixes()] == [c, b, a]
    assert [f["id"] for f in store.fix_records.fixes(KEY)] == [b, a]
    assert [f["id"] for f in store.fix_records.fixes(outcome=Outcome.FIXED)] == [a]
    assert [f["id"] for f in store.fix_records.fixes(status="running")] == [c]
    assert [f["id"] for f in store.fix_records.fixes(limit=1)] == [c]
    assert store.fix_records.fixes()[0]["kind"] == "RedisCache"


def test_killed_controller_leaves_interrupted_record(backend: StoreBackend) -> None:
    plan = make_plan()
    first = backend.open()
    fix_id = first.fix_records.begin_fix(KEY, plan, {}, 1.0, 2.0, "exit")
    done_step = first.fix_records.journal_step(fix_id, 0, plan.steps[0])
    first.fix_records.finish_step(done_step, ToolResult.success(), 0.5)
    cut_step = first.fix_records.journal_step(fix_id, 1, plan.steps[1])
    first.close()  # the process dies here: nothing finished the fix

    second = backend.open()
    try:
        assert second.fix_records.interrupted_fixes() == []
        assert second.fix_records.mark_interrupted(50.0) == 1
        assert second.fix_records.mark_interrupted(60.0) == 0
        fix = second.fix_records.fix(fix_id)
        assert fix is not None
        assert fix["status"] == "interrupted" and fix["finished_at"] == 50.0
        assert "interrupted" in fix["message"]
        steps = {s["id"]: s for s in fix["steps"]}
        assert steps[done_step]["status"] == "ok"
        assert steps[cut_step]["status"] == "interrupted"
        assert steps[cut_step]["finished_at"] == 50.0
        interrupted = second.fix_records.interrupted_fixes()
        assert [f["id"] for f in interrupted] == [fix_id]
        assert len(interrupted[0]["steps"]) == 2
        assert second.fix_records.interrupted_fixes(since=51.0) == []
    finally:
        second.close()


def test_fix_stats(store: Store) -> None:
    # Five fixed by the rule with recovery times 1..5 s, one failed, one interrupted, one
    # dry run (left out), one gemini fix still running.
    for ttr in (1.0, 2.0, 3.0, 4.0, 5.0):
        fid = store.fix_records.begin_fix(KEY, make_plan(), {}, 100.0, 100.5, "exit")
        sid = store.fix_records.journal_step(fid, 0, PlanStep("docker_restart", KEY))
        store.fix_records.finish_step(sid, ToolResult.success(), ttr / 10)
        store.fix_records.finish_fix(fid, Outcome.FIXED, True, {}, 100.0 + ttr, 100.0 + ttr)
    failed = store.fix_records.begin_fix(KEY, make_plan(), {}, 100.0, 101.0, "exit")
    sid = store.fix_records.journal_step(failed, 0, PlanStep("docker_restart", KEY))
    store.fix_records.finish_step(sid, ToolResult.failure("boom"), 0.1)
    store.fix_records.finish_fix(failed, Outcome.FAILED, False, {}, 130.0, None)
    store.fix_records.begin_fix(KEY, make_plan(), {}, 100.0, 101.0, "exit")
    store.fix_records.mark_interrupted(140.0)
    dry = store.fix_records.begin_fix(KEY, make_plan(), {}, 100.0, 101.0, "exit", dry_run=True)
    store.fix_records.finish_fix(dry, Outcome.DRY_RUN, False, {}, 101.0, None)
    store.fix_records.begin_fix(KEY, make_plan(rule=None, source="gemini"), {}, 200.0, 201.0, "?")

    stats = store.fix_stats_records.fix_stats()
    assert stats["count"] == 8 and stats["running"] == 1 and stats["closed"] == 7
    assert stats["fixed"] == 5 and stats["interrupted"] == 1
    assert stats["success_rate"] == pytest.approx(5 / 7)
    assert stats["median_time_to_recover"] == 3.0
    assert stats["p95_time_to_recover"] == pytest.approx(4.8)  # 4 + 0.8 * (5 - 4)
    assert set(stats["by_rule"]) == {"web-heal/restart", "gemini"}
    rule = stats["by_rule"]["web-heal/restart"]
    assert rule["count"] == 7 and rule["success_rate"] == pytest.approx(5 / 7)
    assert stats["by_rule"]["gemini"]["success_rate"] is None
    tool = stats["by_tool"]["docker_restart"]
    assert tool["steps"] == 6 and tool["ok"] == 5 and tool["in_fixed"] == 5
    assert tool["step_success_rate"] == pytest.approx(5 / 6)

    later = store.fix_stats_records.fix_stats(since=150.0)
    assert later["count"] == 1 and later["by_tool"] == {}
    assert later["median_time_to_recover"] is None and later["p95_time_to_recover"] is None


# -- guard, audit, pending plans


def test_guard_decisions_round_trip(store: Store) -> None:
    plan = make_plan()
    a = store.audit_records.record_guard_decision(KEY, plan, True, "allowed", 10.0)
    r = store.audit_records.record_guard_decision(KEY, plan, False, "fix budget exceeded", 20.0)
    store.audit_records.record_guard_decision(
        "RedisCache/c", make_plan("RedisCache/c"), True, "ok", 15.0
    )
    rows = store.audit_records.guard_decisions(KEY)
    assert [d["id"] for d in rows] == [r, a]
    assert rows[0]["admitted"] is False and rows[0]["reason"] == "fix budget exceeded"
    assert rows[0]["source"] == "rules" and rows[0]["rule"] == "restart"
    assert plan_from_dict(rows[0]["plan"]) == plan
    assert (
        len(store.audit_records.guard_decisions()) == 3
        and len(store.audit_records.guard_decisions(limit=2)) == 2
    )


def test_actions_round_trip(store: Store) -> None:
    a = store.audit_records.record_action(
        KEY, "pause", "operator:alice", {"why": "maintenance"}, 10.0
    )
    b = store.audit_records.record_action(None, "start", "controller", {}, 5.0)
    rows = store.audit_records.actions()
    assert [x["id"] for x in rows] == [a, b]
    assert rows[0] == {
        "id": a,
        "key": KEY,
        "at": 10.0,
        "action": "pause",
        "actor": "operator:alice",
        "detail": {"why": "maintenance"},
    }
    assert rows[1]["key"] is None
    assert [x["id"] for x in store.audit_records.actions(key=KEY)] == [a]
    assert len(store.audit_records.actions(limit=1)) == 1


def test_pending_plans(store: Store) -> None:
    plan = make_plan(rule=None, source="gemini")
    first = store.pending_records.add_pending_plan(
        KEY, plan, "destructive step needs approval", 10.0
    )
    second = store.pending_records.add_pending_plan(
        "RedisCache/c", make_plan("RedisCache/c"), "r", 20.0
    )
    assert [p["id"] for p in store.pending_records.pending_plans()] == [first, second]
    got = store.pending_records.pending_plan(first)
    assert got is not None and got["status"] == "pending" and got["actor"] is None
    assert plan_from_dict(got["plan"]) == plan

    assert store.pending_records.set_pending_status(
        first, "approved", "alice", 30.0, expected="pending"
    )
    # A second click loses the compare-and-set.
    assert not store.pending_records.set_pending_status(
        first, "approved", "bob", 31.0, expected="pending"
    )
    got = store.pending_records.pending_plan(first)
    assert got is not None and got["status"] == "approved"
    assert got["actor"] == "alice" and got["decided_at"] == 30.0
    assert [p["id"] for p in store.pending_records.pending_plans()] == [second]
    assert [p["id"] for p in store.pending_records.pending_plans("approved")] == [first]
    assert len(store.pending_records.pending_plans(None)) == 2
    assert [p["id"] for p in store.pending_records.pending_plans(None, key=KEY)] == [first]
    assert store.pending_records.set_pending_status(second, "rejected", "bob", 32.0)
    assert store.pending_records.pending_plan(12345) is None
    with pytest.raises(ValueError, match="unknown pending status"):
        store.pending_records.set_pending_status(second, "maybe", "bob", 33.0)


def test_llm_interactions_round_trip(store: Store) -> None:
    plan = make_plan(rule=None, source="gemini")
    i = store.llm_records.record_llm_interaction(
        KEY,
        "gemini",
        "gemini-2.5-flash",
        {"contents": ["drift"]},
        {"candidates": []},
        plan,
        tokens_in=120,
        tokens_out=30,
        latency_s=0.8,
        at=10.0,
    )
    store.llm_records.record_llm_interaction(
        KEY, "gemini", "m", "prompt", None, None, 0, 0, 5.0, at=11.0, error="timeout"
    )
    rows = store.llm_records.llm_interactions(KEY)
    assert rows[1]["id"] == i and rows[1]["prompt"] == {"contents": ["drift"]}
    assert plan_from_dict(rows[1]["plan"]) == plan and rows[1]["tokens_in"] == 120
    assert rows[0]["error"] == "timeout" and rows[0]["plan"] is None


# -- threads


def test_concurrent_writers_do_not_corrupt(store: Store) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        try:
            barrier.wait()
            key = f"Container/w{n}"
            for i in range(50):
                store.resource_records.upsert_resource(
                    key, "Container", {}, Health.HEALTHY, {"i": i}, float(i)
                )
                store.signal_records.record_signals(key, float(i), {"i": i})
                fid = store.fix_records.begin_fix(key, make_plan(key), {}, float(i), float(i), "t")
                sid = store.fix_records.journal_step(fid, 0, PlanStep("docker_restart", key))
                store.fix_records.finish_step(sid, ToolResult.success(), 0.01)
                store.fix_records.finish_fix(fid, Outcome.FIXED, True, {}, float(i), float(i))
                store.resource_records.resources()
        except BaseException as exc:  # collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.resource_records.resources()) == 4
    assert store.fix_stats_records.fix_stats()["fixed"] == 200
    assert all(
        len(store.signal_records.signal_history(f"Container/w{n}", None, 0.0)) == 50
        for n in range(4)
    )
    assert all(len(f["steps"]) == 1 for f in (store.fix_records.fix(i) for i in range(1, 201)) if f)


def test_an_id_beyond_64_bits_finds_nothing(store: Store) -> None:
    assert store.fix_records.fix(2**63) is None
    assert store.fix_records.fix(-(2**70)) is None
    assert store.pending_records.pending_plan(10**30) is None
