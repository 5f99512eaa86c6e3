"""Shared fixtures: real servers on free ports, started per test or per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s import apiserver  # noqa: F401  (a session fixture for every test folder)
from tests.services import PostgresServer, RedisServer, running_postgres, running_redis


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server shared by the read-only tests of a session."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server this test alone uses: it may restart or break it."""
    with running_postgres(max_connections=20) as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server this test alone uses: it may fill, flush or restart it."""
    with running_redis() as server:
        yield server


@pytest.fixture
def work_root() -> Iterator[Path]:
    """Where the process runtime puts what a replica running as another user cannot reach.

    Not under pytest's tmp_path, which is root's and 0700: a replica must pass through it.
    """
    root = Path(tempfile.mkdtemp(prefix="driftmend-work-"))
    os.chmod(root, 0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
