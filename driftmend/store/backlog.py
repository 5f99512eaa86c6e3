"""What the store could not write yet: transactions kept in memory, replayed in order.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). The store is the record,
not the healer: when its file cannot be written (disk full, read-only, I/O errors), the
controller goes on healing and ``db.Database`` keeps each write transaction here instead,
as the statements its caller ran. They are replayed in order, each in its own transaction,
once the file takes writes again.

A caller that needs the id of a row it inserted gets a *placeholder* (a large negative
number no real row has); replay maps each placeholder to the id the store then gives, and
puts the real id in the later statements that name it, so a fix's steps still point to
their fix. An INSERT that ran and was rolled back (the store went before the COMMIT) handed
its caller a real id: SQLite gives that id again on replay by itself; on PostgreSQL, whose
sequences never go back, replay claims it explicitly (``Connection.rolled_back_ids_stay_free``).
A caller that needs a result only the file can give (how many rows an UPDATE
changed, a SELECT) gets ``StoreUnusableError``, and its transaction is dropped whole:
a compare-and-set that cannot be checked must not be applied later behind its back.

Bounded: the newest ``limit`` transactions are kept; older ones are dropped and counted.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftmend.errors import StoreUnusableError
from driftmend.store.connection import Connection, Cursor

__all__ = ["PLACEHOLDER_BASE", "Backlog", "Cursor", "Recorder", "Statement"]

# Placeholder ids count down from here: far below any id the store gives (it starts at 1).
PLACEHOLDER_BASE = -(10**12)


@dataclass
class Statement:
    """One statement of a kept transaction; ``handed_id`` is the row id its caller was
    given (a placeholder, or the id of a write that was rolled back after it ran)."""

    sql: str
    args: tuple[Any, ...]
    handed_id: int | None = None


@dataclass
class Transaction:
    """The statements of one ``Database.write`` block, in order."""

    statements: list[Statement] = field(default_factory=list)


class _KeptCursor:
    """What a statement kept for later returns: a placeholder id, and nothing else."""

    def __init__(self, statement: Statement, backlog: Backlog) -> None:
        self._statement = statement
        self._backlog = backlog

    @property
    def lastrowid(self) -> int:
        if self._statement.handed_id is None:
            self._statement.handed_id = self._backlog.placeholder()
        return self._statement.handed_id

    def _unanswerable(self, what: str) -> StoreUnusableError:
        return StoreUnusableError(
            f"the store {self._backlog.path} cannot be written, so {what} cannot be known; "
            "the change was not made"
        )

    @property
    def rowcount(self) -> int:
        raise self._unanswerable("how many rows changed")

    def fetchone(self) -> Any:
        raise self._unanswerable("the answer of this query")

    def fetchall(self) -> list[Any]:
        raise self._unanswerable("the answer of this query")


class Recorder:
    """Stands in for the connection inside a ``write`` block: runs statements live until the
    file refuses one (or the whole block is kept), then keeps the rest for later."""

    def __init__(
        self,
        backlog: Backlog,
        conn: Connection | None,
        on_failure: Callable[[Exception], bool],
    ) -> None:
        self._backlog = backlog
        self._conn = conn  # None: keep everything (the store is known to be unwritable)
        # Asked when a live statement fails: True means the file refuses writes and the
        # transaction (rolled back by then) is kept from here on.
        self._on_failure = on_failure
        self.transaction = Transaction()

    @property
    def keeping(self) -> bool:
        """Whether statements are now kept for later rather than run."""
        return self._conn is None

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        """Run ``sql`` (and note it), or keep it for later; returns a cursor-like object."""
        statement = Statement(sql, tuple(args))
        self.transaction.statements.append(statement)
        if self._conn is None:
            return _KeptCursor(statement, self._backlog)
        try:
            cur = self._conn.execute(sql, args)
        except self._conn.errors as exc:
            if not self._on_failure(exc):
                self.transaction.statements.pop()
                raise
            self._conn = None
            return _KeptCursor(statement, self._backlog)
        if _inserts(sql):
            statement.handed_id = cur.lastrowid
        return cur


_INSERT_COLUMNS = re.compile(r"^(\s*INSERT\s+INTO\s+\w+\s*\()(.*?\)\s*VALUES\s*\()", re.I | re.S)


def _with_id(sql: str, args: tuple[Any, ...], handed_id: int) -> tuple[str, tuple[Any, ...]]:
    """An INSERT that was run live, then rolled back, given back the id its caller holds.

    Only for a server whose rolled-back ids are never handed out again (PostgreSQL's
    sequences): the id is still free, and later statements that name it stay right.
    Placeholders (never real ids) and statements of another shape are left alone.
    """
    if handed_id <= PLACEHOLDER_BASE:
        return sql, args
    match = _INSERT_COLUMNS.match(sql)
    if match is None:
        return sql, args
    rewritten = f"{match.group(1)}id, {match.group(2)}?, {sql[match.end() :]}"
    return rewritten, (handed_id, *args)


def _inserts(sql: str) -> bool:
    """Whether ``sql`` is an INSERT, whose cursor names the row it added."""
    return sql.lstrip()[:6].upper() == "INSERT"


class Backlog:
    """The transactions waiting for the store's file, oldest first."""

    def __init__(self, path: object, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._pending: deque[Transaction] = deque()
        self._placeholders = itertools.count(PLACEHOLDER_BASE, -1)
        self._ids: dict[int, int] = {}  # placeholder -> real id, once replayed
        self.dropped = 0
        self.shifted = 0  # rolled-back ids that replay could not give back

    def __len__(self) -> int:
        return len(self._pending)

    def placeholder(self) -> int:
        """A new placeholder id."""
        return next(self._placeholders)

    def keep(self, transaction: Transaction) -> None:
        """Keep a transaction for later; the oldest goes when the backlog is full."""
        if not transaction.statements:
            return
        self._pending.append(transaction)
        while len(self._pending) > self.limit:
            self._pending.popleft()
            self.dropped += 1

    def replay(self, conn: Connection) -> int:
        """Write the kept transactions in order, each in its own transaction; returns how
        many were written. Stops at (and raises) the first of the connection's ``errors``,
        leaving that transaction and the later ones kept; the caller tells a dead store from
        a bad row."""
        written = 0
        while self._pending:
            transaction = self._pending[0]
            conn.begin()
            try:
                given: list[tuple[Statement, int | None]] = []
                for s in transaction.statements:
                    sql, args = s.sql, tuple(self._ids.get(a, a) for a in s.args)
                    if conn.rolled_back_ids_stay_free and s.handed_id is not None:
                        sql, args = _with_id(sql, args, s.handed_id)
                    cur = conn.execute(sql, args)
                    given.append((s, cur.lastrowid if _inserts(s.sql) else None))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            for s, real in given:
                if s.handed_id is None or real is None:
                    continue
                if s.handed_id <= PLACEHOLDER_BASE:
                    self._ids[s.handed_id] = real
                elif s.handed_id != real:
                    self.shifted += 1
            self._pending.popleft()
            written += 1
        return written

    def drop_first(self) -> None:
        """Give up on the oldest kept transaction (one the file refuses for itself)."""
        if self._pending:
            self._pending.popleft()
            self.dropped += 1
