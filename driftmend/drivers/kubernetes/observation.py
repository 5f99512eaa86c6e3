"""A Kubernetes workload's observation: signals, facts and stats rows from what the API showed.

Stage: *observe*. Pure: the workload, its pods, their usage (metrics.k8s.io) and recent
Events in; the signals (names and meanings in ``driftmend.signals``) and facts out. The
signals shared with the process and docker runtimes keep their meaning, so the same
policies read them; where Kubernetes already heals (the kubelet restarts a container that
exits), they say "running" for a pod it is restarting, and "not running" only for a replica
that is stuck: a crash loop, an image or config it cannot start, a pod missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driftmend.drivers.kubernetes.views import Pod, Termination, Workload
from driftmend.signals import SignalValue

CRASH_LOOP = frozenset({"CrashLoopBackOff"})
IMAGE_PULL = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_ERROR = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
STUCK = CRASH_LOOP | IMAGE_PULL | CONFIG_ERROR

# A running pod that is not Ready for less than this is still starting (or briefly failing a
# probe): "not yet known", not unhealthy, so one slow readiness check is not a drift.
UNREADY_GRACE = 30.0
# A termination older than this is history, not news: an OOM kill of last week says nothing.
RECENT_EXIT = 600.0
# Events shown in the facts (the newest), and how long each message may be.
EVENTS_SHOWN = 6
EVENT_CHARS = 200


@dataclass(frozen=True)
class EventLine:
    """One Event of the workload or its pods, as ``kubectl describe`` lists them."""

    at: float
    type: str  # Normal or Warning
    reason: str
    object: str  # Pod/web-5d9c-abcde
    message: str
    count: int = 1


Usage = Mapping[str, Mapping[str, tuple[float, int]]]
"""Per pod, per container: (cores, bytes) from metrics.k8s.io."""


@dataclass(frozen=True)
class Snapshot:
    """What the runtime read of one Container now.

    ``workload`` is None when it is not there (``missing`` says why); ``usage`` is None
    when metrics.k8s.io did not answer (``metrics_error`` says how).
    """

    workload: Workload | None
    pods: tuple[Pod, ...] = ()
    usage: Usage | None = None
    events: tuple[EventLine, ...] = ()
    missing: str | None = None
    metrics_error: str | None = None
    container: str | None = None  # the template container the spec names (None: the first)


def stuck(pod: Pod) -> str | None:
    """The reason a pod cannot serve and the kubelet will not fix alone, or None."""
    if pod.phase in ("Failed", "Succeeded"):
        return f"phase {pod.phase}"
    waiting = pod.waiting
    if waiting is not None and waiting[0] in STUCK:
        return waiting[0]
    return None


def desired(workload: Workload) -> int:
    """Replicas wanted: the workload's own, or what it had before ``container_stop``."""
    stopped = workload.stopped_replicas
    return stopped if stopped is not None else workload.replicas


def latest_exit(pods: Sequence[Pod], now: float) -> Termination | None:
    """The newest termination of any container of the pods: the current state of one that
    is terminated, else how its previous run ended, within ``RECENT_EXIT``."""
    found: list[Termination] = []
    for pod in pods:
        for c in pod.containers:
            for t in (c.terminated, c.last):
                if t is not None and (t.finished_at is None or now - t.finished_at <= RECENT_EXIT):
                    found.append(t)
    return max(found, key=lambda t: t.finished_at or 0.0, default=None)


def _unready_for(pods: Sequence[Pod], now: float) -> list[float]:
    """How long each running pod that is not Ready has been so."""
    return [now - (p.ready_since or p.created_at or now) for p in pods if p.running and not p.ready]


def _health(pods: Sequence[Pod], now: float, grace: float) -> bool | None:
    unready = _unready_for(pods, now)
    if not unready:
        return True
    if max(unready) >= grace:
        return False
    return None


def health_known_in(
    snap: Snapshot, now: float, unready_grace: float = UNREADY_GRACE
) -> float | None:
    """Seconds until ``container.healthy`` stops being unknown with nothing else changing
    (a pod's grace runs out), or None when it is known now.

    Nothing in the API changes when a grace ends, so no watch event would bring the pass
    that sees it: the runtime asks for one at this time.
    """
    unready = _unready_for(snap.pods, now)
    if not unready or max(unready) >= unready_grace:
        return None
    return unready_grace - max(unready)


def _ratios(
    snap: Snapshot, w: Workload, usage: Usage
) -> tuple[SignalValue | None, SignalValue | None]:
    cpu: list[float] = []
    memory: list[float] = []
    for per_container in usage.values():
        for name, (cores, size) in per_container.items():
            template = w.container(name)
            if template is None:
                continue
            if template.cpu_limit:
                cpu.append(cores / template.cpu_limit)
            if template.memory_limit:
                memory.append(size / template.memory_limit)
    limited_cpu = any(c.cpu_limit for c in w.containers)
    limited_memory = any(c.memory_limit for c in w.containers)
    return (
        round(max(cpu, default=0.0), 4) if limited_cpu else None,
        round(max(memory, default=0.0), 4) if limited_memory else None,
    )


def signals_of(
    snap: Snapshot, now: float, unready_grace: float = UNREADY_GRACE
) -> dict[str, SignalValue]:
    """The signals of the workload now (see the module's docstring for "running"); a pod
    unready for less than ``unready_grace`` leaves ``container.healthy`` unknown."""
    w = snap.workload
    if w is None:
        return {
            "container.running": False,
            "container.replicas_running": 0,
            "container.replicas_ready": 0,
            "container.metrics_available": snap.usage is not None,
        }
    want = desired(w)
    pods = snap.pods
    serving = [p for p in pods if stuck(p) is None]
    waiting = {c.waiting for p in pods for c in p.containers if c.waiting}
    last = latest_exit(pods, now)
    signals: dict[str, SignalValue] = {
        "container.running": w.stopped_replicas is None and len(serving) >= want,
        "container.replicas_running": sum(1 for p in pods if p.running),
        "container.replicas_desired": want,
        "container.replicas_ready": sum(1 for p in pods if p.ready),
        "container.replicas_available": w.available,
        "container.replicas_updated": w.updated,
        "container.restarts": sum(p.restarts for p in pods),
        "container.exit_code": last.exit_code if last is not None else None,
        "container.oom_killed": last is not None and last.reason == "OOMKilled",
        "container.healthy": _health(pods, now, unready_grace),
        "container.crash_looping": bool(waiting & CRASH_LOOP),
        "container.image_pull_failing": bool(waiting & IMAGE_PULL),
        "container.config_error": bool(waiting & CONFIG_ERROR),
        "container.rollout_stalled": w.stalled,
        "container.metrics_available": snap.usage is not None,
    }
    if snap.usage is not None:
        signals["container.cpu_percent"] = round(
            sum(c for per in snap.usage.values() for c, _ in per.values()) * 100.0, 2
        )
        signals["container.memory_bytes"] = sum(
            m for per in snap.usage.values() for _, m in per.values()
        )
        cpu_ratio, memory_ratio = _ratios(snap, w, snap.usage)
        if cpu_ratio is not None:
            signals["container.cpu_used_ratio"] = cpu_ratio
        if memory_ratio is not None:
            signals["container.memory_used_ratio"] = memory_ratio
    return signals


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def facts_of(snap: Snapshot, now: float) -> dict[str, str]:
    """The facts: the workload, its pods, why any is stuck, the latest exit, the rollout's
    state, the newest Events (Warnings first) and whether metrics answered."""
    facts: dict[str, str] = {}
    if snap.usage is None:
        facts["metrics"] = (
            f"metrics.k8s.io did not answer ({snap.metrics_error or 'no metrics-server'}): "
            "CPU and memory are unknown"
        )
    w = snap.workload
    if w is None:
        facts["missing"] = snap.missing or "the workload is not there"
        return facts
    facts["workload"] = w.ref
    facts["pods"] = ",".join(p.name for p in snap.pods)
    if w.revision:
        facts["revision"] = w.revision
    stuck_pods = [(p, stuck(p)) for p in snap.pods if stuck(p) is not None]
    if stuck_pods:
        pod, why = stuck_pods[0]
        message = pod.waiting[1] if pod.waiting else ""
        facts["waiting_reason"] = str(why)
        facts["stuck"] = f"{len(stuck_pods)} pod(s), e.g. {pod.name}: {why}" + (
            f" ({message[:EVENT_CHARS]})" if message else ""
        )
    last = latest_exit(snap.pods, now)
    if last is not None:
        facts["last_exit_reason"] = f"{last.reason} (exit code {last.exit_code})"
        if last.finished_at is not None:
            facts["last_exit_at"] = _iso(last.finished_at)
    if w.progressing is not None and w.progressing[0] != "True":
        facts["rollout"] = f"{w.progressing[1]}: {w.progressing[2]}"[:EVENT_CHARS]
    if w.generation > w.observed_generation:
        facts["rollout_pending"] = (
            f"generation {w.generation} not yet observed by the {w.kind} controller"
        )
    if w.stopped_replicas is not None:
        facts["stopped"] = f"scaled to 0 by container_stop (from {w.stopped_replicas})"
    events = sorted(snap.events, key=lambda e: (e.type != "Warning", -e.at))[:EVENTS_SHOWN]
    if events:
        facts["events"] = " | ".join(
            f"{e.type} {e.reason} {e.object}: {e.message[:EVENT_CHARS]}"
            + (f" (x{e.count})" if e.count > 1 else "")
            for e in events
        )
    return facts


def stats_rows(snap: Snapshot, now: float) -> list[dict[str, Any]]:
    """``stats``: per pod, its phase, readiness, node, restarts, containers' states and,
    when metrics answered, CPU (percent of one core) and memory."""
    rows: list[dict[str, Any]] = []
    for pod in snap.pods:
        row: dict[str, Any] = {
            "pod": pod.name,
            "phase": pod.phase,
            "running": pod.running,
            "ready": pod.ready,
            "node": pod.node,
            "restarts": pod.restarts,
            "age_seconds": round(now - pod.created_at, 1) if pod.created_at else None,
            "containers": [
                {
                    "name": c.name,
                    "state": "running" if c.running else (c.waiting or "terminated"),
                    "restarts": c.restarts,
                    "last_exit": (
                        {"reason": c.last.reason, "code": c.last.exit_code} if c.last else None
                    ),
                }
                for c in pod.containers
            ],
        }
        usage = (snap.usage or {}).get(pod.name)
        if usage is not None:
            row["cpu_percent"] = round(sum(c for c, _ in usage.values()) * 100.0, 2)
            row["memory_bytes"] = sum(m for _, m in usage.values())
        rows.append(row)
    return rows
