"""The store's backends for its tests: each store test runs on SQLite and on a real PostgreSQL.

``backend`` opens stores at one location per test: a SQLite file in the test's directory, or
a database of its own on the session's PostgreSQL server (``postgres_server``), created for
the test and dropped after it. ``peek``/``run`` use a connection of their own, not the
store's, so what they see is what another process would.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from driftmend.store import Store
from tests.services import PostgresServer

_databases = itertools.count()


@dataclass
class StoreBackend:
    """Where a test's stores live, and a second connection to look at them."""

    name: str  # sqlite | postgres
    path: Path | None = None
    dsn: str | None = None
    opened: list[Store] = field(default_factory=list)

    def open(self, **kwargs: Any) -> Store:
        """A store at this test's location (closed after the test if the test does not)."""
        store = Store(self.path, dsn=self.dsn, **kwargs)
        self.opened.append(store)
        return store

    def peek(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query (SQLite's dialect), read through a connection of its own."""
        if self.path is not None:
            conn = sqlite3.connect(self.path)
            try:
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        assert self.dsn is not None
        with psycopg.connect(self.dsn, autocommit=True) as pg:
            return pg.execute(sql.replace("?", "%s"), args).fetchall()

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        """Run and commit one statement (SQLite's dialect) through a connection of its own."""
        if self.path is not None:
            conn = sqlite3.connect(self.path)
            try:
                with conn:
                    conn.execute(sql, args)
            finally:
                conn.close()
            return
        assert self.dsn is not None
        with psycopg.connect(self.dsn, autocommit=True) as pg:
            pg.execute(sql.replace("?", "%s"), args)


def fresh_database(server: PostgresServer) -> tuple[str, str]:
    """A new empty database on ``server``: its name and its DSN."""
    name = f"store_test_{next(_databases)}"
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return name, server.dsn.rsplit("/", 1)[0] + f"/{name}"


def drop_database(server: PostgresServer, name: str) -> None:
    """Drop a database made by ``fresh_database``, whoever is still connected to it."""
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """This test's store location, on SQLite and then on PostgreSQL."""
    if request.param == "sqlite":
        found = StoreBackend("sqlite", path=tmp_path / "state" / "driftmend.db")
        yield found
        for store in found.opened:
            store.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name, dsn = fresh_database(server)
    found = StoreBackend("postgres", dsn=dsn)
    try:
        yield found
    finally:
        for store in found.opened:
            store.close()
        drop_database(server, name)
