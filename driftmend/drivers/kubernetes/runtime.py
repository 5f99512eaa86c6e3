"""``KubernetesRuntime``: the ``ContainerRuntime`` of ``runtime: kubernetes``.

Stage: *observe* and *act*. The facade the router and the tools call. It watches, per
namespace it has been asked about, the Deployments, StatefulSets, Pods and Events there
(``cache.py``), reads a Container's workload and pods from those copies (``views.py``,
``observation.py``), asks metrics.k8s.io for usage, follows the pods' logs (``logs.py``)
and writes what ``kubectl`` would write for the same verb (``rollout.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import ControllerRevision, Deployment, ReplicaSet, StatefulSet
from lightkube.resources.core_v1 import Event, Pod
from lightkube.types import PatchType

from driftmend.drivers.base import EventSink
from driftmend.drivers.kubernetes.cache import WatchedCache
from driftmend.drivers.kubernetes.chaos import (
    CHAOS_ENV,
    FAULTS,
    MISSING_SECRET,
    bad_image_patch,
    config_error_patch,
    missing_image,
    remove_config_error_patch,
    restore_image_patch,
)
from driftmend.drivers.kubernetes.connection import api_client, metrics_client
from driftmend.drivers.kubernetes.logs import PodLog
from driftmend.drivers.kubernetes.observation import (
    UNREADY_GRACE,
    EventLine,
    Snapshot,
    Usage,
    desired,
    facts_of,
    health_known_in,
    signals_of,
    stats_rows,
)
from driftmend.drivers.kubernetes.quantities import memory_quantity, parse_quantity
from driftmend.drivers.kubernetes.rollout import (
    check_limits,
    deployment_rollback,
    limits_patch,
    one_bad_pod,
    replica_pod,
    restart_patch,
    scale_patch,
    statefulset_rollback,
)
from driftmend.drivers.kubernetes.views import (
    TemplateContainer,
    Workload,
    matches,
    parse_time,
    pods_of,
)
from driftmend.drivers.state_files import resource_dir
from driftmend.errors import DriftmendError, DriverError, PermanentError, RefusedError
from driftmend.model import Observation
from driftmend.spec import Container, KubernetesSpec

log = logging.getLogger(__name__)

PodMetrics = create_namespaced_resource("metrics.k8s.io", "v1beta1", "PodMetrics", "pods")

KINDS: dict[str, Any] = {"Deployment": Deployment, "StatefulSet": StatefulSet}
SYNC_TIMEOUT = 10.0  # how long a first read waits for a namespace's caches to list
METRICS_TTL = 5.0  # metrics.k8s.io is asked at most this often per workload
METRICS_RETRY = 60.0  # after it did not answer, it is asked again after this long
EVENT_WINDOW = 3600.0  # Events older than this are not kept


def _no_sink(key: str, reason: str) -> None:
    """The event sink before ``set_event_sink``: events are dropped, resync still heals."""


def _target(container: Container) -> KubernetesSpec:
    spec = container.spec.kubernetes
    if spec is None:  # the spec's validator makes this unreachable for runtime: kubernetes
        raise PermanentError(f"{container.key} has no kubernetes block")
    return spec


def _namespace(container: Container) -> str:
    return _target(container).namespace or container.metadata.namespace


def _api_error(exc: ApiError, what: str) -> DriftmendError:
    """A refusal by the API server as the error the tools and the loop understand."""
    code = exc.status.code or 0
    message = f"{what}: {exc.status.message or exc} (HTTP {code})"
    if code in (401, 403):
        return PermanentError(message + "; grant driftmend's service account this verb")
    if code in (404, 409, 422):
        return RefusedError(message)
    return DriverError(message)


class _Namespace:
    """The watched copies of one namespace."""

    def __init__(self, client: AsyncClient, name: str, on_change: Callable[..., None]) -> None:
        def recent(obj: dict[str, Any]) -> bool:
            at = parse_time(obj.get("lastTimestamp") or obj.get("eventTime"))
            return at is None or at >= time.time() - EVENT_WINDOW

        self.caches = {
            "Deployment": WatchedCache(client, Deployment, name, on_change),
            "StatefulSet": WatchedCache(client, StatefulSet, name, on_change),
            "Pod": WatchedCache(client, Pod, name, on_change),
            "Event": WatchedCache(client, Event, name, lambda kind, obj: None, keep=recent),
        }
        for cache in self.caches.values():
            cache.start()

    async def synced(self) -> None:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(c.ready.wait() for c in self.caches.values())), SYNC_TIMEOUT
            )
        except TimeoutError:
            errors = {c.error for c in self.caches.values() if c.error}
            raise DriverError(
                "the Kubernetes API did not list the namespace in time"
                + (f": {'; '.join(sorted(errors))}" if errors else "")
            ) from None

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.caches.values()))


class KubernetesRuntime:
    """Heals the Deployment or StatefulSet a ``Container`` names; implements ``ContainerRuntime``.

    Kubernetes runs the pods and restarts a container that exits; this runtime acts where
    that is not enough, through the workload (see docs/ARCHITECTURE.md, "Kubernetes
    workloads"). Construction touches nothing: the cluster is reached on the first call
    that needs it, so a controller whose specs name no Kubernetes workload never connects.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        metrics_url: str | None = None,
        clock: Callable[[], float] = time.time,
        unready_grace: float = UNREADY_GRACE,
    ) -> None:
        self._root = Path(state_dir).resolve() / "kubernetes"
        self._kubeconfig = kubeconfig
        self._context = context
        self._metrics_url = metrics_url
        self._clock = clock
        self._unready_grace = unready_grace
        self._sink: EventSink = _no_sink
        self._client: AsyncClient | None = None
        self._metrics: AsyncClient | None = None
        self._namespaces: dict[str, _Namespace] = {}
        self._specs: dict[str, Container] = {}
        self._usage: dict[str, tuple[float, Usage | None, str | None]] = {}
        self._logs: dict[str, dict[str, PodLog]] = {}
        self._wakeups: dict[str, asyncio.TimerHandle] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        """Where changes of a workload or its pods are reported: ``sink(key, reason)``."""
        self._sink = sink

    def set_start_failure_sink(self, sink: Callable[[str, str], None]) -> None:
        """Pods that fail to start are shown in the signals (``container.crash_looping``...)."""

    async def start(self) -> None:
        """Nothing to do before the first Container: the watches start with it."""

    async def close(self) -> None:
        """Stop the watches and log followers; the workloads are Kubernetes' and keep running."""
        await asyncio.gather(*(ns.close() for ns in self._namespaces.values()))
        await asyncio.gather(*(f.close() for pods in self._logs.values() for f in pods.values()))
        self._namespaces.clear()
        self._logs.clear()
        for handle in self._wakeups.values():
            handle.cancel()
        self._wakeups.clear()
        for client in (self._client, self._metrics):
            if client is not None:
                await client.close()
        self._client = self._metrics = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def client(self) -> AsyncClient:
        """The API server's client, made on first use."""
        if self._client is None:
            self._client = api_client(self._kubeconfig, self._context)
        return self._client

    async def _watched(self, namespace: str) -> _Namespace:
        ns = self._namespaces.get(namespace)
        if ns is None:
            ns = _Namespace(self.client, namespace, self._on_change)
            self._namespaces[namespace] = ns
        await ns.synced()
        return ns

    async def _workload(
        self, container: Container
    ) -> tuple[_Namespace, dict[str, Any] | None, str]:
        """The workload's object (None when absent) and a sentence for when it is absent."""
        spec = _target(container)
        namespace = _namespace(container)
        self._specs[container.key] = container
        ns = await self._watched(namespace)
        objects = ns.caches[spec.kind].items
        if spec.name is not None:
            found = objects.get(spec.name)
            return ns, found, f"no {spec.kind} {namespace}/{spec.name}"
        chosen = [
            o
            for o in objects.values()
            if all(((o.get("metadata") or {}).get("labels") or {}).get(k) == v
                   for k, v in (spec.selector or {}).items())
        ]  # fmt: skip
        labels = ",".join(f"{k}={v}" for k, v in (spec.selector or {}).items())
        if len(chosen) > 1:
            names = ", ".join(sorted(o["metadata"]["name"] for o in chosen))
            raise PermanentError(
                f"{container.key}: {len(chosen)} {spec.kind}s in {namespace} match {labels} "
                f"({names}); driftmend will not guess: name one with kubernetes.name"
            )
        return ns, chosen[0] if chosen else None, f"no {spec.kind} in {namespace} matches {labels}"

    async def snapshot(self, container: Container) -> Snapshot:
        """The workload, its pods, their usage and recent Events now."""
        ns, obj, missing = await self._workload(container)
        spec = _target(container)
        usage, metrics_error = await self._usage_of(container, obj)
        if obj is None:
            return Snapshot(None, missing=missing, usage=usage, metrics_error=metrics_error)
        workload = Workload.of(spec.kind, obj)
        pods = pods_of(workload, list(ns.caches["Pod"].items.values()))
        names = {p.name for p in pods} | {workload.name}
        events = tuple(
            EventLine(
                at=parse_time(e.get("lastTimestamp") or e.get("eventTime")) or 0.0,
                type=str(e.get("type") or "Normal"),
                reason=str(e.get("reason") or ""),
                object=f"{(e.get('involvedObject') or {}).get('kind')}/"
                f"{(e.get('involvedObject') or {}).get('name')}",
                message=str(e.get("message") or ""),
                count=int(e.get("count") or 1),
            )
            for e in ns.caches["Event"].items.values()
            if (e.get("involvedObject") or {}).get("name") in names
        )
        return Snapshot(
            workload,
            tuple(pods),
            usage=usage,
            events=events,
            metrics_error=metrics_error,
            container=spec.container,
        )

    async def _usage_of(
        self, container: Container, obj: dict[str, Any] | None
    ) -> tuple[Usage | None, str | None]:
        """Per pod and container (cores, bytes), or None and why; cached ``METRICS_TTL``."""
        now = self._clock()
        kept = self._usage.get(container.key)
        if kept is not None and now - kept[0] < (
            METRICS_TTL if kept[1] is not None else METRICS_RETRY
        ):
            return kept[1], kept[2]
        if obj is None:
            return None, "the workload is not there"
        selector = (obj.get("spec") or {}).get("selector") or {}
        labels = selector.get("matchLabels") or {}
        try:
            client = self._metrics_client()
            usage: dict[str, dict[str, tuple[float, int]]] = {}
            async for item in client.list(
                PodMetrics, namespace=_namespace(container), labels=labels or None
            ):
                data: dict[str, Any] = item.to_dict()  # type: ignore[no-untyped-call]
                pod_labels = (data.get("metadata") or {}).get("labels") or {}
                if pod_labels and not matches(selector, pod_labels):
                    continue
                usage[data["metadata"]["name"]] = {
                    str(c.get("name")): (
                        parse_quantity(c["usage"]["cpu"]),
                        int(parse_quantity(c["usage"]["memory"])),
                    )
                    for c in data.get("containers") or []
                }
            result: tuple[Usage | None, str | None] = (usage, None)
        except httpx2.HTTPStatusError as exc:  # ApiError too
            code = exc.response.status_code
            result = (None, f"HTTP {code}" + (" (no metrics-server)" if code == 404 else ""))
        except Exception as exc:
            result = (None, f"{type(exc).__name__}: {exc}")
        self._usage[container.key] = (now, *result)
        return result

    def _metrics_client(self) -> AsyncClient:
        if self._metrics_url is None:
            return self.client
        if self._metrics is None:
            self._metrics = metrics_client(self._metrics_url)
        return self._metrics

    # -- the ContainerRuntime Protocol -----------------------------------------------------

    async def ensure(self, container: Container) -> list[str]:
        """Nothing to create: the workload and its pods are Kubernetes' (``kubectl apply``)."""
        return []

    async def observe(self, container: Container) -> Observation:
        """The workload's signals and facts now (see ``observation.py``); its pods' logs are
        followed from here on."""
        snap = await self.snapshot(container)
        now = self._clock()
        self._follow_logs(container, snap)
        self._wake_when_known(container.key, health_known_in(snap, now, self._unready_grace))
        return Observation(
            key=container.key,
            at=now,
            signals=signals_of(snap, now, self._unready_grace),
            facts=facts_of(snap, now),
        )

    def _wake_when_known(self, key: str, delay: float | None) -> None:
        """Report ``key`` changed once ``delay`` seconds passed (a pod's unready grace ends:
        an event no watch sends); one wake-up per Container, the newest wins."""
        old = self._wakeups.pop(key, None)
        if old is not None:
            old.cancel()
        if delay is not None:
            loop = asyncio.get_running_loop()
            self._wakeups[key] = loop.call_later(delay + 0.05, self._sink, key, "unready-grace")

    async def restart(self, container: Container, replica: int | None = None) -> dict[str, Any]:
        """Delete the one failing pod (or replica ``replica``'s pod), else a rollout restart.

        A rollout restart is ``kubectl rollout restart``: a new ``restartedAt`` annotation on
        the pod template, so the workload's controller replaces the pods one surge at a time
        and the old ones serve until the new are ready. Returns what was done.
        """
        snap, w = await self._require(container)
        pod = (
            replica_pod(snap.pods, replica)
            if replica is not None
            else one_bad_pod(snap.pods, desired(w), self._clock(), self._unready_grace)
        )
        if replica is not None and pod is None:
            raise PermanentError(
                f"{container.key} has {len(snap.pods)} pod(s), numbered from 0; there is no "
                f"replica {replica}"
            )
        if pod is not None:
            try:
                await self.client.delete(Pod, pod.name, namespace=w.namespace)
            except ApiError as exc:
                raise _api_error(exc, f"deleting pod {w.namespace}/{pod.name}") from exc
            return {"how": "deleted-pod", "workload": w.ref, "pod": pod.name}
        at = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self._patch(w, restart_patch(at), PatchType.STRATEGIC, "rollout restart")
        return {
            "how": "rollout-restart",
            "workload": w.ref,
            "restarted_at": at,
            "pods": [p.name for p in snap.pods],
        }

    async def stop(self, container: Container) -> dict[str, Any]:
        """Scale the workload to 0, keeping its replica count for ``start_replicas``."""
        snap, w = await self._require(container)
        keep = desired(w)
        await self._patch(w, scale_patch(0, stopped_from=keep), PatchType.MERGE, "stop")
        return {"workload": w.ref, "stopped": [p.name for p in snap.pods], "replicas_before": keep}

    async def start_replicas(self, container: Container) -> dict[str, Any]:
        """Scale back to the count ``stop`` kept; a workload that was not stopped is left."""
        _, w = await self._require(container)
        if w.stopped_replicas is None:
            return {"workload": w.ref, "started": []}
        await self._patch(w, scale_patch(w.stopped_replicas), PatchType.MERGE, "start")
        return {"workload": w.ref, "started": w.stopped_replicas}

    async def scale(self, container: Container, replicas: int) -> dict[str, Any]:
        """Set the workload's replicas through its scale subresource (within maxReplicas)."""
        cap = container.spec.max_replicas
        if not 0 <= replicas <= cap:
            raise RefusedError(
                f"cannot scale {container.key} to {replicas}: allowed 0..{cap} "
                "(raise spec.maxReplicas to allow more)"
            )
        _, w = await self._require(container)
        if w.stopped_replicas is not None:  # a scale ends a stop
            await self._patch(w, {"metadata": {"annotations": {
                "driftmend.dev/stopped-replicas": None}}}, PatchType.MERGE, "scale")  # fmt: skip
        try:
            await self.client.patch(
                KINDS[w.kind].Scale,
                w.name,
                {"spec": {"replicas": replicas}},
                namespace=w.namespace,
                patch_type=PatchType.MERGE,
            )
        except ApiError as exc:
            raise _api_error(exc, f"scaling {w.ref}") from exc
        return {"workload": w.ref, "replicas": replicas, "previous": w.replicas}

    async def set_limits(
        self, container: Container, cpu: float | None = None, memory: int | None = None
    ) -> dict[str, Any]:
        """Patch the resources of one template container (``kubernetes.container``, else the
        first) within the spec's caps; the workload's controller rolls the pods."""
        snap, w = await self._require(container)
        name = _target(container).container
        current = w.container(name)
        if current is None:
            raise PermanentError(f"{w.ref} has no container {name!r} in its pod template")
        used = None
        if snap.usage:
            used = max((per[current.name][1] for per in snap.usage.values()
                        if current.name in per), default=None)  # fmt: skip
        check_limits(container, current, cpu, memory, used)
        await self._patch(w, limits_patch(current, cpu, memory), PatchType.STRATEGIC, "set limits")
        return {
            "workload": w.ref,
            "container": current.name,
            "cpu": cpu if cpu is not None else current.cpu_limit,
            "memory": memory if memory is not None else current.memory_limit,
            "memory_human": memory_quantity(memory) if memory is not None else None,
            "previous": {"cpu": current.cpu_limit, "memory": current.memory_limit},
        }

    async def rollback(self, container: Container) -> dict[str, Any]:
        """``kubectl rollout undo``: back to the workload's previous revision."""
        _, w = await self._require(container)
        try:
            obj = (await self.client.get(KINDS[w.kind], w.name, namespace=w.namespace)).to_dict()
            if w.kind == "Deployment":
                sets = [
                    rs.to_dict() async for rs in self.client.list(ReplicaSet, namespace=w.namespace)
                ]
                before, after, template = deployment_rollback(obj, sets)
                patch: Any = [{"op": "replace", "path": "/spec/template", "value": template}]
                await self.client.patch(
                    Deployment, w.name, patch, namespace=w.namespace, patch_type=PatchType.JSON
                )
            else:
                revisions = [
                    r.to_dict()
                    async for r in self.client.list(ControllerRevision, namespace=w.namespace)
                ]
                before, after, data = statefulset_rollback(obj, revisions)
                await self.client.patch(
                    StatefulSet, w.name, data, namespace=w.namespace, patch_type=PatchType.STRATEGIC
                )
        except ApiError as exc:
            raise _api_error(exc, f"rolling back {w.ref}") from exc
        return {"workload": w.ref, "from_revision": before, "to_revision": after}

    async def stats(self, container: Container) -> dict[str, Any]:
        """Per pod: phase, readiness, node, restarts, containers, CPU and memory."""
        snap = await self.snapshot(container)
        out: dict[str, Any] = {"pods": stats_rows(snap, self._clock())}
        if snap.workload is not None:
            out |= {"workload": snap.workload.ref, "replicas": snap.workload.replicas}
        if snap.usage is None:
            out["metrics"] = f"metrics.k8s.io did not answer: {snap.metrics_error}"
        return out

    def log_files(self, container: Container) -> Sequence[str]:
        """``pod-<name>.log`` of every pod followed, and of pods that left one before."""
        directory = self._dir(container)
        with contextlib.suppress(OSError):
            return sorted(str(p) for p in directory.glob("pod-*.log"))
        return []

    async def down(self, container: Container) -> dict[str, Any]:
        """Stop following the workload; the workload itself is Kubernetes' and stays."""
        for follower in self._logs.pop(container.key, {}).values():
            await follower.close()
        self._wake_when_known(container.key, None)
        self._specs.pop(container.key, None)
        return {"removed": []}

    # -- chaos (``driftmend chaos``; no tool calls these) ----------------------------------

    async def inject_fault(self, container: Container, fault: str) -> str:
        """Break the workload's pod template as ``fault`` says (``chaos.FAULTS``); the
        original image is kept under the state directory for ``revert_fault``."""
        w, current, _ = await self._template(container)
        if fault == "workload-bad-image":
            saved = self._dir(container) / "chaos-image.json"
            if not saved.exists():  # a second injection keeps the first original
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps({"image": current.image}), encoding="utf-8")
            await self._patch(w, bad_image_patch(current), PatchType.STRATEGIC, "chaos")
            return f"{container.key}: {w.ref} now runs {missing_image(current.image)}"
        if fault == "workload-config-error":
            await self._patch(w, config_error_patch(current), PatchType.STRATEGIC, "chaos")
            return f"{container.key}: {w.ref} reads {CHAOS_ENV} from the missing Secret {MISSING_SECRET}"
        raise PermanentError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")

    async def revert_fault(self, container: Container, fault: str) -> str:
        """Undo ``inject_fault`` where the template still carries the fault."""
        w, current, raw = await self._template(container)
        patch: dict[str, Any] | None
        if fault == "workload-bad-image":
            saved = self._dir(container) / "chaos-image.json"
            if not saved.exists():
                return f"{container.key}: no bad image of driftmend's to undo"
            image = str(json.loads(saved.read_text(encoding="utf-8"))["image"])
            patch = restore_image_patch(current, image)
            saved.unlink()
        elif fault == "workload-config-error":
            patch = remove_config_error_patch(current.name, raw.get("env") or [])
        else:
            raise PermanentError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if patch is None:
            return f"{container.key}: {w.ref} no longer carries {fault}: nothing to undo"
        await self._patch(w, patch, PatchType.STRATEGIC, "chaos revert")
        return f"{container.key}: {w.ref} template restored ({fault} undone)"

    async def _template(
        self, container: Container
    ) -> tuple[Workload, TemplateContainer, dict[str, Any]]:
        """The workload, and the template container the spec names as a view and as sent
        (read from the watched copy: no pods, usage or Events needed)."""
        _, obj, missing = await self._workload(container)
        if obj is None:
            raise PermanentError(f"{container.key}: {missing}")
        w = Workload.of(_target(container).kind, obj)
        current = w.container(_target(container).container)
        if current is None:
            raise PermanentError(f"{w.ref} has no container {_target(container).container!r}")
        pod_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        raw: dict[str, Any] = next(
            (c for c in pod_spec.get("containers") or [] if c.get("name") == current.name), {}
        )
        return w, current, raw

    # -- helpers ---------------------------------------------------------------------------

    async def _require(self, container: Container) -> tuple[Snapshot, Workload]:
        """The snapshot and its workload; a ``PermanentError`` saying why when it is absent."""
        snap = await self.snapshot(container)
        if snap.workload is None:
            raise PermanentError(f"{container.key}: {snap.missing}")
        return snap, snap.workload

    async def _patch(self, w: Workload, body: Any, how: PatchType, what: str) -> None:
        try:
            await self.client.patch(KINDS[w.kind], w.name, body, namespace=w.namespace,
                                    patch_type=how)  # fmt: skip
        except ApiError as exc:
            raise _api_error(exc, f"{what} of {w.ref}") from exc

    def _dir(self, container: Container) -> Path:
        return resource_dir(self._root, container.resource_key)

    def _follow_logs(self, container: Container, snap: Snapshot) -> None:
        followers = self._logs.setdefault(container.key, {})
        live = {p.name for p in snap.pods if p.node is not None}
        for gone in set(followers) - live:
            asyncio.get_running_loop().create_task(followers.pop(gone).close())
        if snap.workload is None:
            return
        template = snap.workload.container(snap.container)
        for name in live - set(followers):
            follower = PodLog(
                self.client,
                snap.workload.namespace,
                name,
                template.name if template else None,
                self._dir(container) / f"pod-{name}.log",
            )
            followers[name] = follower
            follower.start()

    def _on_change(self, kind: str, obj: dict[str, Any]) -> None:
        """A watched workload or pod changed: reconcile the Containers it concerns now."""
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        labels = meta.get("labels") or {}
        for key, container in list(self._specs.items()):
            spec = _target(container)
            if _namespace(container) != namespace:
                continue
            if obj.get("kind") in KINDS or "replicas" in (obj.get("spec") or {}):
                hit = name == spec.name or (
                    spec.selector is not None
                    and all(labels.get(k) == v for k, v in spec.selector.items())
                )
            else:
                ns = self._namespaces.get(namespace or "")
                workloads = ns.caches[spec.kind].items.values() if ns else []
                hit = any(
                    matches((w.get("spec") or {}).get("selector"), labels)
                    and (spec.name is None or w["metadata"]["name"] == spec.name)
                    for w in workloads
                )
            if hit:
                self._sink(key, "kubernetes")
