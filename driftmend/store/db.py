"""The store's one SQLite connection: opening it, transactions, and SQLite's errors made ours.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). This is the seam to SQLite: every
statement of every record family runs through ``Database.write`` or ``Database.read``, and
both turn any ``sqlite3`` error into the ``StoreError`` family (``driftmend.errors``) naming
the store's file, so no caller ever sees ``sqlite3.OperationalError``. WAL mode, one
connection guarded by a lock: every call is short and synchronous.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from driftmend.errors import (
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreUnusableError,
)
from driftmend.store.schema import migrate

__all__ = ["Database", "Row", "rowid", "translate"]

Row = sqlite3.Row

# SQLite's primary result codes (``sqlite_errorname`` starts with one) for a file that no
# retry will fix, and the words of their messages, for errors raised without a code.
_UNUSABLE_CODES = (
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_CANTOPEN",
    "SQLITE_PERM",
)
_UNUSABLE_WORDS = (
    "disk i/o error",
    "disk is full",
    "readonly database",
    "malformed",
    "not a database",
    "unable to open",
)
_BUSY_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED")


def translate(exc: sqlite3.Error, path: Path) -> StoreError:
    """The ``StoreError`` for SQLite's ``exc`` on the store at ``path``; raise it ``from exc``.

    Temporary (locked, busy) and unusable (disk, I/O, read-only, corrupt) are told apart by
    SQLite's result code, or by its message when the error carries no code.
    """
    code = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in lowered:
        return StoreClosedError(f"the store {path} is closed")
    if code.startswith(_BUSY_CODES) or "locked" in lowered or "busy" in lowered:
        return StoreBusyError(f"the store {path} is locked by another writer ({text})")
    if code.startswith(_UNUSABLE_CODES) or any(w in lowered for w in _UNUSABLE_WORDS):
        return StoreUnusableError(f"the store {path} cannot be used: {text}")
    return StoreError(f"the store {path} failed: {text}")


class Database:
    """The connection to one store file: ``write()`` transactions and ``read()`` queries.

    ``busy_timeout_s`` is how long a call waits for another process's write lock before it
    raises ``StoreBusyError``. Thread-safe: one lock around every statement.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # `driftmend get --db-path <a directory>` should say what is wrong in one line.
        if self.path.is_dir():
            raise StoreError(
                f"{self.path} is a directory: give the store's file, like {self.path / 'driftmend.db'}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction spans
            # exactly one public call and nothing is left open between calls.
            conn = sqlite3.connect(
                str(self.path),
                check_same_thread=False,
                isolation_level=None,
                timeout=busy_timeout_s,
            )
        except OSError as exc:
            raise StoreUnusableError(f"cannot open the store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise _retitled(
                translate(exc, self.path), f"cannot open the store {self.path}: {exc}"
            ) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn, self.path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _retitled(
                    translate(exc, self.path),
                    f"{self.path} is not a usable driftmend store ({exc}): give another "
                    "--db-path, or move this file away",
                ) from exc
            raise
        self._conn = conn

    def close(self) -> None:
        """Close the connection; later calls raise ``StoreClosedError``. Safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosedError(f"the store {self.path} is closed")
        return self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock, committed when the block ends.

        IMMEDIATE, so a second process waits for the lock (up to the busy timeout) instead
        of failing half-way; rolled back if the block raises; SQLite errors translated.
        """
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc, self.path) from exc
                raise

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one query, under the lock; SQLite errors translated."""
        with self._lock:
            db = self._connection()
            try:
                return db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return int(self.read("SELECT MAX(version) FROM schema_version")[0][0])

    def journal_mode(self) -> str:
        """SQLite's journal mode of the open database (``wal``)."""
        return str(self.read("PRAGMA journal_mode")[0][0])


def _rollback(db: sqlite3.Connection) -> None:
    """Undo an open transaction; a failing rollback is dropped, since the error that caused
    it says more (SQLite may already have rolled back after a full disk or an I/O error)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _retitled(error: StoreError, message: str) -> StoreError:
    """``error``'s class with the open-time ``message`` callers and users already know."""
    if isinstance(error, StoreBusyError):
        return StoreBusyError(message, delay=error.delay)
    return type(error)(message)


def rowid(cur: sqlite3.Cursor) -> int:
    """The id SQLite gave the row an INSERT just added."""
    assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
    return cur.lastrowid
