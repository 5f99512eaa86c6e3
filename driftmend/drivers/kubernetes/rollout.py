"""What the kubernetes runtime writes: the patches of a restart, a scale, new limits, a rollback.

Stage: *act*. Pure: the workload's view and the objects read in, the patch bodies (and the
refusals) out. Each write is the one ``kubectl`` makes for the same verb, so the workload's
own controller does the rest (a new ReplicaSet, one surge at a time) and a human reading the
workload afterwards sees what they would have done themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from driftmend.drivers.kubernetes.observation import stuck
from driftmend.drivers.kubernetes.quantities import cpu_quantity, memory_quantity
from driftmend.drivers.kubernetes.views import (
    RESTARTED_AT,
    REVISION,
    STOPPED_REPLICAS,
    Obj,
    Pod,
    TemplateContainer,
)
from driftmend.errors import RefusedError
from driftmend.spec import Container

MIN_CPU = 0.1  # cores: lower than this a pod barely runs
MIN_MEMORY = 16 * 1024 * 1024  # bytes: below this most runtimes cannot even start a container
MEMORY_HEADROOM = 1.25  # memory is lowered no further than what a pod uses now, times this
TEMPLATE_HASH = "pod-template-hash"  # the label a Deployment adds to its ReplicaSets' pods


def restart_patch(at: str) -> dict[str, Any]:
    """``kubectl rollout restart``: a new ``restartedAt`` annotation on the pod template."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}


def one_bad_pod(pods: Sequence[Pod], want: int, now: float, grace: float) -> Pod | None:
    """The one pod to delete instead of restarting them all, or None.

    Only when the workload runs several replicas, exactly one of them is bad (stuck, or
    running and unready for ``grace``) and every other one is running and ready: deleting it
    lets its controller make a fresh one while the others serve. Otherwise a rollout restart.
    """
    if want < 2:
        return None
    bad = [
        p
        for p in pods
        if stuck(p) is not None
        or (p.running and not p.ready and now - (p.ready_since or now) >= grace)
    ]
    good = [p for p in pods if p.running and p.ready]
    if len(bad) == 1 and len(good) == len(pods) - 1:
        return bad[0]
    return None


def replica_pod(pods: Sequence[Pod], index: int) -> Pod | None:
    """Replica ``index``: the StatefulSet's pod with that ordinal, else the ``index``-th pod
    by name (a Deployment's pods have no stable number)."""
    for pod in pods:
        if pod.name.rsplit("-", 1)[-1] == str(index):
            return pod
    return pods[index] if 0 <= index < len(pods) else None


def scale_patch(replicas: int, *, stopped_from: int | None = None) -> dict[str, Any]:
    """The workload's merge patch: replicas, and the annotation ``container_stop`` keeps
    (null removes it: a scale or a start ends a stop)."""
    return {
        "metadata": {
            "annotations": {STOPPED_REPLICAS: str(stopped_from) if stopped_from else None}
        },
        "spec": {"replicas": replicas},
    }


def check_limits(
    container: Container,
    current: TemplateContainer,
    cpu: float | None,
    memory: int | None,
    memory_used: int | None,
) -> None:
    """``RefusedError`` unless the new limits are within the caps and above the floors.

    Raising is relative to the template's limit now: above it needs ``limits.cpuCap`` /
    ``limits.memoryCap`` and stays within them. Lowering stops at ``MIN_CPU``, and for
    memory at what a pod uses now (when metrics answered) times ``MEMORY_HEADROOM``.
    """
    caps = container.spec.limits
    if cpu is not None:
        if cpu < MIN_CPU:
            raise RefusedError(f"cpu {cpu:g} is below the floor of {MIN_CPU:g} cores")
        if current.cpu_limit is None or cpu > current.cpu_limit:
            if caps.cpu_cap is None:
                raise RefusedError(
                    f"raising the cpu limit of {container.key} needs limits.cpuCap in its spec"
                )
            if cpu > caps.cpu_cap:
                raise RefusedError(f"cpu {cpu:g} is above limits.cpuCap ({caps.cpu_cap:g})")
    if memory is not None:
        floor = max(MIN_MEMORY, int((memory_used or 0) * MEMORY_HEADROOM))
        if memory < floor:
            raise RefusedError(
                f"memory {memory_quantity(memory)} is below the floor of {memory_quantity(floor)}"
                " (16Mi, or what the pods use now plus 25 %)"
            )
        if current.memory_limit is None or memory > current.memory_limit:
            if caps.memory_cap is None:
                raise RefusedError(
                    f"raising the memory limit of {container.key} needs limits.memoryCap in its "
                    "spec"
                )
            if memory > caps.memory_cap:
                raise RefusedError(
                    f"memory {memory_quantity(memory)} is above limits.memoryCap "
                    f"({memory_quantity(caps.memory_cap)})"
                )


def limits_patch(
    current: TemplateContainer, cpu: float | None, memory: int | None
) -> dict[str, Any]:
    """A strategic merge patch of one template container's resources (merged by name).

    A request above its new limit is lowered to it: the API refuses a request over a limit.
    """
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if cpu is not None:
        limits["cpu"] = cpu_quantity(cpu)
        if current.cpu_request is not None and current.cpu_request > cpu:
            requests["cpu"] = limits["cpu"]
    if memory is not None:
        limits["memory"] = memory_quantity(memory)
        if current.memory_request is not None and current.memory_request > memory:
            requests["memory"] = limits["memory"]
    resources: dict[str, Any] = {"limits": limits}
    if requests:
        resources["requests"] = requests
    return {
        "spec": {
            "template": {"spec": {"containers": [{"name": current.name, "resources": resources}]}}
        }
    }


def _owned_by(obj: Obj, uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def _revision(obj: Obj) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "")
    return int(value) if str(value).isdigit() else 0


def deployment_rollback(
    deployment: Obj, replicasets: Sequence[Obj]
) -> tuple[int, int, dict[str, Any]]:
    """``kubectl rollout undo`` of a Deployment: (from revision, to revision, its template).

    The target is the newest ReplicaSet of this Deployment older than the current revision;
    its template, without the ``pod-template-hash`` label the controller added, becomes the
    Deployment's again. ``RefusedError`` when there is no earlier revision.
    """
    meta = deployment.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    current = _revision(deployment)
    owned = sorted((rs for rs in replicasets if _owned_by(rs, uid)), key=_revision, reverse=True)
    older = [rs for rs in owned if 0 < _revision(rs) < current]
    if not older:
        raise RefusedError(
            f"Deployment {meta.get('namespace')}/{meta.get('name')} has no revision before "
            f"{current} to roll back to"
        )
    target = older[0]
    template = copy.deepcopy((target.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(TEMPLATE_HASH, None)
    return current, _revision(target), template


def statefulset_rollback(
    statefulset: Obj, revisions: Sequence[Obj]
) -> tuple[int, int, dict[str, Any]]:
    """A StatefulSet's rollback: (from, to, the patch of its template).

    Its ControllerRevisions hold each template as a patch (``data``); the newest revision
    older than the one the StatefulSet is on now is applied again.
    """
    meta = statefulset.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    status = statefulset.get("status") or {}
    on = status.get("updateRevision") or status.get("currentRevision")
    owned = [r for r in revisions if _owned_by(r, uid)]
    by_name = {(r.get("metadata") or {}).get("name"): int(r.get("revision") or 0) for r in owned}
    current = by_name.get(on, max(by_name.values(), default=0))
    older = sorted(
        (r for r in owned if int(r.get("revision") or 0) < current),
        key=lambda r: int(r.get("revision") or 0),
        reverse=True,
    )
    if not older:
        raise RefusedError(
            f"StatefulSet {meta.get('namespace')}/{meta.get('name')} has no revision before "
            f"{current} to roll back to"
        )
    target = older[0]
    data = target.get("data")
    if not isinstance(data, Mapping):
        raise RefusedError(
            f"ControllerRevision {(target.get('metadata') or {}).get('name')} holds no template"
        )
    return current, int(target.get("revision") or 0), dict(data)
