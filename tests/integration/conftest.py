"""Fixtures shared by the integration tests, each started once per module: the Docker engine,
and a Kubernetes control plane with a fake kubelet for the workload tests (a module may
override ``cluster``, as the operator's tests do with the plain API server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.docker_harness import Engine, engine_session, remove_test_containers
from tests.integration.kubelet import FakeKubelet
from tests.k8s import ApiServer, start_apiserver


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


@pytest.fixture(scope="module")
def cluster() -> Iterator[ApiServer]:
    """An API server with the controller manager (a Deployment makes its ReplicaSets and
    pods), or a skip where ``../shared`` is absent."""
    yield from start_apiserver(controller_manager=True)


@pytest.fixture(scope="module")
def kubelet(cluster: ApiServer) -> Iterator[FakeKubelet]:
    """The fake kubelet of node ``kubelet-0``, for every namespace; it saw no error."""
    with FakeKubelet(cluster.kubeconfig) as k:
        yield k
    assert not k.errors, k.errors
