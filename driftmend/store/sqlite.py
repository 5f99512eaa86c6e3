"""The embedded store backend: one SQLite file in WAL mode, and SQLite's errors made ours.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). The ``connection.Connection``
that ``db.Database`` drives when no DSN is set: the statements of the record families are
SQLite's dialect already, so nothing is translated but the errors.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftmend.errors import (
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreUnusableError,
)
from driftmend.store.connection import Cursor
from driftmend.store.schema import migrate

__all__ = ["SqliteConnection", "retitled", "translate"]

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


def translate(exc: sqlite3.Error, path: Path | str) -> StoreError:
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


def retitled(error: StoreError, message: str) -> StoreError:
    """``error``'s class with the open-time ``message`` callers and users already know."""
    if isinstance(error, StoreBusyError):
        return StoreBusyError(message, delay=error.delay)
    return type(error)(message)


class SqliteConnection:
    """The store's file, open: WAL, foreign keys on, migrated to the current schema."""

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    # SQLite gives the next INSERT max(rowid) + 1: a rolled-back id comes back by itself.
    rolled_back_ids_stay_free = False

    def __init__(self, path: Path, *, busy_timeout_s: float) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        # `driftmend get --db-path <a directory>` should say what is wrong in one line.
        if self.path.is_dir():
            raise StoreError(
                f"{self.path} is a directory: give the store's file, like {self.path / 'driftmend.db'}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The owner's only, whatever the umask: SQLite gives its -wal and -shm files the
            # mode of the database file, and the store holds what no other user should read.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
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
            raise retitled(
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
                raise retitled(
                    translate(exc, self.path),
                    f"{self.path} is not a usable driftmend store ({exc}): give another "
                    "--db-path, or move this file away",
                ) from exc
            raise
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        """Run one statement as written (the record families speak SQLite)."""
        return self._conn.execute(sql, args)

    def begin(self) -> None:
        """IMMEDIATE: a second process waits for the write lock (up to the busy timeout)
        instead of failing half-way through its transaction."""
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Commit the open transaction."""
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        """Undo an open transaction; SQLite may already have rolled back after a full disk
        or an I/O error, so a failing rollback is dropped."""
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close the file."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def translate(self, exc: Exception) -> StoreError:
        """The ``StoreError`` for SQLite's ``exc`` (see ``translate``)."""
        assert isinstance(exc, sqlite3.Error)
        return translate(exc, self.path)

    def journal_mode(self) -> str:
        """SQLite's journal mode of the open database (``wal``)."""
        return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])
