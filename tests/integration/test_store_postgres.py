"""The shared store on a real PostgreSQL server: two stores on one DSN, replicas migrating at
once, a lost server (degraded mode, then the backlog replayed), a held lock, a password that
is never shown, and ``driftmend get`` reading the shared store."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from driftmend.cli import main
from driftmend.errors import StoreBusyError, StoreError, StoreUnusableError
from driftmend.model import Health, Outcome, Plan, PlanStep, ToolResult
from driftmend.settings import Settings
from driftmend.store import SCHEMA_VERSION, Store, open_store
from driftmend.store.db import Database
from driftmend.store.fixes import FixRecords
from tests.services import PostgresServer
from tests.unit.conftest import drop_database, fresh_database

pytestmark = pytest.mark.integration

KEY = "Container/web"
PASSWORD = "hunter2-S3cret"


def plan() -> Plan:
    return Plan(
        KEY,
        (PlanStep("docker_restart", KEY), PlanStep("container_logs", KEY)),
        "rules",
        "restart it",
    )


@pytest.fixture
def dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's server, dropped after the test."""
    name, url = fresh_database(postgres_server)
    yield url
    drop_database(postgres_server, name)


def test_two_stores_on_one_dsn_see_each_others_writes(dsn: str) -> None:
    with Store(dsn=dsn) as leader, Store(dsn=dsn) as standby:
        leader.resource_records.upsert_resource(
            KEY, "Container", {"replicas": 1}, Health.DRIFTING, {"up": False}, 10.0
        )
        fix_id = leader.fix_records.begin_fix(KEY, plan(), {"up": False}, 9.0, 10.0, "exit")
        leader.fix_records.journal_step(fix_id, 0, plan().steps[0])

        seen = standby.resource_records.resource(KEY)
        assert seen is not None and seen.health == Health.DRIFTING and seen.signals == {"up": False}
        running = standby.fix_records.fixes(status="running")
        assert [f.id for f in running] == [fix_id]
        # The standby cannot claim a step the leader claimed: one row per (fix, step).
        with pytest.raises(StoreError, match="already journaled"):
            standby.fix_records.journal_step(fix_id, 0, plan().steps[0])
        # It closes the fix; the leader reads it closed, on the same row.
        standby.fix_records.finish_fix(fix_id, Outcome.FIXED, True, {"up": True}, 12.0, 11.5)
        closed = leader.fix_records.fix(fix_id)
        assert closed is not None and closed.status == "done" and closed.time_to_recover == 2.5
        assert leader.resource_records.resource(KEY) == standby.resource_records.resource(KEY)
        assert leader.journal_mode() == "postgresql"
        assert leader.path is None and leader.where == dsn


def test_replicas_starting_at_once_migrate_once(dsn: str) -> None:
    # Without the advisory lock, two CREATE TABLEs race (a duplicate pg_type key) or a
    # version is recorded twice.
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    stores: list[Store] = []

    def start() -> None:
        try:
            barrier.wait()
            stores.append(Store(dsn=dsn))
        except BaseException as exc:  # collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert [s.schema_version() for s in stores] == [SCHEMA_VERSION] * 4
        with psycopg.connect(dsn) as conn:
            versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    finally:
        for s in stores:
            s.close()


def test_a_lost_server_degrades_the_store_and_the_backlog_is_replayed(
    own_postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="driftmend.store")
    db = Database(dsn=own_postgres.dsn, retry_every_s=0)
    fixes = FixRecords(db, lambda: 1.0)
    told: list[bool] = []
    db.on_writable(told.append)
    try:
        own_postgres.stop()
        # The controller goes on: a whole fix is opened, journaled and closed meanwhile.
        fid = fixes.begin_fix(KEY, plan(), {"up": False}, 1.0, 2.0, "exit")
        assert fid < 0  # a placeholder: no row has that id
        step = fixes.journal_step(fid, 0, plan().steps[0])
        fixes.finish_step(step, ToolResult.success(pid=42), 0.1)
        fixes.finish_fix(fid, Outcome.FIXED, True, {"up": True}, 3.0, 2.5, "back")
        assert not db.writable and told == [True, False] and db.backlog_size == 4
        assert "cannot be written" in caplog.text
        # Reads cannot be answered from memory: they say the store cannot be used.
        with pytest.raises(StoreUnusableError, match=r"cannot be used"):
            fixes.fixes()

        own_postgres.start()
        # The next write opens a new connection, writes the backlog first, then itself.
        assert fixes.mark_interrupted(9.0) == 0
        assert db.writable and told == [True, False, True] and db.backlog_size == 0
        assert "can be written again" in caplog.text
        [summary] = fixes.fixes()
        fix = fixes.fix(summary.id)
        assert fix is not None and fix.id > 0
        assert (fix.status, fix.outcome, fix.recovered_at, fix.message) == (
            "done", Outcome.FIXED, 2.5, "back",
        )  # fmt: skip
        # The step points to its fix's real id: the placeholder was mapped on replay.
        assert [(s.fix_id, s.status, s.result) for s in fix.steps] == [
            (fix.id, "ok", {"status": "ok", "data": {"pid": 42}, "error": None})
        ]
    finally:
        db.close()


def test_a_fix_whose_commit_the_lost_server_missed_keeps_its_id(
    own_postgres: PostgresServer,
) -> None:
    # The INSERT ran (the caller holds its id), then the server went before the COMMIT. The
    # sequence never gives that id again, so the replay claims it: the steps journaled
    # meanwhile, which name it, still point to their fix (not to nothing, or another one).
    db = Database(dsn=own_postgres.dsn, retry_every_s=0)
    fixes = FixRecords(db, lambda: 1.0)
    try:
        fixes.begin_fix(KEY, plan(), {}, 0.0, 0.5, "earlier")  # a row before it
        with db.write() as c:
            cur = c.execute(
                """INSERT INTO fixes (key, kind, source, reasoning, plan, root_cause, dry_run,
                       status, signals_before, fault_at, detected_at, started_at, time_to_detect)
                   VALUES (?, 'Container', 'rules', 'r', ?, 'exit', 0, 'running', '{}',
                           1.0, 2.0, 2.0, 1.0)""",
                (KEY, json.dumps({"drifts": [], "steps": []})),
            )
            fid = int(cur.lastrowid or 0)
            own_postgres.stop()
        assert fid > 0 and not db.writable and db.backlog_size == 1
        step = fixes.journal_step(fid, 0, plan().steps[0])
        fixes.finish_step(step, ToolResult.success(), 0.1)
        own_postgres.start()
        fixes.finish_fix(fid, Outcome.FIXED, True, {}, 3.0, 2.5, "back")
        assert db.writable and db.backlog_size == 0 and db.dropped == 0
        fix = fixes.fix(fid)
        assert fix is not None and (fix.root_cause, fix.status, fix.message) == (
            "exit", "done", "back",
        )  # fmt: skip
        assert [(s.fix_id, s.status) for s in fix.steps] == [(fid, "ok")]
        # The next fix gets a fresh id, past the one claimed back.
        assert fixes.begin_fix(KEY, plan(), {}, 4.0, 5.0, "later") > fid
    finally:
        db.close()


def test_a_held_lock_is_busy_not_unusable(dsn: str) -> None:
    store = Store(dsn=dsn, busy_timeout_s=0.05)
    other = psycopg.connect(dsn, autocommit=True)
    try:
        other.execute("BEGIN")
        other.execute("LOCK TABLE resources IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(StoreBusyError, match="locked by another writer") as caught:
            store.resource_records.set_paused(KEY, True)
        assert isinstance(caught.value.__cause__, psycopg.errors.LockNotAvailable)
        assert caught.value.delay > 0 and store.writable  # busy is not degraded
        other.execute("ROLLBACK")
        # Once the other writer is gone the same store works again: nothing was left open.
        store.resource_records.set_paused(KEY, True)
        assert store.resource_records.resource(KEY) is not None
    finally:
        other.close()
        store.close()


def _require_password(server: PostgresServer) -> str:
    """Make ``server`` check passwords on TCP (SCRAM), and the DSN that carries one."""
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
        (server.datadir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        admin.execute("SELECT pg_reload_conf()")
    return server.dsn.replace("postgres@", f"postgres:{PASSWORD}@")


def test_the_dsn_password_is_in_no_log_line_or_error(
    own_postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, psycopg's included
    dsn = _require_password(own_postgres)
    messages: list[str] = []
    # The server really asks for it now: without it, or with another, no connection.
    with pytest.raises(StoreUnusableError) as refused:
        Store(dsn=dsn.replace(PASSWORD, "not-" + PASSWORD[::-1]))
    assert "password authentication failed" in str(refused.value)
    messages.append(str(refused.value))
    with pytest.raises(StoreUnusableError) as nobody:
        Store(dsn=dsn.replace(str(own_postgres.port), "1"))
    messages.append(str(nobody.value))

    store = Store(dsn=dsn)
    try:
        store.resource_records.set_paused(KEY, True)
        own_postgres.stop()
        store.resource_records.set_paused(KEY, False)  # kept: the server is gone
        assert not store.writable
        with pytest.raises(StoreUnusableError) as down:
            store.resource_records.resources()
        messages.append(str(down.value))
    finally:
        store.close()  # logs the transaction never written

    # Each names the store as a user would recognise it, without the password.
    where = f"postgresql://postgres@127.0.0.1:{own_postgres.port}/postgres"
    assert where in messages[0] and where in messages[2]
    assert "postgresql://postgres@127.0.0.1:1/postgres" in messages[1]
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "cannot be written" in logged and "never written" in logged
    for text in [logged, *messages]:
        assert PASSWORD not in text
        assert PASSWORD[::-1] not in text


def test_driftmend_get_reads_the_shared_store(
    dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Store(dsn=dsn) as store:
        store.resource_records.upsert_resource(KEY, "Container", {}, Health.HEALTHY, {}, 1.0)
    monkeypatch.setenv("DRIFTMEND_STORE_DSN", dsn)
    # No SQLite file anywhere: the DSN is the store.
    monkeypatch.setenv("DRIFTMEND_STATE_DIR", str(tmp_path / "nowhere"))
    with open_store(Settings()) as opened:
        assert opened.where == dsn and opened.path is None
    assert main(["get", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["key"], r["health"]) for r in rows] == [(KEY, "healthy")]
    assert not (tmp_path / "nowhere").exists()
