"""Every outcome of a reconcile pass, on a controller whose drivers, planner and time are fakes.

The controller, reconciler, escalation, guard, act, verify and store are the real ones (the
store on a temporary SQLite file); the container runtime, the datastores and the LLM are
the fakes of ``controller_fakes``. Integration tests cover the same paths on real servers.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import pytest

from driftmend.errors import StoreBusyError, StoreUnusableError
from driftmend.model import Outcome, Plan, PlanStep
from driftmend.planners.prompt import build_prompt
from driftmend.store import PendingPlan, ResourceState
from tests.unit.controller_fakes import FakePlanner, Rig, rig
from tests.unit.factories import container, policy

KEY = "Container/shop"
# The default restart rule, run only with an operator's approval.
APPROVED_RESTART = [
    {
        "name": "restart",
        "when": [{"signal": "container.running", "operator": "==", "value": False}],
        "do": [{"tool": "container_restart"}],
        "approval": "operator",
    }
]


def escalating(mode: str, when: str = "always", **spec: Any) -> Any:
    """The default restart policy with an ``escalate`` block."""
    return policy(escalate={"planner": "gemini", "mode": mode, "when": when}, **spec)


def state(r: Rig) -> ResourceState:
    """The recorded state of ``KEY``, which a test expects to exist."""
    found = r.store.resource_records.resource(KEY)
    assert found is not None, f"{KEY} has no recorded state"
    return found


def plan_of(r: Rig, plan_id: int) -> PendingPlan:
    """A parked plan a test expects to exist."""
    found = r.store.pending_records.pending_plan(plan_id)
    assert found is not None, f"no parked plan {plan_id}"
    return found


def crash(r: Rig) -> None:
    r.runtime.running["shop"] = False


async def test_a_resource_that_matches_its_spec_is_in_sync(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.IN_SYNC
    assert state(r)["health"] == "healthy"
    assert r.store.reconciliation_records.reconciliations(KEY) == []  # a quiet pass is only counted
    assert r.runtime.restarts == []


async def test_an_undeclared_key_is_in_sync_and_touches_nothing(tmp_path: Path) -> None:
    r = rig(tmp_path)
    result = await r.controller.reconcile("Container/ghost")
    assert (result.outcome, result.message) == (Outcome.IN_SYNC, "not declared")
    assert r.store.resource_records.resource("Container/ghost") is None


async def test_a_crash_is_fixed_by_the_rule_and_verified(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])
    crash(r)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.FIXED and result.fix_id is not None
    assert r.runtime.restarts == ["shop"]
    fix = r.store.fix_records.fix(result.fix_id)
    assert fix is not None and fix["outcome"] == "fixed" and fix["verified"] is True
    assert [s["tool"] for s in fix["steps"]] == ["container_restart"]
    assert state(r)["health"] == "healthy"


async def test_the_recorded_pass_says_how_long_it_took(tmp_path: Path) -> None:
    # The Took column: a pass that found something used to be recorded with 0.0 seconds.
    r = rig(tmp_path)
    r.apply([container()], [policy()])
    crash(r)
    await r.controller.reconcile(KEY)
    [row] = r.store.reconciliation_records.reconciliations(KEY)
    assert row["outcome"] == "fixed"
    assert row["duration_s"] > 0


async def test_a_fix_that_does_not_hold_fails_and_backs_off(tmp_path: Path) -> None:
    r = rig(tmp_path, backoff_base=2.0, backoff_cap=60.0)
    r.apply([container()], [policy()])
    crash(r)
    r.runtime.stuck.add("shop")
    first = await r.controller.reconcile(KEY)
    assert first.outcome is Outcome.FAILED
    assert first.requeue_after is not None and 2.0 <= first.requeue_after <= 2.2
    assert r.controller.queue.failures(KEY) == 1
    assert r.controller.queue.held_back(KEY) > 1.0
    fix = r.store.fix_records.fix(first.fix_id or 0)
    assert fix is not None and fix["outcome"] == "failed" and fix["verified"] is False
    assert state(r)["health"] == "drifting"
    r.clock.advance(120)  # past the rule's cooldown
    second = await r.controller.reconcile(KEY)
    assert second.outcome is Outcome.FAILED
    assert second.requeue_after is not None and 4.0 <= second.requeue_after <= 4.4


async def test_a_fix_that_holds_ends_the_backoff(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])
    crash(r)
    r.runtime.stuck.add("shop")
    await r.controller.reconcile(KEY)
    assert r.controller.queue.failures(KEY) == 1
    r.runtime.stuck.clear()
    r.clock.advance(120)
    assert (await r.controller.reconcile(KEY)).outcome is Outcome.FIXED
    assert r.controller.queue.failures(KEY) == 0
    assert r.controller.queue.held_back(KEY) == 0.0


async def test_an_exhausted_holding_ladder_needs_an_operator_and_runs_nothing_more(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy(onExhausted="hold")])  # attempts: at most 2 in 5 minutes
    crash(r)
    r.runtime.stuck.add("shop")
    outcomes = []
    for _ in range(4):
        outcomes.append((await r.controller.reconcile(KEY)).outcome)
        r.clock.advance(30)
    assert outcomes.count(Outcome.FAILED) == 2
    assert outcomes[-1] is Outcome.NEEDS_OPERATOR
    row = state(r)
    assert row["needs_operator"] is True and row["health"] == "needs-operator"
    assert len(r.runtime.restarts) == 2  # nothing more ran once the ladder was spent
    fixed = await r.controller.operations.trigger_fix(KEY, "alice")  # Fix now still runs
    assert fixed.outcome is Outcome.FAILED and len(r.runtime.restarts) == 3
    r.runtime.stuck.clear()
    fixed = await r.controller.operations.trigger_fix(KEY, "alice")
    assert fixed.outcome is Outcome.FIXED and state(r)["needs_operator"] is False
    assert [f.plan["trigger"] for f in r.store.fix_records.fixes(key=KEY)][:2] == [
        "operator",
        "operator",
    ]


async def test_an_exhausted_ladder_is_flagged_and_retried_with_backoff_until_healed(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy(backoff={"initial": "10s", "max": "40s"})])
    crash(r)
    r.runtime.stuck.add("shop")
    restarted_at: list[float] = []
    flagged: list[bool] = []
    for _ in range(40):  # 40 passes 5 s apart: 200 s of a crash loop
        before = len(r.runtime.restarts)
        await r.controller.reconcile(KEY)
        r.controller.queue.forget(KEY)  # the test drives the passes, not the queue's backoff
        if len(r.runtime.restarts) > before:
            restarted_at.append(r.clock())
        flagged.append(state(r)["needs_operator"])
        r.clock.advance(5)
    gaps = [b - a for a, b in itertools.pairwise(restarted_at)]
    # Two ladder attempts, then retries 10 s, 20 s, 40 s, 40 s... after each ended fix
    # (a fix here takes its 30 s verify timeout on the fake clock).
    assert len(restarted_at) >= 5
    waits = [gap - 30 for gap in gaps[1:]]
    assert waits[:4] == [10, 20, 40, 40], gaps
    assert flagged[-1] is True and state(r)["health"] == "needs-operator"
    assert "ladder exhausted" in (state(r)["needs_operator_reason"] or "")
    r.runtime.stuck.clear()  # the crash loop ends: the next retry heals it
    for _ in range(12):
        result = await r.controller.reconcile(KEY)
        r.controller.queue.forget(KEY)
        if result.outcome is Outcome.FIXED:
            break
        r.clock.advance(5)
    assert result.outcome is Outcome.FIXED
    assert state(r)["needs_operator"] is False


async def test_a_paused_resource_is_observed_not_healed_until_an_operator_asks(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])
    await r.controller.reconcile(KEY)
    r.controller.operations.set_paused(KEY, True, "alice")
    crash(r)
    assert (await r.controller.reconcile(KEY)).outcome is Outcome.PAUSED
    assert r.runtime.restarts == []
    fixed = await r.controller.operations.trigger_fix(KEY, "alice")
    assert fixed.outcome is Outcome.FIXED and r.runtime.restarts == ["shop"]
    assert state(r)["paused"] is True  # Fix now does not lift the pause
    assert [a["action"] for a in r.store.audit_records.actions()][:2] == ["fix", "pause"]


async def test_dry_run_records_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    r = rig(tmp_path, dry_run=True)
    r.apply([container()], [policy()])
    crash(r)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.DRY_RUN
    assert r.runtime.restarts == []
    [fix] = r.store.fix_records.fixes(key=KEY)
    assert fix["dry_run"] is True and fix["outcome"] == "dry-run"


async def test_a_plan_that_needs_approval_is_parked_once_then_runs_when_approved(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy(rules=APPROVED_RESTART)])
    crash(r)
    for _ in range(2):
        result = await r.controller.reconcile(KEY)
        assert result.outcome is Outcome.NEEDS_OPERATOR
        assert "awaiting an operator's approval" in result.message
    [parked] = r.store.pending_records.pending_plans(key=KEY)
    assert r.runtime.restarts == []
    approved = await r.controller.operations.approve_plan(parked["id"], "alice")
    assert approved.outcome is Outcome.FIXED and r.runtime.restarts == ["shop"]
    assert plan_of(r, parked["id"])["status"] == "executed"


async def test_a_parked_plan_is_superseded_when_the_drift_is_over(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy(rules=APPROVED_RESTART)])
    crash(r)
    await r.controller.reconcile(KEY)
    [parked] = r.store.pending_records.pending_plans(key=KEY)
    r.runtime.running["shop"] = True  # it came back by itself
    assert (await r.controller.reconcile(KEY)).outcome is Outcome.IN_SYNC
    assert plan_of(r, parked["id"])["status"] == "superseded"
    assert state(r)["needs_operator"] is False


async def test_a_driver_error_ends_the_pass_as_error_and_is_recorded(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])
    r.runtime.fail_observe = "the engine is restarting"
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.ERROR and result.requeue_after == 2.0
    [row] = r.store.reconciliation_records.reconciliations(KEY)
    assert row["outcome"] == "error" and row["error"] == "the engine is restarting"


# --- escalation --------------------------------------------------------------------------


async def test_auto_escalation_runs_the_admitted_llm_plan(tmp_path: Path) -> None:
    planner = FakePlanner(steps=["container_restart"])
    r = rig(tmp_path, planner=planner)
    r.apply([container()], [escalating("auto")])
    crash(r)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.FIXED and result.message == "fixed by the gemini plan"
    assert len(planner.requests) == 1 and r.runtime.restarts == ["shop"]
    [asked] = r.store.llm_records.llm_interactions(KEY)
    assert asked["decision"] == "admitted" and asked["fix_id"] == result.fix_id


async def test_approve_escalation_parks_the_llm_plan_for_an_operator(tmp_path: Path) -> None:
    r = rig(tmp_path, planner=FakePlanner(steps=["container_restart"]))
    r.apply([container()], [escalating("approve")])
    crash(r)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.NEEDS_OPERATOR
    assert r.runtime.restarts == []
    [parked] = r.store.pending_records.pending_plans(key=KEY)
    [asked] = r.store.llm_records.llm_interactions(KEY)
    assert asked["decision"] == "pending" and asked["pending_plan_id"] == parked["id"]


async def test_shadow_escalation_beside_a_rule_records_and_judges_the_llm_plan(
    tmp_path: Path,
) -> None:
    planner = FakePlanner(steps=["container_restart"])
    r = rig(tmp_path, planner=planner)
    r.apply([container()], [escalating("shadow")])
    crash(r)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.FIXED  # the rule ran; the LLM only watched
    assert r.runtime.restarts == ["shop"]
    [asked] = r.store.llm_records.llm_interactions(KEY)
    assert asked["decision"] == "shadow" and asked["agreement"] == "agrees"


async def test_an_llm_with_no_plan_hands_the_resource_to_an_operator(tmp_path: Path) -> None:
    r = rig(tmp_path, planner=FakePlanner(steps=()))
    r.apply([container()], [escalating("auto")])
    crash(r)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.NEEDS_OPERATOR
    assert "proposed no plan" in result.message
    assert r.store.llm_records.llm_interactions(KEY)[0]["decision"] == "no-plan"
    assert state(r)["needs_operator"] is True


async def test_an_llm_plan_outside_its_allowlist_is_refused(tmp_path: Path) -> None:
    r = rig(tmp_path, planner=FakePlanner(steps=["container_scale"]))
    r.apply([container()], [escalating("auto")])
    crash(r)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.NEEDS_OPERATOR
    assert "rejected by the guard" in result.message
    assert r.store.llm_records.llm_interactions(KEY)[0]["decision"] == "rejected"
    assert r.runtime.restarts == []


async def test_the_llm_sees_earlier_fixes_with_their_time_and_tools(tmp_path: Path) -> None:
    # The history handed to the model used to leave out detected_at and the steps, so the
    # prompt showed earlier fixes with no time and no tools.
    planner = FakePlanner(steps=())
    r = rig(tmp_path, planner=planner)
    r.apply([container()], [policy()])
    crash(r)
    assert (await r.controller.reconcile(KEY)).outcome is Outcome.FIXED
    r.apply([container()], [escalating("auto")])
    crash(r)
    r.clock.advance(600)
    await r.controller.reconcile(KEY)
    [request] = planner.requests
    [earlier] = request.history
    assert earlier["detected_at"] == pytest.approx(1_000_000.0)
    user = build_prompt(request).user
    assert "1970-01-12 13:46:40 UTC" in user
    assert "ran container_restart" in user


async def test_a_store_that_cannot_be_written_ends_the_pass_without_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])

    def full(*args: Any, **kwargs: Any) -> None:
        raise StoreUnusableError("the store's disk is full")

    monkeypatch.setattr(r.store.signal_records, "record_signals", full)
    monkeypatch.setattr(r.store.reconciliation_records, "record_reconciliation", full)
    with caplog.at_level(logging.WARNING, "driftmend.reconciler"):
        result = await r.controller.reconcile(KEY)
    # The pass itself went well: it says so, and is looked at again soon (not only at the
    # next resync) so that its record is written once the disk has room.
    assert result.outcome is Outcome.IN_SYNC
    assert result.requeue_after == 5.0
    assert "could not be recorded: the store's disk is full" in caplog.text


async def test_a_busy_store_is_retried_after_its_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])

    def locked(*args: Any, **kwargs: Any) -> None:
        raise StoreBusyError("the store is locked by another writer", delay=0.5)

    monkeypatch.setattr(r.store.signal_records, "record_signals", locked)
    result = await r.controller.reconcile(KEY)
    assert result.requeue_after == 0.5


async def test_a_flag_set_before_the_first_recorded_pass_is_honoured(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy(onExhausted="hold")])
    r.store.resource_records.set_needs_operator(KEY, "an operator is looking at it")
    crash(r)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.NEEDS_OPERATOR
    assert result.message == "an operator is looking at it"
    assert r.runtime.restarts == []


async def test_a_bug_while_recording_a_pass_does_not_escape_reconcile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a metrics bug")

    monkeypatch.setattr(r.controller.metrics, "set_health", broken)
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.IN_SYNC and result.requeue_after == 5.0


async def test_fixes_a_stop_interrupted_are_no_attempts(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])  # attempts: at most 2 in 5 minutes
    crash(r)
    plan = Plan(KEY, (PlanStep("container_restart", KEY),), "rules", "t", "p", "restart")
    for _ in range(2):
        r.store.fix_records.begin_fix(KEY, plan, {}, r.clock(), r.clock(), "crash")
    assert r.store.fix_records.mark_interrupted(r.clock()) == 2
    result = await r.controller.reconcile(KEY)
    assert result.outcome is Outcome.FIXED
    assert r.store.fix_records.fixes(key=KEY)[0].plan["trigger"] == "ladder"


# --- quiet passes: no reads, paced writes (issue 15) -------------------------------------------


async def test_quiet_passes_read_nothing_and_are_written_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rig(tmp_path, record_interval=30.0)
    r.apply([container()], [policy()])
    assert (await r.controller.reconcile(KEY)).outcome is Outcome.IN_SYNC
    first = state(r).observed_at

    def no_reads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a quiet pass read the store")

    records = r.store.resource_records
    monkeypatch.setattr(records, "needs_operator", no_reads)
    monkeypatch.setattr(r.store.pending_records, "pending_plans", no_reads)
    for _ in range(10):
        r.clock.advance(1.0)
        assert (await r.controller.reconcile(KEY)).outcome is Outcome.IN_SYNC
    monkeypatch.undo()
    assert state(r).observed_at == first  # ten passes, no write
    assert len(r.store.signal_records.signal_history(KEY, None, 0.0)) == 1
    r.clock.advance(20.0)  # 30 s after the first write
    await r.controller.reconcile(KEY)
    assert state(r).observed_at == first + 30.0
    assert len(r.store.signal_records.signal_history(KEY, None, 0.0)) == 2
    # Every pass is counted, the quiet ones added up in memory until a flush.
    r.controller.reconciler.flush_counts()
    counts = r.store.reconciliation_records.reconciliation_counts(KEY)
    assert counts == {"in-sync": 12}


async def test_a_change_is_written_at_once_and_ends_the_quiet(tmp_path: Path) -> None:
    r = rig(tmp_path, record_interval=30.0)
    r.apply([container()], [policy()])
    await r.controller.reconcile(KEY)
    r.clock.advance(1.0)
    await r.controller.reconcile(KEY)
    crash(r)
    r.clock.advance(1.0)
    result = await r.controller.reconcile(KEY)  # drift: fixed through the policy
    assert result.outcome is Outcome.FIXED
    history = r.store.signal_records.signal_history(KEY, None, 0.0)
    assert [s["signals"]["container.running"] for s in history][-1] is False
    # A flag set while a drift lasts is cleared by the next in-sync pass: the drift ended the
    # quiet, so that pass reads the flag again.
    r.store.resource_records.set_needs_operator(KEY, "look at it")
    r.clock.advance(1.0)
    await r.controller.reconcile(KEY)
    assert not r.store.resource_records.needs_operator(KEY)
    assert state(r).observed_at == r.clock.now  # the row changed (health, message): written


async def test_counts_the_store_refused_are_kept_for_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rig(tmp_path)
    r.apply([container()], [policy()])
    for _ in range(3):
        await r.controller.reconcile(KEY)
    records = r.store.reconciliation_records
    real = records.count_reconciliations

    def full(*args: Any, **kwargs: Any) -> None:
        raise StoreUnusableError("the store's disk is full")

    monkeypatch.setattr(records, "count_reconciliations", full)
    with pytest.raises(StoreUnusableError):
        r.controller.reconciler.flush_counts()
    monkeypatch.setattr(records, "count_reconciliations", real)
    await r.controller.reconcile(KEY)
    r.controller.reconciler.flush_counts()
    assert records.reconciliation_counts(KEY) == {"in-sync": 4}


async def test_a_new_term_reads_afresh_what_another_leader_flagged(tmp_path: Path) -> None:
    # An operator replica that leads again finds a flag the leader between its terms set.
    r = rig(tmp_path)
    r.apply([container()], [policy()])
    await r.controller.reconcile(KEY)
    await r.controller.reconcile(KEY)  # quiet now: the next in-sync pass reads no flag
    r.store.resource_records.set_needs_operator(KEY, "flagged by the other leader")
    await r.controller.reconcile(KEY)
    assert r.store.resource_records.needs_operator(KEY)  # the quiet pass did not look
    r.controller.reconciler.start_afresh()  # what Controller.start does
    await r.controller.reconcile(KEY)
    assert not r.store.resource_records.needs_operator(KEY)
