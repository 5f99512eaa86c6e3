"""Specs: the pydantic models of every kind, YAML loading, and CRD generation.

Stage: *spec sources* in DESIGN.md. One model per kind is the single source of truth: it
validates local files, types the kopf handlers, and generates the CRDs in ``crds/``. Loading
never raises for bad input: every problem becomes a ``SpecIssue`` naming the file, the
document (index and kind/name), the field path and the fix.
"""

from __future__ import annotations

import difflib
import operator as op
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from driftmend.keys import ResourceKey
from driftmend.quantities import (
    BYTES_PATTERN,
    DURATION_PATTERN,
    POSITIVE_DURATION_PATTERN,
    format_duration,
    parse_bytes,
    parse_duration,
    parse_positive_duration,
)
from driftmend.signals import SIGNALS, signals_for

GROUP = "driftmend.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Durations and sizes are int-or-string in the CRDs, as in Kubernetes' own types: a string
# matching the pattern, or a bare whole number (seconds, bytes). The parsers in
# ``quantities`` accept exactly that, so the API server and ``driftmend validate`` agree.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": DURATION_PATTERN,
            "minimum": 0,
            "example": "30s",
        }
    ),
]
PositiveDuration = Annotated[
    float,
    BeforeValidator(parse_positive_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": POSITIVE_DURATION_PATTERN,
            "minimum": 1,
            "example": "2s",
        }
    ),
]
ByteSize = Annotated[
    int,
    BeforeValidator(parse_bytes),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": BYTES_PATTERN,
            "minimum": 0,
            "example": "512Mi",
        }
    ),
]
DNS_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Model(BaseModel):
    """Base of every spec model: camelCase in YAML, snake_case in Python, unknown keys refused.

    ``allow_inf_nan=False``: YAML spells them ``.inf`` and ``.nan``, and no threshold, limit
    or ratio means anything as either (``x > .nan`` never holds, a limit of ``.inf`` is none).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )


class FieldError(ValueError):
    """A model validator's error about one field: ``path`` is relative to the model validated.

    Pydantic reports a model validator's error at the model itself (``spec``); loading reads
    ``path`` back from the error so the reader sees ``spec.rules[1].name``, not ``spec``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _shown(value: object, limit: int = 40) -> str:
    """``value`` as quoted in a message: YAML spelling for flags and nulls, cut short."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> str:
    """``"; did you mean x?"`` with the closest of ``choices`` (up to ``n``), or ``""``."""
    close = difflib.get_close_matches(word, sorted(choices), n=n)
    return f"; did you mean {' or '.join(close)}?" if close else ""


class Metadata(Model):
    """Kubernetes-style metadata: a DNS-safe name, a namespace and labels."""

    name: str = Field(pattern=DNS_NAME, description="DNS-1123 name, unique per kind")
    namespace: str = Field(default="default", pattern=DNS_NAME)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SecretRef(Model):
    """Where a secret comes from: an environment variable of the controller, never the file."""

    env: str = Field(pattern=ENV_NAME, description="environment variable name")


class RuntimeRef(Model):
    """The resource that hosts a database or cache: restarts and resizes go through it."""

    kind: Literal["Container"] = "Container"
    name: str = Field(pattern=DNS_NAME)


# --- Container ---------------------------------------------------------------------------


class ProcessSpec(Model):
    """How the ``process`` runtime starts one replica: argv, directory, environment, user."""

    command: list[str] = Field(
        min_length=1,
        description="argv; a relative path with a slash is resolved from the directory driftmend runs in",
    )
    working_dir: str | None = Field(
        default=None, description="relative to the directory driftmend runs in"
    )
    env: dict[str, str] = Field(default_factory=dict)
    user: str | None = Field(
        default=None,
        description="run as this user when the controller runs as root (PostgreSQL refuses root)",
    )
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT"] = "SIGTERM"
    stop_timeout: Duration = 10.0


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
    env: dict[str, str] = Field(default_factory=dict)
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


class ContainerSpec(Model):
    """Desired state of an app container or supervised process."""

    runtime: Literal["process", "docker"] = Field(
        default="process", description="process: local processes; docker: Docker containers"
    )
    process: ProcessSpec | None = Field(default=None, description="required by runtime: process")
    docker: DockerSpec | None = Field(default=None, description="required by runtime: docker")
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

    @property
    def declares_health(self) -> bool:
        """True when a health check is declared: our HTTP probe or Docker's healthcheck."""
        return self.health is not None or (
            self.docker is not None and self.docker.healthcheck is not None
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


class PostgresDatabaseSpec(Model):
    """Desired state of a PostgreSQL database, observed through SQL."""

    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = "postgres"
    user: str = "postgres"
    password_from: SecretRef | None = None
    runtime_ref: RuntimeRef | None = None
    max_connections_cap: int = Field(
        default=200, ge=1, description="pg_scale_connections never goes above this"
    )


class RedisCacheSpec(Model):
    """Desired state of a Redis cache, observed through RESP."""

    host: str = "127.0.0.1"
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0)
    password_from: SecretRef | None = None
    runtime_ref: RuntimeRef | None = None
    maxmemory_cap: ByteSize | None = Field(
        default=None, description="redis_set_maxmemory never goes above this"
    )


# --- HealingPolicy -----------------------------------------------------------------------

Operator = Literal["==", "!=", ">", ">=", "<", "<="]
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": op.eq, "!=": op.ne, ">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le,
}  # fmt: skip
ResourceKind = Literal["Container", "PostgresDatabase", "RedisCache"]


class Selector(Model):
    """Which resources a policy applies to: one kind, and labels that must all match."""

    kind: ResourceKind
    match_labels: dict[str, str] = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list, description="when set, only these names")


class Condition(Model):
    """``signal operator value``, holding for at least ``for``."""

    signal: str
    operator: Operator = "=="
    value: bool | float
    for_: Duration = Field(default=0.0, alias="for")

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, name: str) -> str:
        if name not in SIGNALS:
            # All 27 names on one line drown the typo: the closest few and where to look.
            raise ValueError(
                f"unknown signal {_shown(name)}{_did_you_mean(name, SIGNALS, n=3)} "
                "(`driftmend signals` lists them all)"
            )
        return name

    @model_validator(mode="after")
    def _value_fits_signal(self) -> Condition:
        info = SIGNALS[self.signal]
        if info.type == "bool" and not isinstance(self.value, bool):
            raise FieldError("value", f"{self.signal} is a flag: compare it with true or false")
        if info.type != "bool" and isinstance(self.value, bool):
            value = str(self.value).lower()
            raise FieldError(
                "value", f"{self.signal} is a number: compare it with a number, not {value}"
            )
        if info.type == "bool" and self.operator not in ("==", "!="):
            raise FieldError(
                "operator", f"{self.signal} is a flag: use == or !=, not {self.operator}"
            )
        return self

    def holds(self, observed: object) -> bool:
        """True when ``observed`` satisfies the condition (a missing value never does)."""
        if observed is None:
            return False
        try:
            return OPERATORS[self.operator](observed, self.value)
        except TypeError:
            return False

    def describe(self) -> str:
        """``redis.memory_used_ratio >= 0.95 for 10s``, for humans and prompts."""
        value = str(self.value).lower() if isinstance(self.value, bool) else f"{self.value:g}"
        held = f" for {format_duration(self.for_)}" if self.for_ else ""
        return f"{self.signal} {self.operator} {value}{held}"


class ToolStep(Model):
    """One tool call of a rule's remedy: the tool's name and its parameters."""

    tool: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class Verify(Model):
    """How long the fix may take to clear the drift before it counts as failed."""

    timeout: PositiveDuration = 30.0
    interval: PositiveDuration = 0.5


class Attempts(Model):
    """A rule's budget: at most ``max`` fixes per sliding ``window``."""

    max: int = Field(default=3, ge=1)
    window: Duration = 600.0


class Rule(Model):
    """One rung of a policy's ladder: when all conditions hold, do the steps, then verify."""

    name: str = Field(pattern=DNS_NAME)
    when: list[Condition] = Field(min_length=1)
    do: list[ToolStep] = Field(min_length=1)
    verify: Verify = Field(default_factory=Verify)
    attempts: Attempts = Field(default_factory=Attempts)
    cooldown: Duration = 0.0
    approval: Literal["operator", "auto"] | None = Field(
        default=None,
        description="operator: this rung's plans wait for an operator's approval even when no "
        "step is destructive (say, a restart of a database); auto: run without one, even "
        "destructive steps; unset: the policy's approval, which governs destructive steps",
    )


class Escalate(Model):
    """When the rules cannot fix a drift: ask an LLM planner for a plan of tool calls.

    ``mode`` says what happens to its plan: ``auto`` runs it once the guard admits it,
    ``approve`` waits for an operator, ``shadow`` only records it beside what the rules or
    the operator did, so its agreement can be measured before it is trusted.
    """

    planner: Literal["gemini", "openai", "replay"] = "gemini"
    mode: Literal["auto", "approve", "shadow"] = "approve"
    when: Literal["no-rule", "always"] = Field(
        default="no-rule",
        description="no-rule: when no rung applies or the ladder is exhausted; always: on every drift",
    )
    allowed_tools: list[str] = Field(
        default_factory=list,
        description="tools the LLM may call (read tools to investigate, others to fix); "
        "empty: the tools of this policy's rules plus every read tool of the kind",
    )
    max_steps: int = Field(default=5, ge=1, le=16, description="steps of the proposed plan")
    max_turns: int = Field(default=4, ge=1, le=10, description="model calls, read tools included")
    token_budget_per_day: int = Field(
        default=200_000, ge=1000, description="tokens per resource per day; over it, needs-operator"
    )
    attempts: Attempts = Field(
        default_factory=lambda: Attempts(max=3, window=3600.0),
        description="LLM plans run per resource per window, like a rule's: a crash loop "
        "is not restarted by the LLM forever either",
    )
    cooldown: Duration = Field(default=0.0, description="the least time between two LLM plans")


class HealingPolicySpec(Model):
    """Which resources, an ordered ladder of rules, and what happens when it is exhausted."""

    selector: Selector
    rules: list[Rule] = Field(default_factory=list)
    escalate: Escalate | None = None
    on_exhausted: Literal["needs-operator"] = "needs-operator"
    approval: Literal["operator", "auto"] = Field(
        default="operator",
        description="who approves destructive steps: an operator in the dashboard, or auto",
    )
    max_steps: int = Field(default=8, ge=1, le=32, description="the guard refuses longer plans")
    paused: bool = False

    def allowed_tools(self) -> set[str]:
        """The allowlist: every tool named by a rule of this policy."""
        return {step.tool for rule in self.rules for step in rule.do}

    @model_validator(mode="after")
    def _rules_or_escalation(self) -> HealingPolicySpec:
        if not self.rules and self.escalate is None:
            raise FieldError("rules", "a policy needs at least one rule, or an escalate block")
        return self

    def rule(self, name: str | None) -> Rule | None:
        """The rule called ``name``, if any."""
        return next((r for r in self.rules if r.name == name), None)

    @model_validator(mode="after")
    def _rules_fit_kind(self) -> HealingPolicySpec:
        kind = self.selector.kind
        allowed = {s.name for s in signals_for(kind)}
        names: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in names:
                raise FieldError(
                    f"rules[{i}].name",
                    f"duplicate rule name {rule.name!r}: give each rule of a policy its own name",
                )
            names.add(rule.name)
            for j, cond in enumerate(rule.when):
                if cond.signal not in allowed:
                    owner = ", ".join(SIGNALS[cond.signal].kinds)
                    raise FieldError(
                        f"rules[{i}].when[{j}].signal",
                        f"{cond.signal} is a signal of {owner}, not of {kind}"
                        f"{_did_you_mean(cond.signal, allowed, n=3)} "
                        f"(`driftmend signals {kind}` lists them)",
                    )
        return self


# --- documents ---------------------------------------------------------------------------


class _Resource(Model):
    api_version: Literal["driftmend.dev/v1alpha1"] = Field(alias="apiVersion")
    metadata: Metadata

    @property
    def name(self) -> str:
        """``metadata.name``: unique per kind and namespace only, so never a lookup key."""
        return self.metadata.name

    @property
    def key(self) -> str:
        """``Kind/name`` (``Kind/namespace/name`` outside the default namespace).

        Unique per (kind, namespace, name), and unambiguous: a DNS name holds no ``/``.
        """
        return str(self.resource_key)

    @property
    def resource_key(self) -> ResourceKey:
        """The typed key (``ResourceKey``): its ``dirname`` names the resource's state dir."""
        kind: str = getattr(self, "kind")  # noqa: B009 - set by every subclass
        return ResourceKey.of(kind, self.name, self.metadata.namespace)

    @property
    def labels(self) -> dict[str, str]:
        """``metadata.labels``."""
        return self.metadata.labels


class Container(_Resource):
    """An app container (or a supervised process on the ``process`` runtime)."""

    kind: Literal["Container"]
    spec: ContainerSpec


class PostgresDatabase(_Resource):
    """A PostgreSQL database."""

    kind: Literal["PostgresDatabase"]
    spec: PostgresDatabaseSpec


class RedisCache(_Resource):
    """A Redis cache."""

    kind: Literal["RedisCache"]
    spec: RedisCacheSpec


class HealingPolicy(_Resource):
    """A healing policy: selector, ladder of rules, escalation.

    Find a policy by ``key`` (``HealingPolicy/name``, or ``HealingPolicy/namespace/name``),
    not by ``name``: two namespaces may each declare a policy of the same name.
    """

    kind: Literal["HealingPolicy"]
    spec: HealingPolicySpec

    def selects(self, resource: Resource) -> bool:
        """True when this policy applies to ``resource`` (same kind, namespace, labels)."""
        sel = self.spec.selector
        if resource.kind != sel.kind or resource.metadata.namespace != self.metadata.namespace:
            return False
        if sel.names and resource.name not in sel.names:
            return False
        return all(resource.labels.get(k) == v for k, v in sel.match_labels.items())


Resource = Container | PostgresDatabase | RedisCache
Document = Annotated[Resource | HealingPolicy, Field(discriminator="kind")]
KINDS: dict[str, type[_Resource]] = {
    "Container": Container,
    "PostgresDatabase": PostgresDatabase,
    "RedisCache": RedisCache,
    "HealingPolicy": HealingPolicy,
}
_DOCUMENT: TypeAdapter[Resource | HealingPolicy] = TypeAdapter(Document)


# --- loading -----------------------------------------------------------------------------

MAX_DEPTH = 64
"""The deepest nesting a document may have. Real specs stay under 15 levels; YAML much deeper
than this exhausts the parser's recursion (and later pydantic's) and ends in a traceback."""
MAX_VALUES = 100_000
"""The most values a document may expand to. YAML aliases let a few lines expand to billions
of values ("billion laughs"), which every later walk (validation, JSON, the store) would pay."""


def _one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x01``): a message stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


@dataclass(frozen=True)
class SpecIssue:
    """One problem in one document: where it is and what is wrong, as one line."""

    file: str
    document: int | None
    what: str
    field: str = ""
    message: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file
        if self.document is not None:
            where += f": document {self.document}"
            if self.what:
                where += f" ({self.what})"
        field = f": {self.field}" if self.field else ""
        prefix = "warning: " if self.severity == "warning" else ""
        # Names, keys and values come from the file: a newline or a control character in
        # them must not split the line or reach the terminal raw.
        return _one_line(f"{prefix}{where}{field}: {self.message}")


@dataclass(frozen=True)
class Loaded:
    """One valid document and where it came from."""

    doc: Resource | HealingPolicy
    file: str
    index: int


@dataclass
class LoadResult:
    """Every valid document found, and every issue, for one or more paths."""

    documents: list[Loaded]
    issues: list[SpecIssue]

    @property
    def errors(self) -> list[SpecIssue]:
        """The issues that make a document (or a file) invalid."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[SpecIssue]:
        """The issues worth a look that invalidate nothing."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def resources(self) -> list[Resource]:
        """The valid resources (every kind but HealingPolicy)."""
        return [d.doc for d in self.documents if not isinstance(d.doc, HealingPolicy)]

    @property
    def policies(self) -> list[HealingPolicy]:
        """The valid policies."""
        return [d.doc for d in self.documents if isinstance(d.doc, HealingPolicy)]


def spec_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[SpecIssue]]:
    """The YAML files under ``paths`` (files as given, directories searched, sorted).

    A path that does not exist is an error; a directory without YAML files is a warning,
    so that ``driftmend validate`` on the wrong directory does not answer a silent "ok".
    """
    files: list[Path] = []
    issues: list[SpecIssue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
            if not found:
                issues.append(SpecIssue(
                    str(path), None, "",
                    message="no .yaml or .yml file in this directory: nothing to check",
                    severity="warning",
                ))  # fmt: skip
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            issues.append(SpecIssue(str(path), None, "", message="no such file or directory"))
    return files, issues


# --- YAML --------------------------------------------------------------------------------


class _DuplicateKeyError(ConstructorError):
    """A mapping names the same key twice; ``first_line`` is where it was first (0-based)."""

    def __init__(self, key: object, node: Node, first_line: int) -> None:
        super().__init__(None, None, f"duplicate key {_shown(key)}", node.start_mark)
        self.first_line = first_line


class _TooDeepError(ComposerError):
    """The document nests deeper than ``MAX_DEPTH``."""


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: no duplicate keys, no nesting beyond ``MAX_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        """Compose one node, refusing nesting beyond ``MAX_DEPTH`` with the line it starts on."""
        # The composer recurses once per level: stop at MAX_DEPTH with a line number, long
        # before Python's recursion limit (about 500 levels) stops it with a traceback.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # stubs lack it
                raise _TooDeepError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """One value; a scalar Python cannot hold becomes a YAML error with its line."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            # PyYAML lets Python's own errors escape for scalars it recognises but cannot
            # build: an integer of 5000 digits, a date with month 13.
            reason = str(exc).split(";")[0]
            raise ConstructorError(
                None, None, f"cannot read this value ({reason})", node.start_mark
            ) from exc

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refusing a key given twice (PyYAML would let the last one win silently)."""
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` keys may be overridden: that is what merging is for
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first:
                    raise _DuplicateKeyError(key, key_node, first[key])
                first[key] = key_node.start_mark.line
            except TypeError:
                continue  # an unhashable key: PyYAML's own check reports it just below
        return super().construct_mapping(node, deep=deep)


# A document starts at `---` at the start of a line, followed by a blank or the line's end.
_DOCUMENT_START = re.compile(r"^---(?=[ \t\r]|$)", re.MULTILINE)
_KIND_LINE = re.compile(r"^kind:[ \t]*([A-Za-z]+)[ \t]*$", re.MULTILINE)
_NAME_LINE = re.compile(
    r"^metadata:[ \t]*(?:\{[^}\n]*?\bname:|\n[ \t]+name:)[ \t]*([\w.-]+)", re.MULTILINE
)


def _split_documents(text: str) -> list[tuple[int, str]]:
    """``text`` cut before each ``---`` line, with the line number each piece starts on.

    YAML forbids a ``---`` line inside a document (PyYAML ends the document there, or fails),
    so each piece parses on its own, and a syntax error costs one document instead of the
    rest of the file. Directives (``%YAML``, ``%TAG``) belong to the document after them and
    would be cut off from it: a file with directives, rare in specs, is parsed whole.
    """
    if re.search(r"^%", text, re.MULTILINE):
        return [(0, text)]
    bounds = [0, *(m.start() for m in _DOCUMENT_START.finditer(text) if m.start() > 0)]
    pieces: list[tuple[int, str]] = []
    line = 0
    for start, end in zip(bounds, [*bounds[1:], len(text)], strict=True):
        pieces.append((line, text[start:end]))
        line += text.count("\n", start, end)
    return pieces


def _yaml_problem(exc: yaml.YAMLError, piece: str, first_line: int) -> str:
    """One line for a YAML error, with the line and column in the whole file."""
    if isinstance(exc, yaml.reader.ReaderError):
        # The reader checks every character before parsing, and reports an offset only.
        pos = exc.position
        line = first_line + piece.count("\n", 0, pos) + 1
        column = pos - (piece.rfind("\n", 0, pos) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return (
            f"YAML: character U+{char:04X} at line {line}, column {column} is not allowed "
            "(a control character): remove it"
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {first_line + mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "").split())
        if isinstance(exc, _DuplicateKeyError):
            return (
                f"YAML: {problem}{where} (first at line {first_line + exc.first_line + 1}): "
                "keep one of them"
            )
        if isinstance(exc, _TooDeepError):
            return f"YAML: {problem}{where}: flatten it"
        # Each document is parsed alone: its end is where the real stream had the next one.
        problem = problem.replace("'<stream end>'", "the end of the document")
        problem = problem.replace("'<document start>'", "the next document (---)")
        context = " ".join(str(exc.context or "").split())
        hint = f" ({context})" if context and context != problem else ""
        # A constructor error is about a value (a tag, a number too big), not the syntax.
        label = "YAML error" if isinstance(exc, ConstructorError) else "YAML syntax error"
        return f"{label}{where}: {problem}{hint}"
    return "YAML error: " + " ".join(str(exc).split())


def _parse_piece(piece: str, first_line: int) -> tuple[list[object], str | None]:
    """The decoded documents of one piece, and what stopped it (one line) if anything did."""
    raws: list[object] = []
    try:
        loader = _SpecLoader(piece)  # the reader checks every character here
        try:
            while loader.check_data():  # type: ignore[no-untyped-call]  # stubs lack it
                raws.append(loader.get_data())
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        return raws, _yaml_problem(exc, piece, first_line)
    except RecursionError:  # the depth limit comes first; this is the last resort
        return raws, f"YAML: nested too deeply (the limit is {MAX_DEPTH} levels): flatten it"
    return raws, None


def _guess_what(piece: str) -> str:
    """``Kind/name`` read off the lines of a document that would not parse, or ``""``."""
    kind = _KIND_LINE.search(piece)
    if kind is None:
        return ""
    name = _NAME_LINE.search(piece)
    return f"{kind.group(1)}/{name.group(1) if name else '?'}"


class _Unsafe(Exception):
    """A decoded document that must not reach validation; the message says why."""


def _check_shape(raw: object) -> None:
    """Raise ``_Unsafe`` for a document that loops on itself or expands beyond the limits.

    Aliases make the decoded value a graph: sizes are memoised per shared value, so the walk
    costs the YAML's size, not its expansion; depth is checked along the way, so the walk's
    own recursion stays within ``MAX_DEPTH``.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values, height)
    active: set[int] = set()

    def walk(node: object, depth: int) -> tuple[int, int]:
        if not isinstance(node, dict | list):
            return 1, 0
        ident = id(node)
        if ident in sizes:
            size, height = sizes[ident]
        elif ident in active:
            raise _Unsafe(
                "YAML: an alias refers to a value that contains it (*x inside &x): "
                "a spec cannot be recursive"
            )
        else:
            active.add(ident)
            size, height = 1, 0
            for child in node.values() if isinstance(node, dict) else node:
                child_size, child_height = walk(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                if size > MAX_VALUES:
                    raise _Unsafe(
                        f"YAML: the document expands to more than {MAX_VALUES} values "
                        "(through aliases): write it out, or use fewer aliases"
                    )
            active.discard(ident)
            sizes[ident] = (size, height)
        if depth + height > MAX_DEPTH:
            raise _Unsafe(
                f"YAML: nested deeper than {MAX_DEPTH} levels (through aliases): flatten it"
            )
        return size, height

    walk(raw, 0)


# --- validation errors as lines ----------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """Where a pydantic error points: the readable path and what is expected there."""

    path: str
    annotation: Any  # the type expected at the path (Any when unknown)
    model: type[BaseModel] | None  # the model the last name was looked up in
    name: str | None  # the last name of the path (a field, or an unknown key)


def _unwrap(tp: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _model_field(model: type[BaseModel], name: str) -> Any:
    """The ``FieldInfo`` of ``model`` named ``name`` (by YAML alias or Python name), or None."""
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info
    return None


def _union_member(tp: Any, tag: str) -> Any:
    """The member of a union that pydantic's location ``tag`` names (its type or kind)."""
    for member in get_args(tp):
        inner = _unwrap(member)
        if getattr(inner, "__name__", None) == tag:
            return inner
    return Any


def _locate(loc: Sequence[int | str], root: Any) -> _Where:
    """Follow a pydantic error location through the types from ``root``.

    The readable path drops what only pydantic needs: a union's branch names (``Container``
    of the document union, ``bool`` and ``float`` of a condition's value) and ``[key]``.
    """
    path = ""
    tp: Any = root
    model: type[BaseModel] | None = None
    name: str | None = None
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if part == "[key]":
            continue
        if origin in (typing.Union, types.UnionType) and isinstance(part, str):
            tp = _union_member(tp, part)
            continue
        if isinstance(part, int):
            path += f"[{part}]"
            args = get_args(tp)
            tp = args[0] if origin in (list, tuple, set, frozenset) and args else Any
            continue
        path = f"{path}.{part}" if path else part
        name = part
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            model = tp
            info = _model_field(tp, part)
            tp = info.annotation if info is not None else Any
        elif origin is dict:
            tp = get_args(tp)[1]
        else:
            tp = Any
    return _Where(path, tp, model, name)


# The noun phrase of what a type error expected, keyed by pydantic's error type.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_HOW = {
    "a string": "put it in quotes",
    "a list": "write [a, b], or one `- item` per line",
    "a mapping": "write `key: value` pairs",
}
_NAME_PATTERNS = {
    DNS_NAME: "is not a valid name: use lowercase letters, digits and '-', starting and ending "
    "with a letter or digit, at most 63 characters (like shop-db)",
    ENV_NAME: "is not an environment variable name: use letters, digits and '_', not starting "
    "with a digit (like DB_PASSWORD)",
}


def _reworded(err: Mapping[str, Any], where: _Where) -> str:
    """Pydantic's message for one error, said as what is wrong and how to fix it."""
    kind = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    got = _shown(err.get("input"))
    if kind in _EXPECTED:
        expected = _EXPECTED[kind]
        how = _HOW.get(expected)
        if expected == "a string" and isinstance(err.get("input"), list | dict):
            how = None  # quotes would not turn a list or a mapping into a string
        return f"expected {expected}, got {got}" + (f": {how}" if how else "")
    if kind == "extra_forbidden":
        allowed = [
            info.alias or name
            for name, info in (where.model.model_fields if where.model else {}).items()
        ]
        hint = _did_you_mean(where.name or "", allowed).removeprefix("; ")
        if hint:
            return f"unknown field: {hint}"
        return "unknown field: remove it" + (
            f" (allowed here: {', '.join(allowed)})" if allowed else ""
        )
    if kind == "missing":
        info = _model_field(where.model, where.name) if where.model and where.name else None
        about = f" ({info.description})" if info is not None and info.description else ""
        return f"required field is missing: add {where.name}{about}"
    if kind == "literal_error":
        if where.name == "apiVersion":
            return f"apiVersion must be {API_VERSION}, got {got}"
        choices = [str(c) for c in get_args(_unwrap(where.annotation))] or [
            str(ctx.get("expected"))
        ]
        close = _did_you_mean(str(err.get("input")), choices)
        return f"must be one of {', '.join(choices)}; got {got}{close}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return f"{got} {_NAME_PATTERNS.get(pattern, f'does not match the pattern {pattern}')}"
    bounds = {
        "greater_than": ("more than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}, got {got}"
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty: give at least one item"
        return f"needs at least {ctx.get('min_length')} items"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"is too long: at most {ctx.get('max_length')} {unit}"
    if kind == "invalid_key":  # `5: x` or `null: x` where names are expected
        return "keys must be strings: quote this one, or remove it"
    if kind == "recursion_loop":
        return "refers to itself: a spec cannot be recursive"
    return " ".join(str(err["msg"]).removeprefix("Value error, ").split())


def describe_errors(exc: ValidationError, root: Any, base: str = "") -> list[tuple[str, str]]:
    """``(field path, message)`` per field of a ``ValidationError`` raised validating ``root``.

    One line per field: the alternatives of a union (a condition's ``value`` is a flag or
    a number) become one message; an error a model validator raised about one of its fields
    (``FieldError``) points at that field, not at the model. ``base`` prefixes every path.
    """
    grouped: dict[str, list[tuple[Mapping[str, Any], _Where]]] = {}
    for err in exc.errors():
        where = _locate(err["loc"], root)
        path = where.path
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, FieldError) and error.path:
            sep = "" if not path or error.path.startswith("[") else "."
            path = f"{path}{sep}{error.path}"
        if base:
            path = f"{base}.{path}" if path else base
        grouped.setdefault(path, []).append((err, where))
    out: list[tuple[str, str]] = []
    for path, errs in grouped.items():
        if len(errs) > 1 and all(e["type"] in _EXPECTED for e, _ in errs):
            # The branches of a union: "a flag (true or false) or a number", on one line.
            phrases = (_EXPECTED[e["type"]] for e, _ in errs)
            named = (f"a flag ({p})" if p == "true or false" else p for p in phrases)
            expected = " or ".join(dict.fromkeys(named))
            out.append((path, f"expected {expected}, got {_shown(errs[0][0].get('input'))}"))
            continue
        out.append((path, "; ".join(dict.fromkeys(_reworded(e, w) for e, w in errs))))
    return out


# --- documents ---------------------------------------------------------------------------


def _what(raw: Mapping[Any, Any]) -> str:
    """``Kind/name`` as the document says, ``?`` for what is missing or not a string."""
    kind = raw.get("kind")
    meta = raw.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    kind_s = kind if isinstance(kind, str) and kind else "?"
    name_s = name if isinstance(name, str) and name else "?"
    return "" if kind_s == name_s == "?" else f"{kind_s[:40]}/{name_s[:70]}"


def parse_document(
    raw: object, file: str, index: int
) -> tuple[Resource | HealingPolicy | None, list[SpecIssue]]:
    """Validate one decoded YAML document; never raises for bad input."""
    if not isinstance(raw, Mapping):
        got = type(raw).__name__
        return None, [
            SpecIssue(
                file,
                index,
                "",
                message=f"a document must be a mapping with apiVersion, kind, metadata and spec, not a {got}",
            )
        ]
    what = _what(raw)
    try:
        _check_shape(raw)
    except _Unsafe as exc:
        return None, [SpecIssue(file, index, what, "", str(exc))]
    kind = raw.get("kind")
    known = ", ".join(KINDS)
    if kind is None:
        return None, [SpecIssue(file, index, what, "kind", f"kind is missing: add one of {known}")]
    # isinstance first: a list or a mapping as the kind is unhashable, `in KINDS` would raise.
    if not isinstance(kind, str):
        return None, [
            SpecIssue(
                file, index, what, "kind",
                f"must be a string, one of {known}; got {_shown(kind)}",
            )
        ]  # fmt: skip
    if kind not in KINDS:
        return None, [
            SpecIssue(
                file, index, what, "kind",
                f"unknown kind {_shown(kind)}; known kinds: {known}{_did_you_mean(kind, KINDS)}",
            )
        ]  # fmt: skip
    try:
        return _DOCUMENT.validate_python(raw), []
    except ValidationError as exc:
        return None, [
            SpecIssue(file, index, what, path, message)
            for path, message in describe_errors(exc, Document)
        ]


def load_text(text: str, file: str) -> tuple[list[Loaded], list[SpecIssue]]:
    """Every document of one multi-document YAML text; a broken document costs only itself.

    Documents are parsed one by one (see ``_split_documents``): the valid documents before
    and after a YAML syntax error are kept, and the error names its document's index. A text
    without any document is a warning.
    """
    docs: list[Loaded] = []
    issues: list[SpecIssue] = []
    index = 0
    found = False
    for first_line, piece in _split_documents(text):
        raws, problem = _parse_piece(piece, first_line)
        for raw in raws:
            if raw is not None:  # an empty document (`---` twice) declares nothing
                found = True
                doc, doc_issues = parse_document(raw, file, index)
                issues.extend(doc_issues)
                if doc is not None:
                    docs.append(Loaded(doc, file, index))
            index += 1
        if problem is not None:
            found = True
            issues.append(SpecIssue(file, index, _guess_what(piece), message=problem))
            index += 1
    if not found:
        issues.append(SpecIssue(
            file, None, "", message="no documents: the file is empty or holds only comments",
            severity="warning",
        ))  # fmt: skip
    return docs, issues


def load_paths(paths: Iterable[str | Path]) -> LoadResult:
    """Load and check every document under ``paths``; bad documents never stop good ones.

    Checks across documents: duplicate names per kind and namespace, a runtimeRef to a
    missing Container (errors), and a policy that selects nothing (a warning).
    """
    files, issues = spec_files(paths)
    documents: list[Loaded] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(SpecIssue(str(file), None, "", message=f"cannot read: {exc}"))
            continue
        docs, doc_issues = load_text(text, str(file))
        documents.extend(docs)
        issues.extend(doc_issues)
    return check_documents(documents, issues)


def check_documents(documents: list[Loaded], issues: list[SpecIssue]) -> LoadResult:
    """Cross-document checks; a duplicate is dropped (the first one wins) and reported.

    Documents are told apart by ``key``: kind, namespace and name. Two policies (or two
    Containers) of the same name in different namespaces are both kept.
    """
    seen: dict[str, Loaded] = {}
    kept: list[Loaded] = []
    for loaded in documents:
        key = loaded.doc.key
        if key in seen:
            first = seen[key]
            issues.append(SpecIssue(
                loaded.file, loaded.index, key, "metadata.name",
                f"duplicate name: {key} is already defined in {first.file} document {first.index}; rename one",
            ))  # fmt: skip
            continue
        seen[key] = loaded
        kept.append(loaded)
    resources = [d.doc for d in kept if not isinstance(d.doc, HealingPolicy)]
    for loaded in kept:
        doc = loaded.doc
        if isinstance(doc, PostgresDatabase | RedisCache) and doc.spec.runtime_ref:
            ref = doc.spec.runtime_ref
            ns = doc.metadata.namespace
            target = str(ResourceKey.of(ref.kind, ref.name, ns))
            if target not in seen:
                issues.append(SpecIssue(
                    loaded.file, loaded.index, doc.key, "spec.runtimeRef.name",
                    f"no {ref.kind} named {ref.name!r} is declared; declare it or remove runtimeRef",
                ))  # fmt: skip
        if isinstance(doc, HealingPolicy) and not any(doc.selects(r) for r in resources):
            sel = doc.spec.selector
            issues.append(SpecIssue(
                loaded.file, loaded.index, doc.key, "spec.selector",
                f"selects no resource (kind {sel.kind}, labels {sel.match_labels or '{}'}); check the labels",
                severity="warning",
            ))  # fmt: skip
    return LoadResult(kept, issues)


# --- CRDs --------------------------------------------------------------------------------

_PLURALS = {
    "Container": "containers",
    "PostgresDatabase": "postgresdatabases",
    "RedisCache": "rediscaches",
    "HealingPolicy": "healingpolicies",
}
_SHORT = {
    "Container": ["dmc"],
    "PostgresDatabase": ["dmpg"],
    "RedisCache": ["dmredis"],
    "HealingPolicy": ["hp"],
}


def _structural(node: Any, defs: Mapping[str, Any]) -> Any:
    """Inline ``$ref``s and turn pydantic's JSON schema into a Kubernetes structural schema."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _structural({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    any_of = node.get("anyOf")
    if any_of is not None:
        non_null = [s for s in any_of if s.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(non_null) == 1:
            merged: dict[str, Any] = {**_structural(non_null[0], defs), **_structural(rest, defs)}
            if len(non_null) != len(any_of):
                merged["nullable"] = True
            return merged
        # A flag-or-number (a condition's value) has no structural type: allow any scalar.
        return {**_structural(rest, defs), "x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs", "discriminator"):
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields by default
        out[key] = (
            _structural(value, defs)
            if key not in ("enum", "required", "default", "example")
            else value
        )
    durations = (DURATION_PATTERN, POSITIVE_DURATION_PATTERN)
    if out.get("pattern") in durations and isinstance(out.get("default"), int | float):
        out["default"] = format_duration(out["default"])
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of one kind, from its pydantic model."""
    model = KINDS[kind]
    spec_model = model.model_fields["spec"].annotation
    assert isinstance(spec_model, type) and issubclass(spec_model, BaseModel)
    raw = spec_model.model_json_schema(by_alias=True, mode="validation")
    spec_schema = _structural(raw, raw.get("$defs", {}))
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }


def crd(kind: str) -> dict[str, Any]:
    """A CustomResourceDefinition (apiextensions.k8s.io/v1) for one kind."""
    plural = _PLURALS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": _SHORT[kind],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": crd_schema(kind)},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def crds_yaml() -> dict[str, str]:
    """File name -> YAML text of every CRD, as checked into ``crds/``."""
    return {
        f"{_PLURALS[kind]}.{GROUP}.yaml": yaml.safe_dump(crd(kind), sort_keys=False)
        for kind in KINDS
    }
