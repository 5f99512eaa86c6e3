"""Fixtures shared by the integration tests: the Docker engine, started once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.docker_harness import Engine, engine_session, remove_test_containers


@pytest.fixture(scope="module")
def engine_once() -> Iterator[Engine]:
    """A Docker engine that answers (started by scripts/docker-engine.sh), or a skip saying why."""
    with engine_session() as e:
        yield e


@pytest.fixture
def engine(engine_once: Engine) -> Iterator[Engine]:
    """The engine, with no test container left over from an earlier test."""
    remove_test_containers(engine_once.api)
    yield engine_once
    remove_test_containers(engine_once.api)
