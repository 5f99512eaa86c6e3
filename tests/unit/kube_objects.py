"""API objects (Deployments, Pods, ReplicaSets) as the API server writes them, for the pure
parts of the kubernetes runtime: only the fields it reads, with the API's own spelling."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = 1_800_000_000.0


def stamp(at: float) -> str:
    """Unix seconds as the API writes a time."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(
    name: str = "web",
    *,
    replicas: int = 2,
    ready: int = 2,
    available: int | None = None,
    updated: int | None = None,
    limits: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
    progressing: tuple[str, str] | None = ("True", "NewReplicaSetAvailable"),
    annotations: dict[str, str] | None = None,
    revision: int = 1,
    uid: str = "dep-uid",
) -> dict[str, Any]:
    """A Deployment selecting ``app=<name>`` with one container ``app``."""
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    status: dict[str, Any] = {
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready if available is None else available,
        "updatedReplicas": replicas if updated is None else updated,
        "observedGeneration": 3,
    }
    if progressing is not None:
        status["conditions"] = [
            {
                "type": "Progressing",
                "status": progressing[0],
                "reason": progressing[1],
                "message": f"rollout: {progressing[1]}",
            },
        ]
    return {
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": uid,
            "generation": 3,
            "labels": {"app": name},
            "annotations": {
                "deployment.kubernetes.io/revision": str(revision),
                **(annotations or {}),
            },
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": "shop:1", "resources": resources}]
                },
            },
        },
        "status": status,
    }


def pod(
    name: str,
    *,
    app: str = "web",
    phase: str = "Running",
    ready: bool = True,
    ready_since: float = NOW - 600,
    restarts: int = 0,
    waiting: str | None = None,
    last: tuple[str, int, float] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod of ``app`` with one container ``app``: running, or waiting with ``waiting``."""
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting, "message": f"{waiting} for a while"}}
        if waiting
        else {"running": {"startedAt": stamp(NOW - 900)}}
    )
    container: dict[str, Any] = {
        "name": "app",
        "ready": ready and waiting is None,
        "restartCount": restarts,
        "state": state,
    }
    if last is not None:
        container["lastState"] = {
            "terminated": {"reason": last[0], "exitCode": last[1], "finishedAt": stamp(last[2])}
        }
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "shop",
        "labels": {"app": app},
        "creationTimestamp": stamp(NOW - 1000),
    }
    if deleting:
        meta["deletionTimestamp"] = stamp(NOW)
    return {
        "metadata": meta,
        "spec": {"nodeName": "node-0"},
        "status": {
            "phase": phase,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready and waiting is None else "False",
                    "lastTransitionTime": stamp(ready_since),
                },
            ],
            "containerStatuses": [container],
        },
    }


def replicaset(name: str, revision: int, image: str, owner: str = "dep-uid") -> dict[str, Any]:
    """A ReplicaSet of the Deployment ``owner`` at ``revision``, its template on ``image``."""
    return {
        "metadata": {
            "name": name,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"uid": owner, "controller": True, "kind": "Deployment"}],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": name[-5:]}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }
        },
    }
