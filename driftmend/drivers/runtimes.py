"""The runtime router: one ``ContainerRuntime`` that hands each Container to its own runtime.

Stage: *observe* / *act*, the seam between the loop (and the tools) and the three container
runtimes. ``spec.runtime`` picks the runtime: ``process`` (local processes), ``docker``
(Docker containers) or ``kubernetes`` (a Deployment or StatefulSet). The Docker and
Kubernetes runtimes are built only when a spec first needs them, and connect only then, so
a machine without Docker or a cluster runs process-only specs, and a spec whose engine or
cluster cannot be reached fails alone (an error for that resource), not the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from driftmend.drivers.base import EventSink, StartFailureSink
from driftmend.drivers.docker import DockerRuntime
from driftmend.drivers.kubernetes import KubernetesRuntime
from driftmend.drivers.process import ProcessRuntime
from driftmend.model import Observation
from driftmend.settings import Settings
from driftmend.spec import Container

Runtime = ProcessRuntime | DockerRuntime | KubernetesRuntime


class RuntimeRouter:
    """Implements ``ContainerRuntime`` by dispatching on ``container.spec.runtime``.

    Also serves ``set_limits``, ``rollback`` and ``down``. ``docker_factory`` and
    ``kubernetes_factory`` build those runtimes on first use (tests pass their own; the
    defaults need no engine or cluster to build).
    """

    def __init__(
        self,
        process: ProcessRuntime,
        docker_factory: Callable[[], DockerRuntime],
        kubernetes_factory: Callable[[], KubernetesRuntime] | None = None,
    ) -> None:
        self.process = process
        self._docker_factory = docker_factory
        self._kubernetes_factory = kubernetes_factory or (
            lambda: KubernetesRuntime(process.state_dir)
        )
        self._docker: DockerRuntime | None = None
        self._kubernetes: KubernetesRuntime | None = None
        self._sink: EventSink | None = None
        self._started = False

    @classmethod
    def for_state_dir(
        cls, state_dir: Path, base_dir: Path, settings: Settings | None = None
    ) -> RuntimeRouter:
        """Every runtime keeping its state under ``state_dir``; the cluster of the
        ``kubernetes`` runtime is ``settings``' (kubeconfig, context, metrics server)."""
        kube = settings or Settings()
        return cls(
            ProcessRuntime(state_dir, base_dir=base_dir),
            lambda: DockerRuntime(state_dir),
            lambda: KubernetesRuntime(
                state_dir,
                kubeconfig=kube.kubeconfig,
                context=kube.kube_context,
                metrics_url=kube.kube_metrics_url,
            ),
        )

    @property
    def docker(self) -> DockerRuntime:
        """The Docker runtime, built on first use (building it does not touch the engine)."""
        if self._docker is None:
            self._docker = self._docker_factory()
            if self._sink is not None:
                self._docker.set_event_sink(self._sink)
        return self._docker

    @property
    def kubernetes(self) -> KubernetesRuntime:
        """The Kubernetes runtime, built on first use (building it does not reach the cluster)."""
        if self._kubernetes is None:
            self._kubernetes = self._kubernetes_factory()
            if self._sink is not None:
                self._kubernetes.set_event_sink(self._sink)
        return self._kubernetes

    async def _runtime(self, container: Container) -> Runtime:
        if container.spec.runtime == "process":
            return self.process
        if container.spec.runtime == "kubernetes":
            return self.kubernetes
        docker = self.docker
        if self._started:
            await docker.start()  # idempotent: remembers the loop for the event thread
        return docker

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        """Both runtimes report to ``sink``."""
        self._sink = sink
        self.process.set_event_sink(sink)
        if self._docker is not None:
            self._docker.set_event_sink(sink)
        if self._kubernetes is not None:
            self._kubernetes.set_event_sink(sink)

    def set_start_failure_sink(self, sink: StartFailureSink) -> None:
        """Replicas of the process runtime that fail to start are counted by ``sink``.

        The Docker runtime reports a container that could not start in its observation
        (``could not start: ...``) and counts nothing yet.
        """
        self.process.set_start_failure_sink(sink)

    async def start(self) -> None:
        """Start the process runtime; the Docker runtime starts when a spec first needs it."""
        self._started = True
        await self.process.start()
        if self._docker is not None:
            await self._docker.start()

    async def close(self) -> None:
        """Close every runtime; processes, containers and workloads keep running."""
        self._started = False
        await self.process.close()
        if self._docker is not None:
            await self._docker.close()
        if self._kubernetes is not None:
            await self._kubernetes.close()

    # -- the ContainerRuntime Protocol -----------------------------------------------------

    async def ensure(self, container: Container) -> list[str]:
        """Create the replicas that were never created."""
        return await (await self._runtime(container)).ensure(container)

    async def observe(self, container: Container) -> Observation:
        """The container's signals now."""
        return await (await self._runtime(container)).observe(container)

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        """Restart one replica, or all of them one after another."""
        return await (await self._runtime(container)).restart(container, replica)

    async def stop(self, container: Container) -> dict[str, Any]:
        """Stop every replica on purpose."""
        return await (await self._runtime(container)).stop(container)

    async def start_replicas(self, container: Container) -> dict[str, Any]:
        """Start the replicas that are not running (after ``stop``)."""
        return await (await self._runtime(container)).start_replicas(container)

    async def scale(self, container: Container, replicas: int) -> dict[str, Any]:
        """Run exactly ``replicas`` replicas."""
        return await (await self._runtime(container)).scale(container, replicas)

    async def stats(self, container: Container) -> dict[str, Any]:
        """Per-replica statistics."""
        return await (await self._runtime(container)).stats(container)

    def log_files(self, container: Container) -> Sequence[str]:
        """The files the replicas' output goes to (Docker's log followers write them)."""
        if container.spec.runtime == "process":
            return self.process.log_files(container)
        if container.spec.runtime == "kubernetes":
            return self.kubernetes.log_files(container)
        return self.docker.log_files(container)

    # -- beyond the Protocol ---------------------------------------------------------------

    async def set_limits(
        self, container: Container, cpu: float | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        """Update CPU (cores) and memory (bytes) limits; the process runtime refuses."""
        return await (await self._runtime(container)).set_limits(container, cpu, memory)

    async def rollback(self, container: Container) -> dict[str, Any]:
        """Back to the previous revision (``kubectl rollout undo``); the process and docker
        runtimes refuse, keeping no revisions."""
        return await (await self._runtime(container)).rollback(container)

    async def down(self, container: Container) -> dict[str, Any]:
        """Stop (process) or remove (Docker, containers driftmend created) for good."""
        return await (await self._runtime(container)).down(container)
