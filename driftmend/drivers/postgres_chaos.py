"""Fault injection against PostgreSQL, for ``driftmend chaos``: sessions that burden a server.

Stage: none of the loop's: chaos breaks the demo stack on purpose, so that the controller has
something to heal. It does so with SQL through these functions, so that only the drivers
import psycopg (the import contract). Each raises ``DriverError`` from psycopg's error, like
the actions of ``postgres.py``. Blocking: callers run them in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import psycopg
from psycopg import sql

from driftmend.errors import DriverError
from driftmend.spec import PostgresDatabase


def chaos_conninfo(db: PostgresDatabase, user: str | None = None) -> str:
    """A libpq connection string for ``db`` as ``user`` (default: the spec's), for chaos.

    No password: fault injection targets the demo stack, whose server trusts local users.
    """
    return psycopg.conninfo.make_conninfo(
        host=db.spec.host,
        port=db.spec.port,
        dbname=db.spec.database,
        user=user or db.spec.user,
        application_name="driftmend-chaos",
        connect_timeout=3,
    )


def _chaos_fail(what: str, exc: psycopg.Error) -> DriverError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return DriverError(f"{what}: {type(exc).__name__}: {text}")


def ensure_login_role(conninfo: str, role: str) -> None:
    """Create ``role`` (LOGIN, not a superuser) unless it exists."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    except psycopg.Error as exc:
        raise _chaos_fail(f"creating role {role}", exc) from exc


def count_sessions(conninfo: str, role: str) -> int:
    """How many sessions of ``role`` the server has (``pg_stat_activity``)."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,)
            ).fetchone()
    except psycopg.Error as exc:
        raise _chaos_fail(f"counting the sessions of {role}", exc) from exc
    return int(row[0]) if row else 0


def grant_table(conninfo: str, table: str, role: str) -> bool:
    """``GRANT ALL ON table TO role``; False when the table does not exist."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("GRANT ALL ON {} TO {}").format(sql.Identifier(table), sql.Identifier(role))
            )
    except psycopg.errors.UndefinedTable:
        return False
    except psycopg.Error as exc:
        raise _chaos_fail(f"granting {table} to {role}", exc) from exc
    return True


def terminate_sessions(conninfo: str, role: str) -> int:
    """End every session of ``role``; returns how many were ended."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            ).fetchone()
    except psycopg.Error as exc:
        raise _chaos_fail(f"ending the sessions of {role}", exc) from exc
    return int(row[0]) if row else 0


def hold_sessions(
    conninfo: str,
    mode: str,
    count: int,
    keep: Callable[[], bool],
    announce: Callable[[str], None] = print,
) -> None:
    """Open sessions that burden the server and hold them while ``keep()`` is true.

    ``idle-in-transaction``: up to ``count`` sessions, each with an open, idle transaction
    (fewer when the server refuses more: the pool is then exhausted). ``long-queries``: a
    lock on ``orders`` held in an idle transaction, and ``SELECT pg_sleep(3600)`` running.
    ``announce`` gets one line once the sessions are held. Blocking: run it in a worker.
    """
    conns: list[psycopg.Connection[Any]] = []
    try:
        if mode == "idle-in-transaction":
            for _ in range(count):
                try:
                    conn = psycopg.connect(conninfo)
                except psycopg.OperationalError:
                    break  # the server refuses more: the pool is exhausted
                conn.execute("SELECT 1")  # opens a transaction and leaves it idle
                conns.append(conn)
            announce(f"holding {len(conns)} connections idle in transaction")
        elif mode == "long-queries":
            locker = psycopg.connect(conninfo)
            conns.append(locker)
            locker.execute("SELECT 1")
            try:  # the shop's orders table: a lock held in an idle transaction blocks writers
                locker.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
            except psycopg.Error:
                locker.rollback()
                locker.execute("SELECT 1")
            sleeper = psycopg.connect(conninfo, autocommit=True)
            conns.append(sleeper)
            sleeper.pgconn.send_query(b"SELECT pg_sleep(3600)")  # runs on, we don't wait
            announce("holding a lock in an idle transaction and running pg_sleep(3600)")
        else:
            raise ValueError(f"unknown mode {mode!r}: idle-in-transaction or long-queries")
        while keep():
            time.sleep(0.2)
    except psycopg.Error as exc:
        raise _chaos_fail(f"holding sessions ({mode})", exc) from exc
    finally:
        for held in conns:
            with suppress(psycopg.Error):  # the server may already have ended it
                held.close()
