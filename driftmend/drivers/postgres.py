"""PostgreSQL through psycopg 3: observe a ``PostgresDatabase`` and act on it with SQL.

Stage: *observe* (signals from ``pg_stat_activity`` and the server's settings) and *act*
(terminate sessions, ``ALTER SYSTEM``, ``VACUUM``, ``ANALYZE``) in docs/ARCHITECTURE.md.
Fault injection for ``driftmend chaos`` is in ``postgres_chaos.py``.

Every call opens its own short-lived connection and closes it. That costs a few
milliseconds, and buys two things a pool would make hard: a restarted server is observed
correctly on the very next call (no stale pooled connection to discover first), and the
controller holds no connection slot between passes, so it never adds to the exhaustion it
is there to heal. When the spec's user is a superuser, PostgreSQL lets it into the
``superuser_reserved_connections`` slots, so observation keeps working while ordinary
clients are refused.

Errors: ``observe`` never raises for an unreachable or refusing server (``postgres.up`` is
false and ``Observation.error`` says why); actions raise ``DriverError`` from psycopg's
error. A missing password variable raises ``ConfigurationError``. The password itself never
appears in an observation, a result or an error.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from driftmend.drivers.base import Clock
from driftmend.drivers.secret_refs import read_secret
from driftmend.errors import DriverError
from driftmend.model import Observation
from driftmend.signals import SignalValue
from driftmend.spec import PostgresDatabase

APPLICATION_NAME = "driftmend"
SESSION_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")
"""The ``pg_stat_activity.state`` values ``terminate`` accepts."""
_IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
QUERY_CHARS = 200
_TOP_QUERIES = 5
# Observation queries are tiny; a server that cannot answer them in this time is not healthy,
# and a stuck observe would stall the reconcile worker that called it.
_OBSERVE_STATEMENT_TIMEOUT_MS = 5000
_TERMINATE_WAIT_S = 5.0

# Query texts go to results, facts and LLM prompts: hide literal passwords they may carry
# (``ALTER ROLE ... PASSWORD 'x'``, ``CREATE USER ... WITH PASSWORD 'x'``).
_PASSWORD_LITERAL = re.compile(r"(password\s+)'(?:[^']|'')*'", re.IGNORECASE)

# Per client backend (ours excluded): its state, the age that matters for that state
# (since query start while active, since the last state change otherwise) and its query.
_SESSIONS_SQL = """
SELECT pid, state, usename, application_name,
       left(query, %(chars)s) AS query,
       extract(epoch FROM now() - CASE WHEN state = 'active' THEN query_start
                                       ELSE state_change END)::float8 AS seconds
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
"""

_SETTINGS_SQL = """
SELECT current_setting('server_version') AS server_version,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       -- PostgreSQL 16 added reserved_connections (for pg_use_reserved_connections);
       -- the second argument makes older servers answer NULL instead of an error.
       coalesce(current_setting('reserved_connections', true), '0')::int AS reserved,
       current_setting('shared_buffers') AS shared_buffers,
       extract(epoch FROM pg_postmaster_start_time())::float8 AS started_at
"""


def redact_query(text: str | None) -> str:
    """A query text safe to show: password literals hidden, cut to ``QUERY_CHARS``."""
    return _PASSWORD_LITERAL.sub(r"\1'***'", text or "")[:QUERY_CHARS]


@dataclass(frozen=True)
class _Target:
    """Where and as whom to connect; ``password`` is kept out of ``repr``."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None

    def __repr__(self) -> str:
        return f"_Target({self.user}@{self.host}:{self.port}/{self.dbname})"


class PsycopgDriver:
    """``PostgresDriver`` on psycopg 3, one short-lived connection per call.

    ``secrets`` maps an environment variable name (``spec.passwordFrom.env``) to its
    value (a ``passwordFrom.file`` is read from disk); ``clock`` stamps observations;
    ``connect_timeout`` bounds each connection attempt (libpq counts whole seconds, at
    least 2).
    """

    def __init__(
        self,
        secrets: Callable[[str], str | None] = os.environ.get,
        clock: Clock = time.time,
        connect_timeout: float = 2.0,
    ) -> None:
        self._secrets = secrets
        self._clock = clock
        self._connect_timeout = max(2, math.ceil(connect_timeout))

    # --- connections ---------------------------------------------------------------------

    def _target(self, db: PostgresDatabase) -> _Target:
        password: str | None = None
        ref = db.spec.password_from
        if ref is not None:
            password = read_secret(ref, f"{db.key}: spec.passwordFrom", self._secrets)
        return _Target(db.spec.host, db.spec.port, db.spec.database, db.spec.user, password)

    @asynccontextmanager
    async def _connect(
        self, target: _Target, *, observe: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """An autocommit connection (VACUUM refuses to run inside a transaction block)."""
        options = f"-c statement_timeout={_OBSERVE_STATEMENT_TIMEOUT_MS}" if observe else ""
        conn = await psycopg.AsyncConnection.connect(
            host=target.host,
            port=target.port,
            dbname=target.dbname,
            user=target.user,
            password=target.password,
            application_name=APPLICATION_NAME,
            connect_timeout=self._connect_timeout,
            options=options,
            autocommit=True,
            row_factory=dict_row,
        )
        try:
            yield conn
        finally:
            await conn.close()

    def _scrub(self, target: _Target, exc: BaseException) -> str:
        """The error's text on one line, with the password cut out should a library echo it."""
        text = str(exc)
        if target.password:
            text = text.replace(target.password, "***")
        text = " ".join(text.split()) or type(exc).__name__
        return text

    def _fail(self, target: _Target, what: str, exc: psycopg.Error) -> DriverError:
        return DriverError(f"{what} on {target.host}:{target.port}: {self._scrub(target, exc)}")

    # --- observe -------------------------------------------------------------------------

    async def observe(self, db: PostgresDatabase) -> Observation:
        """up, connections used and ratio, longest query, idle in transaction, settings.

        Never raises for a server that is down, restarting or refusing connections: the
        observation then has ``postgres.up = False`` and the reason in ``error``.
        """
        target = self._target(db)
        at = self._clock()
        try:
            async with self._connect(target, observe=True) as conn:
                settings = await (await conn.execute(_SETTINGS_SQL)).fetchone()
                sessions = await (
                    await conn.execute(_SESSIONS_SQL, {"chars": QUERY_CHARS})
                ).fetchall()
        except psycopg.Error as exc:
            return Observation(
                key=db.key,
                at=at,
                signals={"postgres.up": False},
                error=self._scrub(target, exc),
            )
        assert settings is not None  # a SELECT without FROM always returns one row
        return self._observation(db.key, at, settings, sessions)

    @staticmethod
    def _observation(
        key: str, at: float, settings: dict[str, Any], sessions: list[dict[str, Any]]
    ) -> Observation:
        max_connections = int(settings["max_connections"])
        superuser_reserved = int(settings["superuser_reserved"])
        # Slots ordinary clients can use: what the ratio measures exhaustion against.
        usable = max_connections - superuser_reserved - int(settings["reserved"])
        used = len(sessions)
        active = [float(s["seconds"] or 0.0) for s in sessions if s["state"] == "active"]
        idle_tx = [
            float(s["seconds"] or 0.0) for s in sessions if s["state"] in _IDLE_IN_TRANSACTION
        ]
        signals: dict[str, SignalValue] = {
            "postgres.up": True,
            "postgres.connections_used": used,
            "postgres.max_connections": max_connections,
            "postgres.connections_used_ratio": used / usable if usable > 0 else 1.0,
            "postgres.longest_query_seconds": max(active, default=0.0),
            "postgres.idle_in_transaction": len(idle_tx),
            "postgres.longest_idle_in_transaction_seconds": max(idle_tx, default=0.0),
        }
        # Plain idle sessions run nothing: the longest *queries* are the busy ones.
        busy = sorted(
            (s for s in sessions if s["state"] not in (None, "idle")),
            key=lambda s: float(s["seconds"] or 0.0),
            reverse=True,
        )[:_TOP_QUERIES]
        facts = {
            "server_version": str(settings["server_version"]),
            "max_connections": str(max_connections),
            "superuser_reserved_connections": str(superuser_reserved),
            "shared_buffers": str(settings["shared_buffers"]),
            "started_at": f"{float(settings['started_at']):.3f}",
            "longest_queries": "\n".join(_describe_session(s) for s in busy) or "(none)",
        }
        return Observation(key=key, at=at, signals=signals, facts=facts)

    async def sessions(self, db: PostgresDatabase, limit: int = 10) -> list[dict[str, Any]]:
        """The ``limit`` oldest client sessions (ours excluded), busiest first, and their ages.

        Each is ``{pid, state, seconds, query, usename, application_name}``; plain idle
        sessions come after every busy one. Raises ``DriverError`` when it cannot connect.
        """
        target = self._target(db)
        try:
            async with self._connect(target, observe=True) as conn:
                rows = await (await conn.execute(_SESSIONS_SQL, {"chars": QUERY_CHARS})).fetchall()
        except psycopg.Error as exc:
            raise self._fail(target, "cannot list sessions", exc) from exc
        rows.sort(key=lambda s: (s["state"] == "idle", -float(s["seconds"] or 0.0)))
        return [_session(s) for s in rows[:limit]]

    # --- act -----------------------------------------------------------------------------

    async def terminate(
        self, db: PostgresDatabase, min_duration_s: float, states: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Terminate client backends in ``states`` at least ``min_duration_s`` old.

        Age is time since query start for ``active`` sessions and since the last state
        change otherwise. Our own connection is never terminated. Waits (up to 5 s) until
        the ended backends are gone, so the next observation no longer counts them.
        Returns ``{pid, state, seconds, query, usename, application_name}`` per session ended.
        """
        unknown = sorted(set(states) - set(SESSION_STATES))
        if unknown or not states:
            raise ValueError(f"states must be among {', '.join(SESSION_STATES)}; got {unknown}")
        if min_duration_s < 0:
            raise ValueError("min_duration_s cannot be negative")
        target = self._target(db)
        query = (
            f"SELECT s.*, pg_terminate_backend(s.pid) AS ended FROM ({_SESSIONS_SQL}) s"
            " WHERE s.state = ANY(%(states)s) AND s.seconds >= %(min)s ORDER BY s.seconds DESC"
        )
        try:
            async with self._connect(target) as conn:
                rows = await (
                    await conn.execute(
                        query,
                        {"chars": QUERY_CHARS, "states": list(states), "min": min_duration_s},
                    )
                ).fetchall()
                ended = [r for r in rows if r["ended"]]
                await self._wait_gone(conn, [r["pid"] for r in ended])
        except psycopg.Error as exc:
            raise self._fail(target, "cannot terminate sessions", exc) from exc
        return [_session(r) for r in ended]

    @staticmethod
    async def _wait_gone(conn: psycopg.AsyncConnection[dict[str, Any]], pids: list[int]) -> None:
        # pg_terminate_backend only sends SIGTERM; the backend leaves a moment later.
        deadline = time.monotonic() + _TERMINATE_WAIT_S
        while pids and time.monotonic() < deadline:
            row = await (
                await conn.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
                )
            ).fetchone()
            if row is None or row["n"] == 0:
                return
            await asyncio.sleep(0.05)

    async def set_max_connections(self, db: PostgresDatabase, value: int) -> dict[str, Any]:
        """``ALTER SYSTEM SET max_connections``: takes effect at the next restart.

        Refuses (``DriverError``) when the running server got max_connections from its
        command line or environment, since those override ``postgresql.auto.conf`` and the
        restart would silently keep the old value. Returns the current value, the requested
        one and ``pending_restart``.
        """
        if not 1 <= value <= 262143:  # PostgreSQL's own bounds
            raise ValueError(f"max_connections must be between 1 and 262143, not {value}")
        target = self._target(db)
        try:
            async with self._connect(target) as conn:
                row = await (
                    await conn.execute(
                        "SELECT setting::int AS current, source FROM pg_settings"
                        " WHERE name = 'max_connections'"
                    )
                ).fetchone()
                assert row is not None
                if row["source"] in ("command line", "environment variable"):
                    raise DriverError(
                        f"{db.key}: max_connections comes from the server's {row['source']}, "
                        "which overrides ALTER SYSTEM; change it in the runtime's command instead"
                    )
                # ALTER SYSTEM is a utility statement: it takes no bound parameters.
                await conn.execute(
                    sql.SQL("ALTER SYSTEM SET max_connections = {}").format(sql.Literal(value))
                )
        except psycopg.Error as exc:
            raise self._fail(target, "cannot set max_connections", exc) from exc
        current = int(row["current"])
        return {
            "max_connections": current,
            "requested": value,
            "pending_restart": current != value,
        }

    async def vacuum(
        self, db: PostgresDatabase, table: str | None, analyze: bool
    ) -> dict[str, Any]:
        """VACUUM (optionally ANALYZE) one table (``name`` or ``schema.name``) or the database."""
        verb = sql.SQL("VACUUM (ANALYZE)") if analyze else sql.SQL("VACUUM")
        result = await self._maintain(db, verb, table, "vacuum")
        return {**result, "analyze": analyze}

    async def analyze(self, db: PostgresDatabase, table: str | None) -> dict[str, Any]:
        """ANALYZE one table (``name`` or ``schema.name``) or the whole database."""
        return await self._maintain(db, sql.SQL("ANALYZE"), table, "analyze")

    async def _maintain(
        self, db: PostgresDatabase, verb: sql.SQL, table: str | None, what: str
    ) -> dict[str, Any]:
        target = self._target(db)
        started = time.monotonic()
        try:
            async with self._connect(target) as conn:
                name: str | None = None
                statement: sql.SQL | sql.Composed = verb
                if table is not None:
                    schema, relname = await _resolve_table(conn, db, table)
                    name = f"{schema}.{relname}"
                    statement = sql.SQL("{} {}").format(verb, sql.Identifier(schema, relname))
                await conn.execute(statement)
        except psycopg.Error as exc:
            raise self._fail(target, f"cannot {what}", exc) from exc
        return {"table": name, "seconds": round(time.monotonic() - started, 3)}

    async def close(self) -> None:
        """Nothing stays open between calls; here for the ``PostgresDriver`` contract."""


async def _resolve_table(
    conn: psycopg.AsyncConnection[dict[str, Any]], db: PostgresDatabase, table: str
) -> tuple[str, str]:
    """The (schema, name) of ``table``, matched literally, never parsed as SQL.

    ``table`` is either a table's exact name (found through the search path) or
    ``schema.name``; an exact name wins, so a table whose name holds a dot still works.
    """
    row = await (
        await conn.execute(
            """
            SELECT n.nspname, c.relname
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'm', 'p')
               AND ((c.relname = %(t)s AND pg_table_is_visible(c.oid))
                    OR n.nspname || '.' || c.relname = %(t)s)
             ORDER BY c.relname = %(t)s AND pg_table_is_visible(c.oid) DESC
             LIMIT 1
            """,
            {"t": table},
        )
    ).fetchone()
    if row is None:
        raise DriverError(
            f"{db.key}: no table {table!r} in database {db.spec.database}; "
            "give its exact name or schema.name"
        )
    return str(row["nspname"]), str(row["relname"])


def _session(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "pid": int(row["pid"]),
        "state": row["state"],
        "seconds": round(float(row["seconds"] or 0.0), 3),
        "query": redact_query(row["query"]),
        "usename": row["usename"],
        "application_name": row["application_name"],
    }


def _describe_session(row: dict[str, Any]) -> str:
    one_line = " ".join(redact_query(row["query"]).split())
    return f"pid={row['pid']} {row['state']} {float(row['seconds'] or 0.0):.1f}s: {one_line}"
