"""The ``Container`` kind's spec: an app run as local processes, Docker containers, or a
Kubernetes Deployment or StatefulSet.

Stage: *spec sources* (docs/ARCHITECTURE.md). The process, docker and kubernetes runtimes
read these models; the validators refuse combinations a runtime could only misread (a docker
block on the process runtime, more replicas than ``maxReplicas``, a replica count for a
workload whose replicas Kubernetes owns).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator
from pydantic.alias_generators import to_camel

from driftmend.spec.fields import (
    DNS_NAME,
    ByteSize,
    Duration,
    FieldError,
    Model,
    PositiveDuration,
)
from driftmend.spec.metadata import SecretRef


class EnvVarSource(Model):
    """An environment variable whose value is a secret, read when a replica starts: from
    an environment variable of the controller or a file (``valueFrom: {env: SHOP_DSN}``).
    The spec, the store and the dashboard hold the reference, never the value."""

    value_from: SecretRef


def _env_value_kind(value: object) -> str:
    return "valueFrom" if isinstance(value, dict | EnvVarSource) else "value"


# A literal value, or where to read a secret one from. Every literal is hidden wherever a
# spec is shown (``redaction.redact_spec``), but stays in the file: secrets go in valueFrom.
# Told apart by shape, so a bad reference gets one message about itself, not a second one
# saying it is not a string.
EnvValue = Annotated[
    Annotated[str, Tag("value")] | Annotated[EnvVarSource, Tag("valueFrom")],
    Discriminator(_env_value_kind),
]


class ProcessSpec(Model):
    """How the ``process`` runtime starts one replica (argv, directory, environment, user)
    and stops it (signal, and how long it may take: less when it hangs)."""

    command: list[str] = Field(
        min_length=1,
        description="argv; a relative path with a slash is resolved from the directory driftmend runs in",
    )
    working_dir: str | None = Field(
        default=None, description="relative to the directory driftmend runs in"
    )
    env: dict[str, EnvValue] = Field(
        default_factory=dict,
        description="a value, or {valueFrom: {env: VAR}} / {valueFrom: {file: path}} for a secret",
    )
    user: str | None = Field(
        default=None,
        description="run as this user when the controller runs as root (PostgreSQL refuses root)",
    )
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT"] = "SIGTERM"
    stop_timeout: Duration = Field(
        default=10.0,
        description="how long a replica may take to exit after stopSignal before SIGKILL",
    )
    hung_stop_timeout: Duration = Field(
        default=2.0,
        description="the stopTimeout of a hung replica (stopped by SIGSTOP, or failing its "
        "health probes): a process that does not answer will not shut down cleanly either, "
        "so it gets this long (at most stopTimeout) before SIGKILL",
    )


class HttpProbe(Model):
    """An HTTP GET that must answer 2xx or 3xx."""

    path: str = "/healthz"
    port: int | None = Field(
        default=None, ge=1, le=65535, description="defaults to the replica's port"
    )


class HealthProbe(Model):
    """A health probe: interval, timeout, and how many failures in a row make it unhealthy."""

    http: HttpProbe
    interval: PositiveDuration = 2.0
    timeout: PositiveDuration = 1.0
    failure_threshold: int = Field(default=3, ge=1)
    initial_delay: Duration = 0.0
    startup_timeout: Duration = Field(
        default=30.0,
        description="how long a new replica may take to pass its first probe: failures "
        "before that are start-up, not ill health (like a Kubernetes startupProbe)",
    )


class Limits(Model):
    """Resource limits: enforced by Docker, watched (as signals) on the process runtime.

    The caps bound what a remedy may raise a limit to (the Docker runtime's ``set_limits``);
    without a cap a limit may be lowered or restored, never raised above the declared value.
    """

    cpu: float | None = Field(default=None, gt=0, description="cores, e.g. 0.5")
    memory: ByteSize | None = None
    cpu_cap: float | None = Field(
        default=None, gt=0, description="set_limits never raises cpu above this (cores)"
    )
    memory_cap: ByteSize | None = Field(
        default=None, description="set_limits never raises memory above this"
    )

    @model_validator(mode="after")
    def _caps_above_limits(self) -> Limits:
        if self.cpu_cap is not None and self.cpu is not None and self.cpu_cap < self.cpu:
            raise FieldError(
                "cpuCap", f"cpuCap ({self.cpu_cap:g}) is below cpu ({self.cpu:g}): raise cpuCap"
            )
        if (
            self.memory_cap is not None
            and self.memory is not None
            and self.memory_cap < self.memory
        ):
            raise FieldError(
                "memoryCap",
                f"memoryCap ({self.memory_cap} bytes) is below memory ({self.memory} bytes): "
                "raise memoryCap",
            )
        return self


class ComposeService(Model):
    """A Docker Compose service: its containers carry these labels."""

    service: str = Field(min_length=1, description="com.docker.compose.service")
    project: str | None = Field(
        default=None,
        min_length=1,
        description="com.docker.compose.project; omitted, the service must be found in one "
        "project only (driftmend refuses to guess between two)",
    )


class DockerHealthcheck(Model):
    """Docker's own health check, run by the engine inside the container."""

    test: list[str] = Field(
        min_length=1,
        description='["CMD", argv...] or ["CMD-SHELL", "a shell line"]; a bare argv runs as CMD',
    )
    interval: Duration = 5.0
    timeout: Duration = 3.0
    retries: int = Field(default=3, ge=1)
    start_period: Duration = 0.0


# The fields that describe how driftmend creates a container: meaningless for a container it
# only watches (``containerName``) or that Compose created (``compose``).
_CREATE_FIELDS = (
    "command", "entrypoint", "env", "user", "working_dir", "volumes", "tmpfs", "labels",
    "healthcheck", "init",
)  # fmt: skip


class DockerSpec(Model):
    """Which containers the ``docker`` runtime runs or watches, and how it creates them.

    One of three: ``image`` (driftmend creates the replicas, named
    ``driftmend-<namespace>.<name>-<i>``), ``containerName`` (one existing container, watched
    and restarted) or ``compose`` (the containers of a Compose service; scaling clones the
    service's own container config). Images are never pulled: the image must be on the engine.
    """

    image: str | None = Field(default=None, description="a local image; never pulled")
    container_name: str | None = Field(
        default=None, description="an existing container to watch and restart (one replica)"
    )
    compose: ComposeService | None = None
    command: list[str] | None = Field(default=None, description="argv; the image's CMD if unset")
    entrypoint: list[str] | None = None
    env: dict[str, EnvValue] = Field(
        default_factory=dict,
        description="a value, or {valueFrom: {env: VAR}} / {valueFrom: {file: path}} for a secret",
    )
    user: str | None = Field(
        default=None, description="uid:gid by number when the image has no /etc/passwd of its own"
    )
    working_dir: str | None = None
    volumes: list[str] = Field(
        default_factory=list,
        description="host:container[:ro|rw] bind mounts, e.g. /usr:/usr:ro",
    )
    tmpfs: dict[str, str] = Field(
        default_factory=dict, description="container path -> mount options, e.g. /tmp: mode=1777"
    )
    network_mode: str = Field(default="host", description="host: replicas listen on 127.0.0.1")
    init: bool = Field(
        default=False,
        description="run Docker's init as PID 1: it forwards stop signals and reaps zombies",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    healthcheck: DockerHealthcheck | None = None
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT", "SIGKILL"] = "SIGTERM"
    stop_timeout: Duration = 10.0

    @model_validator(mode="after")
    def _one_source(self) -> DockerSpec:
        given = [
            name
            for name, value in (
                ("image", self.image),
                ("containerName", self.container_name),
                ("compose", self.compose),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"set exactly one of image (driftmend creates the containers), containerName "
                f"(an existing container) or compose (a Compose service's containers); "
                f"got {', '.join(given) or 'none'}"
            )
        if self.image is None:
            extra = [to_camel(f) for f in _CREATE_FIELDS if f in self.model_fields_set]
            if extra:
                verb = "applies" if len(extra) == 1 else "apply"
                raise FieldError(
                    extra[0],
                    f"{', '.join(extra)} {verb} only with image (driftmend creates the "
                    f"container); {given[0]} names containers made elsewhere: remove "
                    f"{'it' if len(extra) == 1 else 'them'}",
                )
        return self


class KubernetesSpec(Model):
    """Which Deployment or StatefulSet the ``kubernetes`` runtime heals: by name, or by the
    labels of the workload itself (refused when two workloads match: driftmend will not guess).

    Kubernetes owns the pods: driftmend watches them and acts through the workload (a rollout
    restart, the scale subresource, the pod template's resources, a rollback).
    """

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    name: str | None = Field(default=None, pattern=DNS_NAME, description="the workload's name")
    selector: dict[str, str] | None = Field(
        default=None,
        min_length=1,
        description="labels of the workload (metadata.labels), when it is not named",
    )
    namespace: str | None = Field(
        default=None, pattern=DNS_NAME, description="the workload's namespace; default: this one's"
    )
    container: str | None = Field(
        default=None,
        description="the pod template's container that set_limits and the logs are about; "
        "default: the first",
    )

    @model_validator(mode="after")
    def _name_or_selector(self) -> KubernetesSpec:
        if (self.name is None) == (self.selector is None):
            raise FieldError(
                "name",
                "set exactly one of name (the workload's name) or selector (its labels)",
            )
        return self


# What the kubernetes runtime reads from the workload itself, so declaring it here would only
# be a second truth that drifts from the first.
_WORKLOAD_OWNED = {
    "replicas": "the workload's spec.replicas is the desired count (container_scale changes it)",
    "port": "the pods' ports are the pod template's",
    "port_env": "the pods' ports are the pod template's",
    "health": "readiness is the pods' own readinessProbe, read from their Ready condition",
}


class ContainerSpec(Model):
    """Desired state of an app container or supervised process."""

    runtime: Literal["process", "docker", "kubernetes"] = Field(
        default="process",
        description="process: local processes; docker: Docker containers; kubernetes: a "
        "Deployment or StatefulSet",
    )
    process: ProcessSpec | None = Field(default=None, description="required by runtime: process")
    docker: DockerSpec | None = Field(default=None, description="required by runtime: docker")
    kubernetes: KubernetesSpec | None = Field(
        default=None, description="required by runtime: kubernetes"
    )
    replicas: int = Field(default=1, ge=0, le=64)
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="first replica's port; replica i listens on port+i",
    )
    port_env: str | None = Field(
        default=None, description="environment variable that receives the replica's port"
    )
    health: HealthProbe | None = None
    limits: Limits = Field(default_factory=Limits)
    max_replicas: int = Field(default=8, ge=1, le=64, description="upper bound for container_scale")

    @model_validator(mode="after")
    def _runtime_block(self) -> ContainerSpec:
        # The block matching the runtime is required; the other one is a mistake (most often
        # a forgotten `runtime: docker`), not something to ignore silently.
        if self.runtime == "kubernetes":
            return self._kubernetes_fields()
        if self.kubernetes is not None:
            raise FieldError(
                "kubernetes",
                f"kubernetes is set but runtime is {self.runtime}: add `runtime: kubernetes`, "
                "or remove kubernetes",
            )
        if self.runtime == "process":
            if self.docker is not None:
                raise FieldError(
                    "docker",
                    "docker is set but runtime is process (the default): add `runtime: docker`, "
                    "or remove docker",
                )
            if self.process is None:
                raise FieldError(
                    "process",
                    "process is required when runtime is process: add `process: {command: [...]}`"
                    ", or set `runtime: docker` with a docker block",
                )
        else:
            if self.process is not None:
                raise FieldError(
                    "process",
                    "process is set but runtime is docker: remove process, or set "
                    "`runtime: process`",
                )
            if self.docker is None:
                raise FieldError(
                    "docker",
                    "docker is required when runtime is docker: add `docker: {image: ...}` "
                    "(or containerName, or compose: {project, service})",
                )
            if self.docker.container_name is not None and self.replicas > 1:
                raise FieldError(
                    "replicas",
                    "docker.containerName watches one container: set replicas to 1, or use "
                    "image or compose to run several",
                )
        return self

    def _kubernetes_fields(self) -> ContainerSpec:
        for name, block in (("process", self.process), ("docker", self.docker)):
            if block is not None:
                raise FieldError(
                    name,
                    f"{name} is set but runtime is kubernetes: remove {name} (the pod template "
                    f"says how the pods run), or set `runtime: {name}`",
                )
        if self.kubernetes is None:
            raise FieldError(
                "kubernetes",
                "kubernetes is required when runtime is kubernetes: add "
                "`kubernetes: {kind: Deployment, name: ...}`",
            )
        for field, why in _WORKLOAD_OWNED.items():
            # replicas: 1 is the default the CRD writes into every stored object, so only
            # another count is a user's wish that would be ignored.
            if field == "replicas" and self.replicas == 1:
                continue
            if field in self.model_fields_set:
                raise FieldError(
                    to_camel(field),
                    f"{to_camel(field)} does not apply to runtime kubernetes: {why}; remove it",
                )
        for field in ("cpu", "memory"):
            if field in self.limits.model_fields_set:
                raise FieldError(
                    f"limits.{field}",
                    f"limits.{field} does not apply to runtime kubernetes: the limits are the pod "
                    f"template's resources.limits; keep only limits.{field}Cap, the most "
                    "container_set_limits may raise it to",
                )
        return self

    @property
    def declares_health(self) -> bool:
        """True when a health check is declared: our HTTP probe, Docker's healthcheck, or a
        Kubernetes workload's readiness (its pods' Ready condition)."""
        return (
            self.health is not None
            or self.runtime == "kubernetes"
            or (self.docker is not None and self.docker.healthcheck is not None)
        )

    @model_validator(mode="after")
    def _replicas_within_cap(self) -> ContainerSpec:
        if self.replicas > self.max_replicas:
            raise FieldError(
                "replicas",
                f"replicas ({self.replicas}) is above maxReplicas ({self.max_replicas}): "
                "lower replicas or raise maxReplicas",
            )
        if self.replicas > 1 and self.port is not None and self.port_env is None:
            raise FieldError(
                "portEnv",
                "replicas above 1 with a port need portEnv, so each replica gets its own port: "
                "add `portEnv: PORT` (the variable the app reads its port from)",
            )
        return self
