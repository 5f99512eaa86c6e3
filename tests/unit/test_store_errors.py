"""The store's seam to SQLite: every call's sqlite3 error arrives as a StoreError naming the
file, never as sqlite3's own exception. (PostgreSQL's side: tests/unit/test_store_postgres.py
and tests/integration/test_store_postgres.py.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftmend.errors import (
    ConfigurationError,
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreUnusableError,
)
from driftmend.model import Health, Outcome, Plan, PlanStep, ToolResult
from driftmend.store import Store
from driftmend.store.db import Database, translate
from driftmend.store.fixes import FixRecords
from tests.unit.conftest import StoreBackend

KEY = "Container/web"


def plan() -> Plan:
    return Plan(KEY, (PlanStep("docker_restart", KEY),), "rules", "restart it")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "driftmend.db"


@pytest.fixture
def db(path: Path) -> Iterator[Database]:
    database = Database(path, busy_timeout_s=0.05)
    yield database
    database.close()


def test_a_call_on_a_closed_store_names_the_store(backend: StoreBackend) -> None:
    store = backend.open()
    store.close()
    with pytest.raises(StoreClosedError, match="closed") as caught:
        store.resource_records.upsert_resource(KEY, "Container", {}, Health.HEALTHY, {}, 1.0)
    # The file, or the DSN without its password.
    assert store.where == str(backend.path or backend.dsn) and store.where in str(caught.value)
    # Still what callers caught before the store had its own errors.
    assert isinstance(caught.value, StoreError | RuntimeError)
    with pytest.raises(StoreClosedError):
        store.fix_records.fixes()


def test_a_locked_store_raises_busy_not_operational_error(path: Path) -> None:
    store = Store(path, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreBusyError) as caught:
            store.resource_records.set_paused(KEY, True)
        assert str(path) in str(caught.value) and "locked" in str(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert not isinstance(caught.value, sqlite3.Error)
        assert caught.value.delay > 0
        other.execute("ROLLBACK")
        # Once the other writer is gone the same store works again: nothing was left open.
        store.resource_records.set_paused(KEY, True)
        assert store.resource_records.resource(KEY) is not None
    finally:
        other.close()
        store.close()


# A file that refuses writes used to make every write raise StoreUnusableError, and the
# controller stopped healing with it. Issue 11 asks for the opposite: the write is kept in
# memory, the controller goes on, and what it missed is written once the file takes writes.
# These two tests replace "a read-only connection / a full disk raises" accordingly.


def _fix_with_steps_while_refused(db: Database, fixes: FixRecords) -> int:
    """Open, journal, finish and close a fix while the file refuses writes."""
    fid = fixes.begin_fix(KEY, plan(), {"blob": "x" * 200_000}, 1.0, 2.0, "exit")
    step = fixes.journal_step(fid, 0, plan().steps[0])
    fixes.finish_step(step, ToolResult.success(pid=42), 0.1)
    fixes.finish_fix(fid, Outcome.FIXED, True, {"up": True}, 3.0, 2.5, "back")
    return fid


def _assert_replayed(fixes: FixRecords) -> None:
    [summary] = fixes.fixes()
    fix = fixes.fix(summary.id)
    assert fix is not None and fix.id > 0
    assert (fix.status, fix.outcome, fix.recovered_at, fix.message) == (
        "done", Outcome.FIXED, 2.5, "back",
    )  # fmt: skip
    assert [(s.status, s.result) for s in fix.steps] == [
        ("ok", {"status": "ok", "data": {"pid": 42}, "error": None})
    ]


def test_a_read_only_store_keeps_writes_and_writes_them_later(path: Path) -> None:
    db = Database(path, retry_every_s=0)
    fixes = FixRecords(db, lambda: 1.0)
    told: list[bool] = []
    db.on_writable(told.append)
    db.read("PRAGMA query_only = ON")
    fid = _fix_with_steps_while_refused(db, fixes)
    assert fid < 0  # a placeholder: no row has that id
    assert not db.writable and told == [True, False] and db.backlog_size == 4
    # Reads still work, and see nothing that was not written.
    assert fixes.fixes() == []
    # What needs the file's answer is refused, and nothing of it is kept for later.
    with pytest.raises(StoreUnusableError, match="how many rows changed"), db.write() as c:
        _ = c.execute("DELETE FROM actions").rowcount
    assert db.backlog_size == 4
    db.read("PRAGMA query_only = OFF")
    # The next write finds the file writable: the backlog goes first, in order.
    with db.write() as c:
        c.execute("INSERT INTO actions (at, action, actor, detail) VALUES (1, 'a', 'b', '{}')")
    assert db.writable and told == [True, False, True] and db.backlog_size == 0
    _assert_replayed(fixes)
    db.close()


def test_a_full_disk_keeps_writes_and_writes_them_later(path: Path) -> None:
    db = Database(path, retry_every_s=0)
    fixes = FixRecords(db, lambda: 1.0)
    # The file may not grow past its current pages: the next big write finds the "disk" full.
    pages = int(db.read("PRAGMA page_count")[0][0])
    db.read(f"PRAGMA max_page_count = {pages}")
    _fix_with_steps_while_refused(db, fixes)
    assert not db.writable and fixes.fixes() == []
    db.read("PRAGMA max_page_count = 1000000")
    assert fixes.mark_interrupted(9.0) == 0  # any write: the backlog goes first
    assert db.writable
    _assert_replayed(fixes)  # done before the UPDATE ran: not marked interrupted
    db.close()


def test_the_backlog_keeps_the_newest_transactions(path: Path) -> None:
    db = Database(path, retry_every_s=0, backlog_limit=2)
    db.read("PRAGMA query_only = ON")
    for i in range(5):
        with db.write() as c:
            c.execute(
                "INSERT INTO actions (at, action, actor, detail) VALUES (?, 'a', 'b', '{}')", (i,)
            )
    assert (db.backlog_size, db.dropped) == (2, 3)
    db.read("PRAGMA query_only = OFF")
    with db.write():
        pass
    assert [r[0] for r in db.read("SELECT at FROM actions ORDER BY id")] == [3.0, 4.0]
    db.close()


def test_a_statement_error_is_a_store_error_not_sqlite(db: Database) -> None:
    with pytest.raises(StoreError, match="no such table") as caught:
        db.read("SELECT * FROM nowhere")
    assert type(caught.value) is StoreError
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


def test_a_failing_block_rolls_back_and_keeps_its_own_error(db: Database) -> None:
    with pytest.raises(ValueError, match="caller"), db.write() as c:
        c.execute("INSERT INTO actions (at, action, actor, detail) VALUES (1, 'a', 'b', '{}')")
        raise ValueError("the caller's own error")
    assert db.read("SELECT COUNT(*) FROM actions")[0][0] == 0


def _error(message: str, code: str | None = None) -> sqlite3.Error:
    exc = sqlite3.OperationalError(message)
    if code is not None:
        exc.sqlite_errorname = code  # what SQLite sets on the errors it raises
    return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_error("database is locked", "SQLITE_BUSY"), StoreBusyError),
        (_error("database table is locked"), StoreBusyError),
        (_error("disk I/O error", "SQLITE_IOERR_WRITE"), StoreUnusableError),
        (_error("database or disk is full"), StoreUnusableError),
        (_error("attempt to write a readonly database", "SQLITE_READONLY"), StoreUnusableError),
        (sqlite3.DatabaseError("database disk image is malformed"), StoreUnusableError),
        (sqlite3.DatabaseError("file is not a database"), StoreUnusableError),
        (sqlite3.ProgrammingError("Cannot operate on a closed database."), StoreClosedError),
        (sqlite3.IntegrityError("FOREIGN KEY constraint failed"), StoreError),
    ],
)
def test_translate_tells_temporary_from_unusable(
    exc: sqlite3.Error, kind: type[StoreError], tmp_path: Path
) -> None:
    error = translate(exc, tmp_path / "s.db")
    assert type(error) is kind
    assert str(tmp_path / "s.db") in str(error)
    # Callers that only know the old error still catch every one of them.
    assert isinstance(error, StoreError) and isinstance(error, ConfigurationError)


def test_opening_a_file_that_is_not_sqlite_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database, just text that is long enough " * 40)
    with pytest.raises(StoreUnusableError, match="not a usable driftmend store"):
        Store(path)


def test_a_shutdown_while_refused_closes_the_kept_fix_once_written(path: Path) -> None:
    db = Database(path, retry_every_s=0)
    fixes = FixRecords(db, lambda: 1.0)
    db.read("PRAGMA query_only = ON")
    fixes.begin_fix(KEY, plan(), {}, 1.0, 2.0, "exit")
    fixes.mark_interrupted(5.0, "interrupted: shut down")  # the order is kept, not lost
    db.read("PRAGMA query_only = OFF")
    db.close()  # a last try to write the backlog
    with Store(path) as store:
        [fix] = store.fix_records.fixes()
    assert (fix.status, fix.message, fix.finished_at) == (
        "interrupted",
        "interrupted: shut down",
        5.0,
    )
