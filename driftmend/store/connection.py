"""The seam under ``db.Database``: one open connection to SQLite or PostgreSQL, as one shape.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). ``Database`` (transactions,
the lock, degraded mode and its backlog) knows nothing of which server it talks to: it
drives a ``Connection``, and the two backends (``sqlite.py``, the embedded default, and
``postgres.py``, the store operator replicas share) each make their library look like this.
Statements are written once, in SQLite's dialect (``?`` placeholders); a backend translates
what its server says differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from driftmend.errors import StoreError

__all__ = ["Connection", "Cursor", "Row"]


class Row(Protocol):
    """One row of a query, read by column name or position (``sqlite3.Row`` is one)."""

    def __getitem__(self, key: int | str, /) -> Any:
        """The value of a column, by name or by position."""

    def keys(self) -> list[str]:
        """The column names, in order."""


class Cursor(Protocol):
    """What a write block reads back from a statement (``sqlite3.Cursor`` is one)."""

    @property
    def lastrowid(self) -> int | None:
        """The id of the row an INSERT added."""

    @property
    def rowcount(self) -> int:
        """How many rows the statement changed."""

    def fetchone(self) -> Any:
        """The next row of a query."""

    def fetchall(self) -> list[Any]:
        """The remaining rows of a query."""


class Connection(Protocol):
    """One open connection, statements in SQLite's dialect, the library's errors named.

    Every method but ``rollback`` and ``close`` lets the library's own errors (``errors``)
    through, for ``Database`` to translate with ``translate`` at the one place it decides
    what a failure means (busy, unusable, a bad statement).
    """

    # The library's error classes: what ``translate`` accepts.
    errors: tuple[type[Exception], ...]
    # How the store is named in messages and logs (a file, or a DSN without its password).
    where: str
    # Whether an id given to a rolled-back INSERT is never given again (PostgreSQL's
    # sequences), so that replaying the INSERT may claim it (``backlog.Backlog.replay``).
    rolled_back_ids_stay_free: bool

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        """Run one statement; its rows are ``Row``s."""

    def begin(self) -> None:
        """Open a write transaction (it waits for other writers up to the busy timeout)."""

    def commit(self) -> None:
        """Commit the open transaction."""

    def rollback(self) -> None:
        """Undo the open transaction, if any; a failing rollback is dropped, since the error
        that caused it says more."""

    def close(self) -> None:
        """Close the connection; errors are dropped."""

    def translate(self, exc: Exception) -> StoreError:
        """The ``StoreError`` for one of ``errors``; the caller raises it ``from exc``."""

    def journal_mode(self) -> str:
        """How the server keeps its journal (SQLite's ``wal``; ``postgresql`` for a server)."""
