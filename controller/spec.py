"""Specs: the pydantic models of every kind, YAML loading, and CRD generation.

Stage: *spec sources* in DESIGN.md. One model per kind is the single source of truth: it
validates local files, types the kopf handlers, and generates the CRDs in ``crds/``. Loading
never raises for bad input: every problem becomes a ``SpecIssue`` naming the file, the
document (index and kind/name), the field path and the fix.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

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

from controller.quantities import (
    BYTES_PATTERN,
    DURATION_PATTERN,
    format_duration,
    parse_bytes,
    parse_duration,
)
from controller.signals import SIGNALS, signals_for

GROUP = "driftmend.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "example": "30s"}),
]
ByteSize = Annotated[
    int,
    BeforeValidator(parse_bytes),
    WithJsonSchema({"type": "string", "pattern": BYTES_PATTERN, "example": "512Mi"}),
]
DNS_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class Model(BaseModel):
    """Base of every spec model: camelCase in YAML, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Metadata(Model):
    """Kubernetes-style metadata: a DNS-safe name, a namespace and labels."""

    name: str = Field(pattern=DNS_NAME, description="DNS-1123 name, unique per kind")
    namespace: str = Field(default="default", pattern=DNS_NAME)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SecretRef(Model):
    """Where a secret comes from: an environment variable of the controller, never the file."""

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable name")


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
    interval: Duration = 2.0
    timeout: Duration = 1.0
    failure_threshold: int = Field(default=3, ge=1)
    initial_delay: Duration = 0.0


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
            raise ValueError(f"cpuCap ({self.cpu_cap:g}) is below cpu ({self.cpu:g}): raise cpuCap")
        if (
            self.memory_cap is not None
            and self.memory is not None
            and self.memory_cap < self.memory
        ):
            raise ValueError(
                f"memoryCap ({self.memory_cap} bytes) is below memory ({self.memory} bytes): "
                "raise memoryCap"
            )
        return self


class ComposeService(Model):
    """A Docker Compose service: its containers carry these labels."""

    service: str = Field(min_length=1, description="com.docker.compose.service")
    project: str | None = Field(
        default=None,
        min_length=1,
        description="com.docker.compose.project; omit to match the service in any project",
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
    ``driftmend-<namespace>-<name>-<i>``), ``containerName`` (one existing container, watched
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
                raise ValueError(
                    f"{', '.join(extra)} {verb} only with image (driftmend creates the "
                    f"container); {given[0]} names containers made elsewhere: remove "
                    f"{'it' if len(extra) == 1 else 'them'}"
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
                raise ValueError(
                    "docker is set but runtime is process (the default): add `runtime: docker`, "
                    "or remove docker"
                )
            if self.process is None:
                raise ValueError(
                    "process is required when runtime is process: add `process: {command: [...]}`"
                    ", or set `runtime: docker` with a docker block"
                )
        else:
            if self.process is not None:
                raise ValueError(
                    "process is set but runtime is docker: remove process, or set "
                    "`runtime: process`"
                )
            if self.docker is None:
                raise ValueError(
                    "docker is required when runtime is docker: add `docker: {image: ...}` "
                    "(or containerName, or compose: {project, service})"
                )
            if self.docker.container_name is not None and self.replicas > 1:
                raise ValueError(
                    "docker.containerName watches one container: set replicas to 1, or use "
                    "image or compose to run several"
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
            raise ValueError(
                f"replicas ({self.replicas}) is above maxReplicas ({self.max_replicas})"
            )
        if self.replicas > 1 and self.port is not None and self.port_env is None:
            raise ValueError(
                "replicas above 1 with a port need portEnv, so each replica gets its own port"
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
            known = ", ".join(sorted(SIGNALS))
            raise ValueError(f"unknown signal {name!r}; known signals: {known}")
        return name

    @model_validator(mode="after")
    def _value_fits_signal(self) -> Condition:
        info = SIGNALS[self.signal]
        if info.type == "bool" and not isinstance(self.value, bool):
            raise ValueError(f"{self.signal} is a flag: compare it with true or false")
        if info.type != "bool" and isinstance(self.value, bool):
            raise ValueError(
                f"{self.signal} is a number: compare it with a number, not {self.value}"
            )
        if info.type == "bool" and self.operator not in ("==", "!="):
            raise ValueError(f"{self.signal} is a flag: use == or !=, not {self.operator}")
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

    timeout: Duration = 30.0
    interval: Duration = 0.5


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
            raise ValueError("rules: a policy needs at least one rule, or an escalate block")
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
                raise ValueError(f"rules[{i}].name: duplicate rule name {rule.name!r}")
            names.add(rule.name)
            for j, cond in enumerate(rule.when):
                if cond.signal not in allowed:
                    raise ValueError(
                        f"rules[{i}].when[{j}].signal: {cond.signal} is not a signal of {kind}; "
                        f"use one of {', '.join(sorted(allowed))}"
                    )
        return self


# --- documents ---------------------------------------------------------------------------


class _Resource(Model):
    api_version: Literal["driftmend.dev/v1alpha1"] = Field(alias="apiVersion")
    metadata: Metadata

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def key(self) -> str:
        """``Kind/name`` (``Kind/namespace/name`` outside the default namespace)."""
        kind: str = getattr(self, "kind")  # noqa: B009 - set by every subclass
        ns = self.metadata.namespace
        return f"{kind}/{self.name}" if ns == "default" else f"{kind}/{ns}/{self.name}"

    @property
    def labels(self) -> dict[str, str]:
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
    """A healing policy: selector, ladder of rules, escalation."""

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
        return f"{prefix}{where}{field}: {self.message}"


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
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[SpecIssue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def resources(self) -> list[Resource]:
        return [d.doc for d in self.documents if not isinstance(d.doc, HealingPolicy)]

    @property
    def policies(self) -> list[HealingPolicy]:
        return [d.doc for d in self.documents if isinstance(d.doc, HealingPolicy)]


def spec_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[SpecIssue]]:
    """The YAML files under ``paths`` (files as given, directories searched, sorted)."""
    files: list[Path] = []
    issues: list[SpecIssue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            )
        elif path.is_file():
            files.append(path)
        else:
            issues.append(SpecIssue(str(path), None, "", message="no such file or directory"))
    return files, issues


def _field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in KINDS:  # the discriminator's branch name adds nothing for the reader
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _what(raw: Mapping[str, Any]) -> str:
    kind = raw.get("kind", "?")
    meta = raw.get("metadata")
    name = meta.get("name", "?") if isinstance(meta, Mapping) else "?"
    return f"{kind}/{name}"


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field: remove it or check its spelling (fields are camelCase)"
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "literal_error" and err["loc"] and err["loc"][-1] == "apiVersion":
        return f"apiVersion must be {API_VERSION}"
    return msg


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
    kind = raw.get("kind")
    if kind not in KINDS:
        known = ", ".join(KINDS)
        return None, [
            SpecIssue(file, index, what, "kind", f"unknown kind {kind!r}; known kinds: {known}")
        ]
    try:
        return _DOCUMENT.validate_python(raw), []
    except ValidationError as exc:
        return None, [
            SpecIssue(file, index, what, _field_path(e["loc"]), _message(e)) for e in exc.errors()
        ]


def load_text(text: str, file: str) -> tuple[list[Loaded], list[SpecIssue]]:
    """Every document of one multi-document YAML text."""
    docs: list[Loaded] = []
    issues: list[SpecIssue] = []
    try:
        raws = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [SpecIssue(file, None, "", message=f"YAML syntax error at {where}{problem}")]
    for index, raw in enumerate(raws):
        if raw is None:
            continue
        doc, doc_issues = parse_document(raw, file, index)
        issues.extend(doc_issues)
        if doc is not None:
            docs.append(Loaded(doc, file, index))
    return docs, issues


def load_paths(paths: Iterable[str | Path]) -> LoadResult:
    """Load and check every document under ``paths``; bad documents never stop good ones.

    Checks across documents: duplicate names per kind, a runtimeRef to a missing Container
    (errors), and a policy that selects nothing (a warning).
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
    """Cross-document checks; a duplicate is dropped (the first one wins) and reported."""
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
            target = f"{ref.kind}/{ref.name}" if ns == "default" else f"{ref.kind}/{ns}/{ref.name}"
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
    if out.get("pattern") == DURATION_PATTERN and isinstance(out.get("default"), int | float):
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
