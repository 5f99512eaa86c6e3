"""The signal catalogue: every named number or flag a driver can put in an observation.

Policies name signals in their ``when`` conditions; validation rejects a name that is not
here, and ``diff`` reads them from observations. Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SignalType = Literal["bool", "int", "float"]
SignalValue = bool | int | float | None


@dataclass(frozen=True)
class SignalInfo:
    """What one signal means, for validation, docs and the LLM prompt."""

    name: str
    type: SignalType
    kinds: tuple[str, ...]
    description: str
    unit: str = ""


_ALL = ("Container", "PostgresDatabase", "RedisCache")

SIGNALS: dict[str, SignalInfo] = {
    s.name: s
    for s in (
        SignalInfo("container.running", "bool", ("Container",),
                   "every desired replica has a live process"),
        SignalInfo("container.replicas_running", "int", ("Container",),
                   "replicas with a live process"),
        SignalInfo("container.replicas_desired", "int", ("Container",),
                   "replicas the spec asks for"),
        SignalInfo("container.restarts", "int", ("Container",),
                   "restarts made by the controller since the process was created"),
        SignalInfo("container.exit_code", "int", ("Container",),
                   "exit code of the last replica that exited (absent while all run)"),
        SignalInfo("container.oom_killed", "bool", ("Container",),
                   "the last exit was a kill by the out-of-memory killer"),
        SignalInfo("container.healthy", "bool", ("Container",),
                   "the health probe passes on every replica (true when no probe is declared)"),
        SignalInfo("container.health_failures", "int", ("Container",),
                   "consecutive failed health probes, worst replica"),
        SignalInfo("container.cpu_percent", "float", ("Container",),
                   "CPU used by all replicas, percent of one core", "%"),
        SignalInfo("container.cpu_used_ratio", "float", ("Container",),
                   "CPU used per replica divided by its CPU limit (worst replica)"),
        SignalInfo("container.memory_bytes", "int", ("Container",),
                   "resident memory of all replicas", "bytes"),
        SignalInfo("container.memory_used_ratio", "float", ("Container",),
                   "resident memory per replica divided by its memory limit (worst replica)"),
        # Kubernetes workloads (runtime: kubernetes) only: absent on the other runtimes.
        SignalInfo("container.replicas_ready", "int", ("Container",),
                   "pods whose Ready condition is true (kubernetes)"),
        SignalInfo("container.replicas_available", "int", ("Container",),
                   "the workload's availableReplicas: ready for at least minReadySeconds "
                   "(kubernetes)"),
        SignalInfo("container.replicas_updated", "int", ("Container",),
                   "replicas already on the workload's current pod template (kubernetes)"),
        SignalInfo("container.crash_looping", "bool", ("Container",),
                   "a container of a pod waits in CrashLoopBackOff: it keeps exiting and the "
                   "kubelet backs off restarting it (kubernetes)"),
        SignalInfo("container.image_pull_failing", "bool", ("Container",),
                   "a container waits in ErrImagePull, ImagePullBackOff or InvalidImageName "
                   "(kubernetes)"),
        SignalInfo("container.config_error", "bool", ("Container",),
                   "a container waits in CreateContainerConfigError, CreateContainerError or "
                   "RunContainerError: a missing ConfigMap, Secret or key (kubernetes)"),
        SignalInfo("container.rollout_stalled", "bool", ("Container",),
                   "the rollout passed its progressDeadlineSeconds (Progressing is false, "
                   "ProgressDeadlineExceeded) (kubernetes Deployments)"),
        SignalInfo("container.metrics_available", "bool", ("Container",),
                   "metrics.k8s.io answered for the pods: without a metrics-server the CPU "
                   "and memory signals are absent (kubernetes)"),
        SignalInfo("postgres.up", "bool", ("PostgresDatabase",),
                   "a new connection succeeds and answers SELECT 1"),
        SignalInfo("postgres.connections_used", "int", ("PostgresDatabase",),
                   "client backends in pg_stat_activity"),
        SignalInfo("postgres.max_connections", "int", ("PostgresDatabase",),
                   "the server's max_connections setting"),
        SignalInfo("postgres.connections_used_ratio", "float", ("PostgresDatabase",),
                   "client backends divided by max_connections minus reserved slots"),
        SignalInfo("postgres.longest_query_seconds", "float", ("PostgresDatabase",),
                   "age of the oldest running (state=active) query", "s"),
        SignalInfo("postgres.idle_in_transaction", "int", ("PostgresDatabase",),
                   "sessions idle in an open transaction"),
        SignalInfo("postgres.longest_idle_in_transaction_seconds", "float",
                   ("PostgresDatabase",), "age of the oldest idle-in-transaction session", "s"),
        SignalInfo("redis.up", "bool", ("RedisCache",), "PING answers"),
        SignalInfo("redis.memory_used_bytes", "int", ("RedisCache",),
                   "used_memory from INFO memory", "bytes"),
        SignalInfo("redis.maxmemory_bytes", "int", ("RedisCache",),
                   "the maxmemory setting (0 = unlimited)", "bytes"),
        SignalInfo("redis.memory_used_ratio", "float", ("RedisCache",),
                   "used_memory divided by maxmemory (0 when unlimited)"),
        SignalInfo("redis.evicted_keys", "int", ("RedisCache",),
                   "keys evicted since the server started"),
        SignalInfo("redis.rejected_writes", "int", ("RedisCache",),
                   "writes refused with OOM since the server started"),
        SignalInfo("redis.evicting_policy", "bool", ("RedisCache",),
                   "maxmemory-policy evicts keys (anything but noeviction)"),
        SignalInfo("logs.errors_per_minute", "float", _ALL,
                   "ERROR or worse log lines of the resource over the last minute", "/min"),
    )
}  # fmt: skip


def signals_for(kind: str) -> tuple[SignalInfo, ...]:
    """The signals a resource of ``kind`` can have, in catalogue order."""
    return tuple(s for s in SIGNALS.values() if kind in s.kinds)
