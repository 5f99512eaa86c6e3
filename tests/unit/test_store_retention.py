"""Retention (``store/retention.py``): each history table bounded by age and rows, on SQLite
and on PostgreSQL; what is still in use is never deleted."""

from __future__ import annotations

import json

from driftmend.model import Outcome, PendingStatus, ToolResult
from driftmend.store import Store
from driftmend.store.retention import BATCH, Retention
from tests.unit.conftest import StoreBackend
from tests.unit.test_store import KEY, Clock, make_plan

DAY = 86400.0
NOW = 100 * DAY


def _open(backend: StoreBackend, **limits: float) -> Store:
    retention = Retention(**{"max_age_s": 10 * DAY, "max_rows": 50, "max_llm_rows": 5, **limits})
    return backend.open(clock=Clock(NOW), retention=retention)


def _count(backend: StoreBackend, table: str) -> int:
    return int(backend.peek(f"SELECT COUNT(*) FROM {table}")[0][0])


def _history(store: Store, n: int, start: float, step: float) -> None:
    """``n`` rows in each history table, from ``start`` every ``step`` seconds."""
    for i in range(n):
        at = start + i * step
        store.reconciliation_records.record_reconciliation(
            KEY, "Container", at, 0.01, Outcome.FIXED, [], {}
        )
        store.signal_records.record_signals(f"{KEY}-{i}", at, {"container.running": True})
        store.audit_records.record_guard_decision(KEY, make_plan(), True, "ok", at)
        store.audit_records.record_action(KEY, "pause", "ops", {"n": i}, at)
        store.llm_records.record_llm_interaction(
            KEY, "gemini", "m", "prompt", "response", None, 1, 1, 0.1, at
        )


def test_rows_older_than_the_age_go_and_newer_ones_stay(backend: StoreBackend) -> None:
    store = _open(backend, max_rows=10_000, max_llm_rows=10_000)
    _history(store, 20, NOW - 20 * DAY + 1, DAY)  # 10 older than 10 days, 10 newer
    pruned = store.prune(NOW)
    tables = ("reconciliations", "signal_samples", "guard_decisions", "actions", "llm_interactions")
    assert pruned == dict.fromkeys(tables, 10)
    for table in tables:
        assert _count(backend, table) == 10, table
    oldest = backend.peek("SELECT MIN(at) FROM actions")[0][0]
    assert oldest >= NOW - 10 * DAY


def test_each_table_keeps_its_newest_rows_and_llm_exchanges_fewer(backend: StoreBackend) -> None:
    store = _open(backend)
    _history(store, 80, NOW - 3600, 1.0)  # all young: only the row bounds apply
    store.prune(NOW)
    assert _count(backend, "reconciliations") == 50
    assert _count(backend, "llm_interactions") == 5
    kept = [r[0] for r in backend.peek("SELECT detail FROM actions ORDER BY id")]
    assert [json.loads(d)["n"] for d in kept] == list(range(30, 80))  # the newest
    assert store.prune(NOW) == {}  # nothing more to do


def test_a_running_fix_and_a_waiting_plan_are_kept_however_old(backend: StoreBackend) -> None:
    store = _open(backend, max_rows=100)
    old = NOW - 50 * DAY
    running = store.fix_records.begin_fix(KEY, make_plan(), {}, old, old, "exit")
    done = store.fix_records.begin_fix(KEY, make_plan(), {}, old, old + 1, "exit")
    step = store.fix_records.claim_step(done, 0, make_plan().steps[0])
    assert step is not None
    store.fix_records.finish_step(step, ToolResult.success(), 0.1)
    store.fix_records.finish_fix(done, Outcome.FIXED, True, {}, old + 2, old + 2)
    waiting = store.pending_records.add_pending_plan(KEY, make_plan(), "needs approval", old)
    decided = store.pending_records.add_pending_plan(KEY, make_plan(), "needs approval", old)
    store.pending_records.set_pending_status(decided, PendingStatus.REJECTED, "ops", old + 1)
    store.prune(NOW)
    assert [r[0] for r in backend.peek("SELECT id FROM fixes")] == [running]
    assert _count(backend, "fix_steps") == 0  # the journal went with its fix
    assert [r[0] for r in backend.peek("SELECT id FROM pending_plans")] == [waiting]


def test_a_long_history_is_deleted_in_batches(backend: StoreBackend) -> None:
    store = _open(backend, max_rows=100)
    n = BATCH * 2 + 10
    with store._db.write() as db:  # seeding only: thousands of rows through the API is slow
        for _ in range(n):
            db.execute(
                "INSERT INTO actions (key, at, action, actor, detail) VALUES (?, ?, ?, ?, ?)",
                (KEY, NOW - 1, "pause", "ops", "{}"),
            )
    assert store.prune(NOW) == {"actions": n - 100}
    assert _count(backend, "actions") == 100


def test_the_store_measures_its_size(backend: StoreBackend) -> None:
    store = _open(backend)
    before = store.size_bytes()
    _history(store, 50, NOW - 3600, 1.0)
    assert store.size_bytes() > before > 0
