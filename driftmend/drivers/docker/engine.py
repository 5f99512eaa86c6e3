"""The seam to the Docker engine: connecting, translating docker-py's errors, blocking calls.

Stage: *observe* and *act*. Every call here blocks (docker-py is synchronous) and runs in the
runtime's thread pool. docker-py's and the transport's errors are translated here, once:

- ``PermanentError``: retrying will not help. A 4xx answer that is not about timing (a bad
  request, an executable not found in the image, a missing image: driftmend never pulls).
- ``DriverError`` (a ``TemporaryError``): the engine could not do it now. No answer, a 5xx,
  a 404 of a container removed meanwhile, a 409 conflict with an operation under way.

A container that does not exist is not an error: it is a replica that is not running.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker  # type: ignore[import-untyped]  # docker-py ships no type information
import requests
from docker import errors as docker_errors

from driftmend.drivers.docker.events import PlannedStops
from driftmend.drivers.docker.replicas import (
    DockerReplica,
    Snapshot,
    docker_spec,
    group,
    list_labels,
    one_project,
    replica_index,
    stop_timeout,
)
from driftmend.drivers.docker.stats import Sample, parse_stats
from driftmend.errors import DriftmendError, DriverError, PermanentError
from driftmend.spec import Container

log = logging.getLogger(__name__)

GONE_WAIT = 10.0  # seconds a removal already under way may take before we give up on it
# 4xx answers that are about timing, not about the request: trying again may succeed.
_RETRYABLE_4XX = frozenset({404, 408, 409, 429})


def api_error(key: str, what: str, exc: docker_errors.APIError) -> DriftmendError:
    """The error of ours that an engine's error answer means (see the module docstring)."""
    explanation = exc.explanation or str(exc)
    status = exc.status_code or 0
    message = f"{key}: cannot {what}: {explanation}"
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return PermanentError(message)
    return DriverError(message)


@contextlib.contextmanager
def translate(key: str, what: str) -> Iterator[None]:
    """docker-py and transport errors become ours (``api_error``, or ``DriverError``)."""
    try:
        yield
    except DriftmendError:
        raise
    except docker_errors.APIError as exc:
        raise api_error(key, what, exc) from exc
    except (docker_errors.DockerException, requests.RequestException, OSError) as exc:
        raise DriverError(
            f"{key}: cannot {what}: the Docker engine did not answer ({exc}); is dockerd running?"
        ) from exc


def check_unix_socket(base_url: str) -> None:
    """Raise ``OSError`` unless the engine's Unix socket accepts a connection.

    docker-py leaves its socket unclosed when a connection is refused (a ResourceWarning at
    garbage collection), so a missing or restarting engine is detected here first, with a
    socket that is always closed. Other transports (TCP, SSH) are left to docker-py.
    """
    for prefix in ("unix://", "http+unix://"):
        if base_url.startswith(prefix):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2.0)
                sock.connect(base_url.removeprefix(prefix))
            return


def connect(base_url: str | None, timeout: float) -> Any:
    """A docker-py ``APIClient`` (API version negotiated within ``timeout``), or DriverError.

    ``base_url`` None follows Docker's own convention: ``DOCKER_HOST``, else the local socket.
    """
    kwargs: dict[str, Any] = {"base_url": base_url} if base_url else docker.utils.kwargs_from_env()
    url = str(kwargs.get("base_url") or "unix:///var/run/docker.sock")
    try:
        check_unix_socket(url)
        return docker.APIClient(version="auto", timeout=timeout, max_pool_size=32, **kwargs)
    except (docker_errors.DockerException, requests.RequestException, OSError) as exc:
        raise DriverError(
            f"no Docker engine answers at {url}: {exc}; start dockerd "
            "(scripts/docker-engine.sh does it on Debian) or fix DOCKER_HOST"
        ) from exc


class Engine:
    """The blocking calls the Docker runtime makes, on clients made on first use.

    Two clients: one for request/response calls (with ``timeout``) and one for log streams,
    which may stay silent for hours (no read timeout once connected). ``on_connect`` runs
    after the first successful connection (the runtime starts its event stream then).
    """

    def __init__(
        self,
        base_url: str | None,
        timeout: float,
        planned: PlannedStops,
        on_connect: Callable[[], None],
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.planned = planned
        self._on_connect = on_connect
        self._lock = threading.Lock()
        self._api: Any = None
        self._stream: Any = None

    def api(self) -> Any:
        """The request/response client, connected on first use."""
        with self._lock:
            if self._api is None:
                api = connect(self.base_url, self.timeout)
                stream = connect(self.base_url, self.timeout)
                # Negotiated with a timeout above; a log follow may then wait for output forever.
                stream.timeout = None
                self._api, self._stream = api, stream
                connected = True
            else:
                connected = False
        if connected:
            self._on_connect()
        return self._api

    def stream_api(self) -> Any:
        """The client for log streams, or None before the first connection."""
        return self._stream

    def connect_events(self) -> Any:
        """A fresh client for the event thread (its own connection, a finite timeout)."""
        return connect(self.base_url, self.timeout)

    def close(self) -> None:
        """Close both clients; the next call connects again."""
        with self._lock:
            clients, self._api, self._stream = (self._api, self._stream), None, None
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    # -- reading ---------------------------------------------------------------------------

    def snapshot(self, container: Container) -> Snapshot:
        """Every container of ``container``, inspected; PermanentError if two projects match."""
        api = self.api()
        docker = docker_spec(container)
        key = container.key
        found: list[DockerReplica] = []
        with translate(key, "list containers"):
            if docker.container_name is not None:
                try:
                    attrs = api.inspect_container(docker.container_name)
                except docker_errors.NotFound:
                    attrs = None
                if attrs is not None:
                    found.append(DockerReplica.from_inspect(0, attrs))
                return group(found)
            for summary in api.containers(all=True, filters={"label": list_labels(container)}):
                try:
                    attrs = api.inspect_container(summary["Id"])
                except docker_errors.NotFound:
                    continue  # removed between the list and the inspect
                index = replica_index(docker, attrs)
                if index is not None and (attrs.get("State") or {}).get("Status") != "removing":
                    found.append(DockerReplica.from_inspect(index, attrs))
        return group(found, one_project(container, found))

    def inspect(self, ident: str, index: int) -> DockerReplica | None:
        """One container as replica ``index``; None when it does not exist."""
        with translate(ident, "inspect"):
            try:
                return DockerReplica.from_inspect(index, self.api().inspect_container(ident))
            except docker_errors.NotFound:
                return None

    def sample(self, rep: DockerReplica) -> Sample | None:
        """One-shot stats of a running container; None when it stopped meanwhile."""
        api = self.api()
        try:
            try:
                raw = api.stats(rep.id, stream=False, one_shot=True)
            except docker_errors.InvalidVersion:
                raw = api.stats(rep.id, stream=False)  # an engine older than API 1.41
        except (docker_errors.DockerException, requests.RequestException):
            return None  # stopped between the inspect and the stats: no reading this time
        return parse_stats(raw)

    # -- acting ----------------------------------------------------------------------------

    def create(
        self, container: Container, index: int, name: str, config: dict[str, Any]
    ) -> DockerReplica:
        """Create replica ``index`` as ``name`` from ``config`` and start it."""
        api = self.api()
        key = container.key
        with translate(key, f"create replica {index} ({name})"):
            try:
                try:
                    created = api.create_container_from_config(config, name=name)
                except docker_errors.APIError as exc:
                    if exc.status_code != 409 or not self.wait_gone(name):
                        raise
                    # The name belonged to a container on its way out (removed by an
                    # operator a moment ago): now that it is gone, the name is free.
                    created = api.create_container_from_config(config, name=name)
            except docker_errors.ImageNotFound as exc:
                raise PermanentError(
                    f"{key}: image {config.get('Image')} is not on the engine and driftmend "
                    "never pulls: build, load or import it (docker build / load / import)"
                ) from exc
            except docker_errors.APIError as exc:
                if exc.status_code == 409:
                    raise DriverError(
                        f"{key}: the name {name} is taken by another container; remove or "
                        f"rename it (docker rm {name})"
                    ) from exc
                raise
        cid = created["Id"]
        rep = self.inspect(cid, index) if self.start(key, cid, name) else None
        if rep is None:
            raise DriverError(f"{key}: replica {index} ({name}) vanished right after its creation")
        log.info("%s: created replica %d (%s)", key, index, name)
        return rep

    def start(self, key: str, cid: str, name: str) -> bool:
        """Start a created or stopped container; False when it no longer exists.

        When its process cannot start (an executable not in the image, a bad mount), the
        engine says why with a 4xx: a PermanentError, not something to retry forever. (Its
        restart endpoint answers 500 to the same fault, so a container that is down is
        started, never restarted.)
        """
        with translate(key, f"start {name} (check spec.docker.command, image and volumes)"):
            try:
                self.api().start(cid)
            except docker_errors.NotFound:
                return False
        return True

    def wake(self, rep: DockerReplica) -> None:
        """SIGCONT to the container's process: one stopped by SIGSTOP acts on the stop signal
        that follows instead of waiting for SIGKILL after stopTimeout."""
        if rep.running:
            with contextlib.suppress(docker_errors.APIError):
                self.api().kill(rep.id, signal="SIGCONT")

    def restart(self, container: Container, rep: DockerReplica) -> bool:
        """``docker restart``: SIGCONT, stopSignal, SIGKILL after stopTimeout, start.

        False when the container no longer exists (removed since it was listed).
        """
        window = self.planned.open(rep.id)
        try:
            with translate(container.key, f"restart {rep.name}"):
                try:
                    self.wake(rep)
                    self.api().restart(rep.id, timeout=stop_timeout(container))
                except docker_errors.NotFound:
                    return False
            return True
        finally:
            self.planned.close(window)

    def stop(self, container: Container, rep: DockerReplica) -> None:
        """``docker stop`` (SIGCONT, stopSignal, SIGKILL after stopTimeout); its ``die`` is
        not news."""
        window = self.planned.open(rep.id)
        try:
            with (
                translate(container.key, f"stop {rep.name}"),
                contextlib.suppress(docker_errors.NotFound),
            ):
                self.wake(rep)
                self.api().stop(rep.id, timeout=stop_timeout(container))
        finally:
            self.planned.close(window)

    def remove(self, container: Container, rep: DockerReplica) -> None:
        """Stop gracefully, then remove; returns once it is gone."""
        if rep.running:
            self.stop(container, rep)
        window = self.planned.open(rep.id)
        try:
            with (
                translate(container.key, f"remove {rep.name}"),
                contextlib.suppress(docker_errors.NotFound),
            ):
                try:
                    self.api().remove_container(rep.id, force=True)
                except docker_errors.APIError as exc:
                    # 409: someone else is removing it already; wait for that instead.
                    if exc.status_code != 409 or not self.wait_gone(rep.id):
                        raise
        finally:
            self.planned.close(window)

    def wait_gone(self, ident: str, within: float = GONE_WAIT) -> bool:
        """True once no container answers to ``ident`` (a name or an id), within ``within``."""
        api = self.api()
        end = time.monotonic() + within
        while time.monotonic() < end:
            try:
                api.inspect_container(ident)
            except docker_errors.NotFound:
                return True
            time.sleep(0.05)
        return False

    def update_limits(
        self, container: Container, rep: DockerReplica, cpu: float | None, memory: int | None
    ) -> None:
        """``docker update``; CPU in the unit the container was created with (quota or nano)."""
        api = self.api()
        host = rep.attrs.get("HostConfig") or {}
        with translate(container.key, f"update the limits of {rep.name}"):
            if memory is not None:
                # Memory+swap equal to memory: no swap, so the limit is the limit (and the
                # engine refuses a memory limit above the current memory+swap limit).
                api.update_container(rep.id, mem_limit=memory, memswap_limit=memory)
            if cpu is None:
                return
            if not host.get("NanoCpus"):
                api.update_container(rep.id, cpu_period=100_000, cpu_quota=int(cpu * 100_000))
                return
            # Compose sets `cpus:` as NanoCpus, which the engine will not let CpuQuota replace
            # ("CPU Quota cannot be updated as NanoCPUs has already been set"), and docker-py's
            # update_container (and so Container.update) has no nano_cpus parameter. So the
            # same endpoint is posted with the field itself, through public attributes only.
            url = f"{api.base_url}/v{api.api_version}/containers/{rep.id}/update"
            response = api.post(url, json={"NanoCpus": int(cpu * 1e9)}, timeout=self.timeout)
            try:
                response.raise_for_status()
            except requests.HTTPError as exc:
                # Raises the APIError docker-py itself would have raised (translated above).
                docker_errors.create_api_error_from_http_exception(exc)
            finally:
                response.close()
