"""The PostgreSQL driver and tools against real PostgreSQL servers started by the tests.

Stage: *observe* and *act*. Every number checked here is compared with sessions the test
itself opened; the only double is a ``ContainerRuntime`` whose ``restart`` stops and starts
the test's own server (it sits at our Protocol, where the process runtime would be).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from driftmend.drivers.postgres import PsycopgDriver, redact_query
from driftmend.errors import ConfigurationError, DriverError
from driftmend.model import Observation, ToolStatus
from driftmend.spec import Container, PostgresDatabase, RedisCache
from driftmend.tools.base import Catalogue
from driftmend.tools.postgres import TOOLS
from tests.integration.doubles import ServerRuntime, tool_context, tool_from
from tests.services import PostgresServer, free_port

pytestmark = pytest.mark.integration

Conn = psycopg.AsyncConnection[Any]
APP = "driftmend-test"
NO_SECRETS: dict[str, str] = {}


def num(obs: Observation, signal: str) -> float:
    """A numeric signal of ``obs``; fails the test when it is missing."""
    value = obs.get(signal)
    assert isinstance(value, int | float), f"{signal} is {value!r}"
    return float(value)


# --- helpers -----------------------------------------------------------------------------


def database(port: int, **spec: Any) -> PostgresDatabase:
    return PostgresDatabase.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "PostgresDatabase",
            "metadata": {"name": "db"},
            "spec": {"host": "127.0.0.1", "port": port, **spec},
        }
    )


def container(name: str = "pg") -> Container:
    return Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": name},
            "spec": {"process": {"command": ["postgres"]}},
        }
    )


async def connect(
    server: PostgresServer,
    user: str = "postgres",
    autocommit: bool = True,
    application_name: str = APP,
) -> Conn:
    return await psycopg.AsyncConnection.connect(
        host="127.0.0.1",
        port=server.port,
        user=user,
        dbname="postgres",
        application_name=application_name,
        autocommit=autocommit,
    )


@contextlib.asynccontextmanager
async def sessions(server: PostgresServer) -> AsyncIterator[list[Conn]]:
    """Connections the test opens; on exit they are closed and gone from the server.

    Waiting for the backends to leave keeps the shared server's counts exact for the next
    test: a closed client's backend exits a moment after the client does.
    """
    conns: list[Conn] = []
    try:
        yield conns
    finally:
        for conn in conns:
            if not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    await conn.cancel_safe()
            await conn.close()
        if conns and server.proc is not None:
            # Every test connection carries APP; the admin connection below does not.
            async with await connect(server, application_name="driftmend-test-admin") as admin:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    cur = await admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP]
                    )
                    row = await cur.fetchone()
                    if row is not None and row[0] == 0:
                        break
                    await asyncio.sleep(0.02)


async def is_alive(conn: Conn) -> bool:
    try:
        await conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


async def observe_until(driver: PsycopgDriver, db: PostgresDatabase, check: Any) -> Any:
    """Observe until ``check(obs)`` holds (at most 5 s); the last observation."""
    deadline = time.monotonic() + 5
    while True:
        obs = await driver.observe(db)
        if check(obs) or time.monotonic() > deadline:
            return obs
        await asyncio.sleep(0.1)


@pytest.fixture
async def driver() -> AsyncIterator[PsycopgDriver]:
    drv = PsycopgDriver()
    yield drv
    await drv.close()


@dataclass
class ConfiguredPostgres(PostgresServer):
    """max_connections in postgresql.conf, not on the command line, so ALTER SYSTEM can win.

    A ``-c max_connections`` on the command line overrides ``postgresql.auto.conf``; the
    shared fixtures pass one, so the scaling tests need a server started without it.
    """

    def command(self) -> list[str]:
        cmd = super().command()
        i = cmd.index(f"max_connections={self.max_connections}")
        return cmd[: i - 1] + cmd[i + 1 :]


@pytest.fixture
def conf_postgres() -> Iterator[ConfiguredPostgres]:
    server = ConfiguredPostgres.create(max_connections=20)
    assert isinstance(server, ConfiguredPostgres)
    with (server.datadir / "postgresql.conf").open("a") as conf:
        conf.write("\nmax_connections = 20\n")
    try:
        server.start()
        yield server
    finally:
        server.destroy()


CATALOGUE = Catalogue(TOOLS)


def tool(name: str) -> Any:
    return tool_from(CATALOGUE, name)


# --- observe -----------------------------------------------------------------------------


async def test_observe_counts_the_sessions_the_test_opens(
    postgres_server: PostgresServer, driver: PsycopgDriver
) -> None:
    db = database(postgres_server.port)
    before = await driver.observe(db)
    assert before.error is None
    assert before.get("postgres.up") is True
    assert before.get("postgres.max_connections") == 30
    assert before.facts["max_connections"] == "30"
    assert before.facts["superuser_reserved_connections"] == "3"
    assert before.facts["server_version"].split(".")[0].isdigit()
    assert before.facts["shared_buffers"]
    base = before.get("postgres.connections_used")
    assert isinstance(base, int)

    async with sessions(postgres_server) as conns:
        for _ in range(4):
            conns.append(await connect(postgres_server))
        after = await driver.observe(db)
    assert after.get("postgres.connections_used") == base + 4
    assert after.get("postgres.connections_used_ratio") == pytest.approx((base + 4) / (30 - 3))
    assert after.get("postgres.longest_query_seconds") == 0.0
    assert after.get("postgres.idle_in_transaction") == 0
    assert after.facts["longest_queries"] == "(none)"
    assert after.key == "PostgresDatabase/db"


async def test_observe_sees_a_long_query(
    postgres_server: PostgresServer, driver: PsycopgDriver
) -> None:
    db = database(postgres_server.port)
    async with sessions(postgres_server) as conns:
        conns.append(await connect(postgres_server))
        pid = conns[0].info.backend_pid
        sent = time.monotonic()
        sleeper = asyncio.create_task(
            conns[0].execute("SELECT pg_sleep(30) /* " + "x" * 300 + " */")
        )
        obs = await observe_until(
            driver, db, lambda o: (o.get("postgres.longest_query_seconds") or 0) >= 1.0
        )
        # The age is the query's own, counted from when it was sent: not older than that.
        assert num(obs, "postgres.longest_query_seconds") <= time.monotonic() - sent + 0.5
        top = obs.facts["longest_queries"].splitlines()
        assert top[0].startswith(f"pid={pid} active ")
        assert "pg_sleep(30)" in top[0] and len(top[0]) < 260
        await conns[0].cancel_safe()
        with pytest.raises(psycopg.errors.QueryCanceled):
            await sleeper


async def test_observe_sees_idle_in_transaction(
    postgres_server: PostgresServer, driver: PsycopgDriver
) -> None:
    db = database(postgres_server.port)
    async with sessions(postgres_server) as conns:
        conns.append(await connect(postgres_server, autocommit=False))
        await conns[0].execute("SELECT 1")  # opens a transaction and leaves it open
        obs = await observe_until(
            driver,
            db,
            lambda o: (o.get("postgres.longest_idle_in_transaction_seconds") or 0) >= 0.5,
        )
        assert obs.get("postgres.idle_in_transaction") == 1
        assert 0.5 <= num(obs, "postgres.longest_idle_in_transaction_seconds") < 10
        assert obs.get("postgres.longest_query_seconds") == 0.0
        await conns[0].rollback()
        after = await driver.observe(db)
    assert after.get("postgres.idle_in_transaction") == 0
    assert after.get("postgres.longest_idle_in_transaction_seconds") == 0.0


async def test_observe_works_as_superuser_when_clients_are_refused(
    own_postgres: PostgresServer, driver: PsycopgDriver
) -> None:
    async with await connect(own_postgres) as admin:
        await admin.execute("CREATE ROLE app LOGIN")
    async with sessions(own_postgres) as conns:
        with pytest.raises(psycopg.OperationalError):
            for _ in range(own_postgres.max_connections):
                conns.append(await connect(own_postgres, user="app"))
        # max_connections 20 minus 3 slots reserved for superusers
        assert len(conns) == 17

        obs = await driver.observe(database(own_postgres.port))
        assert obs.error is None
        assert obs.get("postgres.up") is True
        assert obs.get("postgres.connections_used") == 17
        assert num(obs, "postgres.connections_used_ratio") >= 0.9

        # The same server seen as an ordinary user: refused, reported, not raised.
        as_app = await driver.observe(database(own_postgres.port, user="app"))
        assert as_app.get("postgres.up") is False
        assert as_app.error and "reserved" in as_app.error


async def test_observe_a_stopped_then_restarted_server(
    own_postgres: PostgresServer, driver: PsycopgDriver
) -> None:
    db = database(own_postgres.port)
    assert (await driver.observe(db)).get("postgres.up") is True

    own_postgres.stop()
    started = time.monotonic()
    down = await driver.observe(db)
    assert time.monotonic() - started < 3
    assert down.get("postgres.up") is False
    assert down.error and str(own_postgres.port) in down.error
    assert set(down.signals) == {"postgres.up"}

    own_postgres.start()
    again = await driver.observe(db)
    assert again.get("postgres.up") is True, again.error
    assert again.get("postgres.max_connections") == 20


async def test_missing_password_variable_is_a_configuration_error(
    postgres_server: PostgresServer,
) -> None:
    drv = PsycopgDriver(secrets=NO_SECRETS.get)
    db = database(postgres_server.port, passwordFrom={"env": "PG_PASSWORD"})
    with pytest.raises(ConfigurationError, match="PG_PASSWORD"):
        await drv.observe(db)


async def test_password_never_shows(postgres_server: PostgresServer) -> None:
    secret = "s3cret-Pa55word"
    drv = PsycopgDriver(secrets={"PG_PASSWORD": secret}.get)
    db = database(postgres_server.port + 1, passwordFrom={"env": "PG_PASSWORD"})  # nobody there
    obs = await drv.observe(db)
    assert obs.get("postgres.up") is False
    assert secret not in repr(obs)
    with pytest.raises(DriverError) as caught:
        await drv.analyze(db, None)
    assert secret not in str(caught.value) and secret not in repr(caught.value.__cause__)


def test_query_texts_hide_password_literals() -> None:
    text = "ALTER ROLE app WITH PASSWORD 'hunter''2' LOGIN"
    assert redact_query(text) == "ALTER ROLE app WITH PASSWORD '***' LOGIN"
    assert len(redact_query("x" * 500)) == 200


# --- terminate ---------------------------------------------------------------------------


async def test_terminate_ends_exactly_the_matching_sessions(
    postgres_server: PostgresServer, driver: PsycopgDriver
) -> None:
    db = database(postgres_server.port)
    async with sessions(postgres_server) as conns:
        old_tx = await connect(postgres_server, autocommit=False)
        old_idle = await connect(postgres_server)
        old_active = await connect(postgres_server)
        conns += [old_tx, old_idle, old_active]
        await old_tx.execute("SELECT 1")
        await old_idle.execute("SELECT 1")
        active_pid = old_active.info.backend_pid  # libpq answers 0 while a query runs
        sleeper = asyncio.create_task(old_active.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(1.3)
        young_tx = await connect(postgres_server, autocommit=False)
        conns.append(young_tx)
        await young_tx.execute("SELECT 1")

        ended = await driver.terminate(db, 1.0, ["idle in transaction"])
        assert [e["pid"] for e in ended] == [old_tx.info.backend_pid]
        assert ended[0]["state"] == "idle in transaction"
        assert ended[0]["seconds"] >= 1.0
        assert ended[0]["usename"] == "postgres"
        assert ended[0]["application_name"] == "driftmend-test"
        assert ended[0]["query"] == "SELECT 1"
        assert not await is_alive(old_tx)
        assert await is_alive(young_tx)  # too young
        assert await is_alive(old_idle)  # other state
        assert not sleeper.done()

        ended = await driver.terminate(db, 1.0, ["active"])
        assert [e["pid"] for e in ended] == [active_pid]
        assert ended[0]["query"] == "SELECT pg_sleep(30)"
        with pytest.raises(psycopg.OperationalError):
            await sleeper
        assert await is_alive(old_idle)

        # The backends are gone by the time terminate returns: the next observation agrees.
        obs = await driver.observe(db)
        assert obs.get("postgres.longest_query_seconds") == 0.0

        with pytest.raises(ValueError, match="states"):
            await driver.terminate(db, 0, ["sleeping"])


# --- settings and maintenance ------------------------------------------------------------


async def test_set_max_connections_applies_at_restart(
    conf_postgres: ConfiguredPostgres, driver: PsycopgDriver
) -> None:
    db = database(conf_postgres.port)
    assert (await driver.observe(db)).get("postgres.max_connections") == 20
    change = await driver.set_max_connections(db, 40)
    assert change == {"max_connections": 20, "requested": 40, "pending_restart": True}
    assert (await driver.observe(db)).get("postgres.max_connections") == 20

    conf_postgres.stop()
    conf_postgres.start()
    obs = await driver.observe(db)
    assert obs.get("postgres.max_connections") == 40
    assert obs.get("postgres.connections_used_ratio") == pytest.approx(0.0)


async def test_set_max_connections_refuses_a_command_line_value(
    own_postgres: PostgresServer, driver: PsycopgDriver
) -> None:
    # own_postgres runs with `-c max_connections=20`, which ALTER SYSTEM cannot override.
    with pytest.raises(DriverError, match="command line"):
        await driver.set_max_connections(database(own_postgres.port), 40)
    async with await connect(own_postgres) as admin:
        cur = await admin.execute(
            "SELECT count(*) FROM pg_file_settings WHERE name = 'max_connections'"
            " AND sourcefile LIKE %s",
            ["%postgresql.auto.conf"],
        )
        assert await cur.fetchone() == (0,)


async def test_vacuum_and_analyze_quote_weird_names(
    postgres_server: PostgresServer, driver: PsycopgDriver
) -> None:
    db = database(postgres_server.port)
    weird = 'We!rd "Tab"; le'
    async with await connect(postgres_server) as admin:
        await admin.execute('CREATE TABLE "We!rd ""Tab""; le" (id int)')
        await admin.execute('CREATE SCHEMA "Odd Schema"')
        await admin.execute('CREATE TABLE "Odd Schema"."t.x" (id int)')
        await admin.execute('INSERT INTO "We!rd ""Tab""; le" SELECT generate_series(1, 100)')
        await admin.execute('DELETE FROM "We!rd ""Tab""; le" WHERE id % 2 = 0')
        try:
            done = await driver.vacuum(db, weird, analyze=True)
            assert done["table"] == f"public.{weird}"
            assert done["analyze"] is True
            done = await driver.analyze(db, "Odd Schema.t.x")
            assert done["table"] == "Odd Schema.t.x"
            assert (await driver.vacuum(db, None, analyze=False))["table"] is None
            assert (await driver.analyze(db, None))["table"] is None

            deadline = time.monotonic() + 5
            while True:
                cur = await admin.execute(
                    "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
                    " FROM pg_stat_user_tables WHERE relname = %s",
                    [weird],
                )
                row = await cur.fetchone()
                if (row and row[0]) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert row == (True,)

            for bad in ("missing", "public.missing", 'x"; DROP TABLE "Odd Schema"."t.x"; --'):
                with pytest.raises(DriverError, match="no table"):
                    await driver.vacuum(db, bad, analyze=False)
            cur = await admin.execute('SELECT to_regclass(\'"Odd Schema"."t.x"\') IS NOT NULL')
            assert await cur.fetchone() == (True,)
        finally:
            await admin.execute('DROP TABLE "We!rd ""Tab""; le"')
            await admin.execute('DROP SCHEMA "Odd Schema" CASCADE')


# --- tools -------------------------------------------------------------------------------


async def test_scale_connections_tool_caps_and_restart(
    conf_postgres: ConfiguredPostgres, driver: PsycopgDriver
) -> None:
    db = database(conf_postgres.port, runtimeRef={"name": "pg"}, maxConnectionsCap=30)
    unhosted = database(conf_postgres.port, maxConnectionsCap=30)
    runtime = ServerRuntime(conf_postgres)
    scale = tool("pg_scale_connections")
    async with tool_context(runtime, db, container("pg"), postgres=driver) as ctx:
        above = await scale.call(ctx, db, {"max_connections": 31})
        assert above.status is ToolStatus.REFUSED
        assert "maxConnectionsCap (30)" in (above.error or "")

        async with sessions(conf_postgres) as conns:
            for _ in range(3):
                conns.append(await connect(conf_postgres))
            below = await scale.call(ctx, db, {"max_connections": 7})
        assert below.status is ToolStatus.REFUSED
        assert "3 sessions are open" in (below.error or "")

        unknown = await scale.call(ctx, db, {"max_connections": 25, "force": True})
        assert unknown.status is ToolStatus.REFUSED
        assert "force" in (unknown.error or "")
        assert (await scale.call(ctx, db, {})).status is ToolStatus.REFUSED

        no_host = await scale.call(ctx, unhosted, {"max_connections": 25})
        assert no_host.status is ToolStatus.REFUSED
        assert "runtimeRef" in (no_host.error or "")
        assert runtime.restarts == []

        done = await scale.call(ctx, db, {"max_connections": 25})
        assert done.ok, done.error
        assert done.data["max_connections_before"] == 20
        assert done.data["max_connections"] == 25
        assert runtime.restarts == ["Container/pg"]
        assert (await driver.observe(db)).get("postgres.max_connections") == 25

        same = await scale.call(ctx, db, {"max_connections": 25})
        assert same.ok and same.data["changed"] is False
        assert len(runtime.restarts) == 1

        restarted = await tool("pg_restart").call(ctx, db, {})
        assert restarted.ok, restarted.error
        assert len(runtime.restarts) == 2
        assert (await driver.observe(db)).get("postgres.up") is True
        assert (await tool("pg_restart").call(ctx, unhosted, {})).status is ToolStatus.REFUSED


async def test_session_and_maintenance_tools(
    postgres_server: PostgresServer, driver: PsycopgDriver
) -> None:
    db = database(postgres_server.port)
    cache = RedisCache.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "RedisCache",
            "metadata": {"name": "c"},
            "spec": {},
        }
    )
    async with tool_context(ServerRuntime(), db, postgres=driver) as ctx:
        async with sessions(postgres_server) as conns:
            stuck = await connect(postgres_server, autocommit=False)
            conns.append(stuck)
            await stuck.execute("SELECT 42")
            await asyncio.sleep(0.3)

            listed = await tool("pg_sessions").call(ctx, db, {"limit": 5})
            assert listed.ok, listed.error
            assert listed.data["idle_in_transaction"] == 1
            assert listed.data["sessions"][0]["pid"] == stuck.info.backend_pid
            assert listed.data["sessions"][0]["query"] == "SELECT 42"

            bad = await tool("pg_terminate_queries").call(ctx, db, {"states": ["sleeping"]})
            assert bad.status is ToolStatus.REFUSED
            negative = await tool("pg_terminate_queries").call(
                ctx, db, {"min_duration_seconds": -1}
            )
            assert negative.status is ToolStatus.REFUSED

            kept = await tool("pg_terminate_queries").call(ctx, db, {})  # default: 60 s old
            assert kept.ok and kept.data["count"] == 0
            ended = await tool("pg_terminate_queries").call(
                ctx, db, {"min_duration_seconds": 0.2, "states": ["idle in transaction"]}
            )
            assert ended.ok, ended.error
            assert [s["pid"] for s in ended.data["terminated"]] == [stuck.info.backend_pid]
            assert not await is_alive(stuck)

        vacuumed = await tool("pg_vacuum").call(ctx, db, {"table": "pg_catalog.pg_class"})
        assert vacuumed.ok, vacuumed.error
        assert vacuumed.data["table"] == "pg_catalog.pg_class"
        analyzed = await tool("pg_analyze").call(ctx, db, {})
        assert analyzed.ok and analyzed.data["table"] is None
        missing = await tool("pg_analyze").call(ctx, db, {"table": "nope"})
        assert missing.status is ToolStatus.ERROR
        assert "no table 'nope'" in (missing.error or "")

        wrong_kind = await tool("pg_vacuum").call(ctx, cache, {})
        assert wrong_kind.status is ToolStatus.REFUSED


async def test_tool_reports_an_unreachable_database(driver: PsycopgDriver) -> None:
    db = database(free_port(), runtimeRef={"name": "pg"})
    async with tool_context(ServerRuntime(), db, container("pg"), postgres=driver) as ctx:
        listed = await tool("pg_sessions").call(ctx, db, {})
        assert listed.status is ToolStatus.ERROR
        assert "not reachable" in (listed.error or "")
        scaled = await tool("pg_scale_connections").call(ctx, db, {"max_connections": 50})
        assert scaled.status is ToolStatus.ERROR
        ended = await tool("pg_terminate_queries").call(ctx, db, {})
        assert ended.status is ToolStatus.ERROR
        assert (ended.error or "").startswith("DriverError: cannot terminate sessions")
