"""Resuming the fixes a controller left unfinished, from their step journal, and the claim
that keeps a step from running twice.

A "dead controller" is simulated by writing what it would have left in the store (a fix
``running``, its steps journaled up to where it stopped); then a controller on fakes
(``controller_fakes.rig``: real store, catalogue, guard, act and verify) starts on that
store. The fake runtime counts every restart its tools ask for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from driftmend.controller import SHUT_DOWN
from driftmend.execution import UNKNOWN_STEP
from driftmend.model import Health, Outcome, Plan, PlanStep, ToolResult
from driftmend.store import Fix, Store
from driftmend.store.db import Database
from driftmend.store.fixes import FixRecords
from tests.unit.controller_fakes import Rig, rig
from tests.unit.factories import container, policy

KEY = "Container/shop"
RESUMED = "resumed after the controller that began it stopped"


def left_running(
    r: Rig,
    *tools: str,
    key: str = KEY,
    finished: int = 0,
    started: int = 0,
    failed: bool = False,
) -> int:
    """A fix of ``tools`` that a controller left ``running``: its first ``finished`` steps
    done (the last one failed when ``failed``), the next ``started`` journaled and never
    finished, the rest not begun. Returns the fix's id."""
    plan = Plan(key, tuple(PlanStep(t, key) for t in tools), "rules", "crash", "p", "restart")
    records = r.store.fix_records
    now = r.clock()
    fix_id = records.begin_fix(key, plan, {"container.running": False}, now - 5, now - 4, "crash")
    for i in range(finished):
        step_id = records.journal_step(fix_id, i, plan.steps[i])
        last = failed and i == finished - 1
        result = ToolResult.failure("engine gone") if last else ToolResult.success()
        records.finish_step(step_id, result, 0.1)
    for i in range(finished, finished + started):
        records.journal_step(fix_id, i, plan.steps[i])
    return fix_id


async def closed(r: Rig, fix_id: int) -> Fix:
    """The fix once the starting controller has resumed or closed it (deadline: 5 s)."""
    for _ in range(500):
        fix = r.store.fix_records.fix(fix_id)
        assert fix is not None
        if fix.status == "done" or (fix.status == "interrupted" and fix.verified is not None):
            return fix
        await asyncio.sleep(0.01)
    raise AssertionError(f"fix {fix_id} was neither resumed nor closed: {fix}")


async def started(r: Rig) -> Rig:
    r.apply([container()], [policy()])
    await r.controller.start()
    return r


async def test_a_fix_whose_steps_all_finished_is_only_verified(tmp_path: Path) -> None:
    r = rig(tmp_path)
    fix_id = left_running(r, "container_restart", finished=1)  # the restart worked
    await started(r)
    try:
        fix = await closed(r, fix_id)
        assert r.runtime.restarts == []  # the restart that finished is not run again
        assert (fix.status, fix.outcome, fix.verified) == ("done", Outcome.FIXED, True)
        assert fix.message == f"{RESUMED} (crashed or killed): drift cleared"
        assert fix.resumed_at is not None and fix.recovered_at is not None
        assert fix.time_to_recover == fix.recovered_at - fix.fault_at
        assert [s.status for s in fix.steps] == ["ok"]
        # The same row closed: no other fix, and the pass after the resume has nothing to do.
        assert [f.id for f in r.store.fix_records.fixes(key=KEY)] == [fix_id]
        assert (await r.controller.reconcile(KEY)).outcome is Outcome.IN_SYNC
        assert r.runtime.restarts == []
    finally:
        await r.controller.stop()


async def test_a_step_started_and_never_finished_holds_back_itself_and_the_rest(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    fix_id = left_running(
        r, "container_stats", "container_restart", "container_restart", finished=1, started=1
    )
    await started(r)
    try:
        fix = await closed(r, fix_id)
        # Neither the step whose outcome is unknown nor the one after it was called.
        assert r.runtime.restarts == []
        assert [(s.index, s.status) for s in fix.steps] == [(0, "ok"), (1, "unknown")]
        assert fix.steps[1].error == UNKNOWN_STEP
        # Verified as usual: the unknown restart had in fact worked (the fake is running).
        assert (fix.outcome, fix.verified) == (Outcome.FIXED, True)
        assert fix.message == (
            f"{RESUMED} (crashed or killed); the outcome of step 1 (container_restart) is "
            "unknown, so no step was run again: drift cleared"
        )
    finally:
        await r.controller.stop()


async def test_a_step_of_unknown_outcome_that_did_not_work_fails_the_fix(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.runtime.running["shop"] = False
    r.runtime.stuck.add("shop")  # no restart brings it back: the next pass's fails too
    fix_id = left_running(r, "container_restart", started=1)
    await started(r)
    try:
        fix = await closed(r, fix_id)
        assert (fix.outcome, fix.verified, fix.steps[0].status) == (
            Outcome.FAILED,
            False,
            "unknown",
        )
        assert fix.message.startswith(f"{RESUMED} (crashed or killed); the outcome of step 0")
        assert "not cleared after 30s" in fix.message
        assert r.runtime.restarts.count("shop") <= 1  # at most the next pass's own fix
        later = [f for f in r.store.fix_records.fixes(key=KEY) if f.id != fix_id]
        assert len(r.runtime.restarts) == len(later)  # every restart is a later fix's
    finally:
        await r.controller.stop()


async def test_steps_not_begun_run_once_after_the_finished_ones(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.runtime.running["shop"] = False
    fix_id = left_running(r, "container_stats", "container_restart", finished=1)
    await started(r)
    try:
        fix = await closed(r, fix_id)
        assert r.runtime.restarts == ["shop"]  # step 1 ran, exactly once
        assert [(s.index, s.tool, s.status) for s in fix.steps] == [
            (0, "container_stats", "ok"),
            (1, "container_restart", "ok"),
        ]
        assert (fix.outcome, fix.verified) == (Outcome.FIXED, True)
        assert fix.message == f"{RESUMED} (crashed or killed): drift cleared"
        assert (await r.controller.reconcile(KEY)).outcome is Outcome.IN_SYNC
        assert r.runtime.restarts == ["shop"]
    finally:
        await r.controller.stop()


async def test_a_fix_that_died_after_its_last_step_began_nothing(tmp_path: Path) -> None:
    # Cut short right after the fix was opened: its one step runs now.
    r = rig(tmp_path)
    r.runtime.running["shop"] = False
    fix_id = left_running(r, "container_restart")
    await started(r)
    try:
        fix = await closed(r, fix_id)
        assert r.runtime.restarts == ["shop"]
        assert (fix.outcome, [s.status for s in fix.steps]) == (Outcome.FIXED, ["ok"])
    finally:
        await r.controller.stop()


async def test_a_step_that_had_failed_closes_the_fix_failed_without_acting(tmp_path: Path) -> None:
    r = rig(tmp_path)
    fix_id = left_running(r, "container_restart", "container_start", finished=1, failed=True)
    await started(r)
    try:
        fix = await closed(r, fix_id)
        assert r.runtime.restarts == []
        assert (fix.outcome, fix.verified) == (Outcome.FAILED, False)
        assert fix.message == f"{RESUMED} (crashed or killed): container_restart error: engine gone"
        assert len(fix.steps) == 1
    finally:
        await r.controller.stop()


async def test_a_fix_a_shutdown_interrupted_is_resumed_and_says_so(tmp_path: Path) -> None:
    r = rig(tmp_path)
    fix_id = left_running(r, "container_restart", finished=1)
    assert r.store.fix_records.mark_interrupted(r.clock(), SHUT_DOWN) == 1
    interrupted = r.store.fix_records.fix(fix_id)
    assert interrupted is not None and interrupted.status == "interrupted"
    await started(r)
    try:
        fix = await closed(r, fix_id)
        assert fix.message == f"{RESUMED} (shut down): drift cleared"
        assert fix.outcome is Outcome.FIXED and r.runtime.restarts == []
    finally:
        await r.controller.stop()


async def test_a_fix_of_a_resource_no_longer_declared_is_abandoned(tmp_path: Path) -> None:
    r = rig(tmp_path)
    fix_id = left_running(r, "container_restart", key="Container/gone")
    await started(r)  # declares only Container/shop
    try:
        fix = await closed(r, fix_id)
        assert (fix.status, fix.outcome, fix.verified) == ("interrupted", None, False)
        assert fix.message.endswith("; abandoned: its resource is no longer declared")
        assert fix.resumed_at is None and fix.steps == [] and r.runtime.restarts == []
    finally:
        await r.controller.stop()


async def test_a_paused_resource_s_fix_is_not_resumed(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.runtime.running["shop"] = False
    fix_id = left_running(r, "container_restart")
    r.store.resource_records.upsert_resource(KEY, "Container", {}, Health.DRIFTING, {}, r.clock())
    r.store.resource_records.set_paused(KEY, True)
    await started(r)
    try:
        fix = await closed(r, fix_id)
        assert fix.message.endswith("abandoned: not resumed (healing of the resource is paused)")
        assert r.runtime.restarts == []
    finally:
        await r.controller.stop()


async def test_a_resume_holds_the_resource_until_its_fix_is_closed(tmp_path: Path) -> None:
    # The pass that waits on the lock sees the resumed fix closed, and finds nothing to do.
    r = rig(tmp_path)
    fix_id = left_running(r, "container_restart", finished=1)
    await started(r)
    try:
        result = await r.controller.reconcile(KEY)
        fix = r.store.fix_records.fix(fix_id)
        assert fix is not None and fix.status == "done"
        assert result.outcome is Outcome.IN_SYNC and r.runtime.restarts == []
    finally:
        await r.controller.stop()


def test_a_step_is_claimed_once_whoever_asks(tmp_path: Path) -> None:
    # Two controllers on one store (two connections to one file): one claim wins.
    path = tmp_path / "driftmend.db"
    step = PlanStep("container_restart", KEY)
    plan = Plan(KEY, (step,), "rules", "crash", "p", "restart")
    with Store(path) as first, Store(path) as second:
        fix_id = first.fix_records.begin_fix(KEY, plan, {}, 1.0, 2.0, "crash")
        claimed = first.fix_records.claim_step(fix_id, 0, step)
        assert claimed is not None
        assert second.fix_records.claim_step(fix_id, 0, step) is None
        assert first.fix_records.claim_step(fix_id, 0, step) is None
        assert second.fix_records.claim_step(fix_id, 1, step) is not None  # another step
        fix = second.fix_records.fix(fix_id)
        assert fix is not None and [s.index for s in fix.steps] == [0, 1]
        assert fix.steps[0].id == claimed


def test_a_fix_is_resumed_by_one_caller_only(tmp_path: Path) -> None:
    path = tmp_path / "driftmend.db"
    plan = Plan(KEY, (PlanStep("container_restart", KEY),), "rules", "crash", "p", "restart")
    with Store(path) as first, Store(path) as second:
        fix_id = first.fix_records.begin_fix(KEY, plan, {}, 1.0, 2.0, "crash")
        first.fix_records.journal_step(fix_id, 0, plan.steps[0])
        assert not first.fix_records.resume_fix(fix_id, 3.0, "?")  # running, not interrupted
        first.fix_records.mark_interrupted(3.0)
        assert second.fix_records.resume_fix(fix_id, 4.0, "unknown!")
        assert not first.fix_records.resume_fix(fix_id, 4.0, "unknown!")
        fix = first.fix_records.fix(fix_id)
        assert fix is not None and (fix.status, fix.resumed_at) == ("running", 4.0)
        assert (fix.steps[0].status, fix.steps[0].error) == ("unknown", "unknown!")


def test_a_claim_kept_while_the_store_refused_writes_never_lands_on_another_step(
    tmp_path: Path,
) -> None:
    # While the file refuses writes a claim cannot be checked (one controller owns a SQLite
    # store, so the step runs); if a row for that step exists after all, the replay drops
    # the claim and its result rather than write them over the other row.
    db = Database(tmp_path / "driftmend.db", retry_every_s=0)
    fixes = FixRecords(db, lambda: 1.0)
    step = PlanStep("container_restart", KEY)
    plan = Plan(KEY, (step,), "rules", "crash", "p", "restart")
    fix_id = fixes.begin_fix(KEY, plan, {}, 1.0, 2.0, "crash")
    first = fixes.claim_step(fix_id, 0, step)
    db.read("PRAGMA query_only = ON")
    kept = fixes.claim_step(fix_id, 0, step)
    assert kept is not None and kept < 0  # a placeholder: the step runs
    fixes.finish_step(kept, ToolResult.success(pid=7), 0.1)
    db.read("PRAGMA query_only = OFF")
    fixes.finish_fix(fix_id, Outcome.FIXED, True, {}, 3.0, 2.5)  # the backlog goes first
    assert db.backlog_size == 0 and db.dropped == 1
    fix = fixes.fix(fix_id)
    assert fix is not None and [(s.id, s.status) for s in fix.steps] == [(first, "started")]
    db.close()
