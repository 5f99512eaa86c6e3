"""What the kubernetes runtime reads of a workload and its pods, as plain values.

Stage: *observe*. Pure: the API's JSON objects (Deployments, StatefulSets, Pods, as the
client's ``to_dict()`` or ``kubectl get -o json`` gives them) in, small frozen views out,
so the signal arithmetic in ``observation.py`` never walks optional nested dicts itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftmend.drivers.kubernetes.quantities import parse_quantity

# The annotation ``kubectl rollout restart`` sets on the pod template: a new value is a new
# template, so the workload's controller replaces every pod, one surge at a time.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Where ``container_stop`` keeps the replica count it scaled down from, for ``container_start``.
STOPPED_REPLICAS = "driftmend.dev/stopped-replicas"
# The revision number the Deployment controller writes on a Deployment and its ReplicaSets.
REVISION = "deployment.kubernetes.io/revision"

Obj = Mapping[str, Any]


def _get(obj: Obj, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, or None where a level is missing or null."""
    here: Any = obj
    for key in path:
        if not isinstance(here, Mapping):
            return None
        here = here.get(key)
    return here


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 time of the API (``2026-12-05T10:00:00Z``) as Unix seconds."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector`` (matchLabels and matchExpressions) against ``labels``.

    An empty or missing selector matches nothing, as a workload's selector must not be empty.
    """
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


@dataclass(frozen=True)
class TemplateContainer:
    """One container of the pod template: its name, image and resources."""

    name: str
    image: str
    cpu_limit: float | None
    memory_limit: int | None
    cpu_request: float | None
    memory_request: int | None


def _quantity(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_quantity(value)
    except ValueError:
        return None


def _template_container(c: Obj) -> TemplateContainer:
    limits = _get(c, "resources", "limits") or {}
    requests = _get(c, "resources", "requests") or {}
    memory_limit = _quantity(limits.get("memory"))
    memory_request = _quantity(requests.get("memory"))
    return TemplateContainer(
        name=str(c.get("name", "")),
        image=str(c.get("image", "")),
        cpu_limit=_quantity(limits.get("cpu")),
        memory_limit=int(memory_limit) if memory_limit is not None else None,
        cpu_request=_quantity(requests.get("cpu")),
        memory_request=int(memory_request) if memory_request is not None else None,
    )


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet: what it asks for, what its controller reports."""

    kind: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    selector: Obj
    replicas: int
    ready: int
    available: int
    updated: int
    generation: int
    observed_generation: int
    containers: tuple[TemplateContainer, ...]
    progressing: tuple[str, str, str] | None  # (status, reason, message) of Progressing
    revision: str | None

    @classmethod
    def of(cls, kind: str, obj: Obj) -> Workload:
        """The view of one Deployment or StatefulSet object."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        progressing = next(
            (
                (str(c.get("status")), str(c.get("reason") or ""), str(c.get("message") or ""))
                for c in status.get("conditions") or []
                if c.get("type") == "Progressing"
            ),
            None,
        )
        annotations = meta.get("annotations") or {}
        return cls(
            kind=kind,
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            labels=meta.get("labels") or {},
            annotations=annotations,
            selector=spec.get("selector") or {},
            replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
            ready=int(status.get("readyReplicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            generation=int(meta.get("generation") or 0),
            observed_generation=int(status.get("observedGeneration") or 0),
            containers=tuple(
                _template_container(c) for c in _get(spec, "template", "spec", "containers") or []
            ),
            progressing=progressing,
            revision=annotations.get(REVISION) or status.get("currentRevision"),
        )

    @property
    def ref(self) -> str:
        """``Deployment shop/web``, for messages."""
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def stopped_replicas(self) -> int | None:
        """The replica count ``container_stop`` scaled down from, while it holds."""
        value = self.annotations.get(STOPPED_REPLICAS)
        return int(value) if value is not None and value.isdigit() else None

    @property
    def stalled(self) -> bool:
        """The rollout passed its progress deadline (Deployments only)."""
        return self.progressing is not None and self.progressing[1] == "ProgressDeadlineExceeded"

    def container(self, name: str | None) -> TemplateContainer | None:
        """The template's container called ``name``, or its first when ``name`` is None."""
        if name is None:
            return self.containers[0] if self.containers else None
        return next((c for c in self.containers if c.name == name), None)


@dataclass(frozen=True)
class Termination:
    """How a container's run ended."""

    reason: str
    exit_code: int
    finished_at: float | None


@dataclass(frozen=True)
class ContainerStatus:
    """One container of a pod, as its kubelet reported it."""

    name: str
    running: bool
    ready: bool
    restarts: int
    started_at: float | None
    waiting: str | None  # the waiting reason: CrashLoopBackOff, ImagePullBackOff, ...
    waiting_message: str
    terminated: Termination | None  # the current state, when it is terminated
    last: Termination | None  # lastState.terminated: how the previous run ended


def _termination(obj: Obj | None) -> Termination | None:
    if not obj:
        return None
    return Termination(
        reason=str(obj.get("reason") or ("Completed" if obj.get("exitCode") == 0 else "Error")),
        exit_code=int(obj.get("exitCode") or 0),
        finished_at=parse_time(obj.get("finishedAt")),
    )


def _container_status(c: Obj) -> ContainerStatus:
    state = c.get("state") or {}
    waiting = state.get("waiting")
    return ContainerStatus(
        name=str(c.get("name", "")),
        running=state.get("running") is not None,
        ready=bool(c.get("ready")),
        restarts=int(c.get("restartCount") or 0),
        started_at=parse_time(_get(state, "running", "startedAt")),
        waiting=str(waiting.get("reason") or "Waiting") if waiting is not None else None,
        waiting_message=str(waiting.get("message") or "") if waiting is not None else "",
        terminated=_termination(state.get("terminated")),
        last=_termination(_get(c, "lastState", "terminated")),
    )


@dataclass(frozen=True)
class Pod:
    """One pod of the workload: phase, readiness, its containers' states."""

    name: str
    labels: Mapping[str, str]
    phase: str
    deleting: bool
    created_at: float | None
    ready: bool
    ready_since: float | None  # when the Ready condition last changed
    node: str | None
    containers: tuple[ContainerStatus, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, obj: Obj) -> Pod:
        """The view of one Pod object."""
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        return cls(
            name=str(meta.get("name", "")),
            labels=meta.get("labels") or {},
            phase=str(status.get("phase") or "Pending"),
            deleting=meta.get("deletionTimestamp") is not None,
            created_at=parse_time(meta.get("creationTimestamp")),
            ready=bool(ready and ready.get("status") == "True"),
            ready_since=parse_time(ready.get("lastTransitionTime")) if ready else None,
            node=_get(obj, "spec", "nodeName"),
            containers=tuple(_container_status(c) for c in status.get("containerStatuses") or []),
        )

    @property
    def running(self) -> bool:
        """Running, and every container of it too."""
        return (
            self.phase == "Running"
            and bool(self.containers)
            and all(c.running for c in self.containers)
        )

    @property
    def restarts(self) -> int:
        """Restarts the kubelet made, summed over the pod's containers."""
        return sum(c.restarts for c in self.containers)

    @property
    def waiting(self) -> tuple[str, str] | None:
        """The first (reason, message) of a container that waits, or None."""
        return next(((c.waiting, c.waiting_message) for c in self.containers if c.waiting), None)


def pods_of(workload: Workload, pods: Sequence[Obj]) -> list[Pod]:
    """The pods the workload's selector picks, not being deleted, by name."""
    out = [
        Pod.of(p)
        for p in pods
        if matches(workload.selector, (p.get("metadata") or {}).get("labels") or {})
    ]
    return sorted((p for p in out if not p.deleting), key=lambda p: p.name)
