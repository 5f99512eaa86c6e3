"""A fake kubelet that plays one node against a real kube-apiserver, through its public API.

The API server of ``tests/k8s.py`` runs no scheduler and no kubelet, so no pod ever runs.
``FakeKubelet`` registers a Node, binds the pods it watches to that node (as the scheduler
would), writes their status subresource (as the kubelet would) from a behaviour callback the
test can swap at any time, finishes graceful deletions, and serves container logs over HTTPS
on the path the API server proxies ``kubectl logs`` to. Everything listens on 127.0.0.1.

How ``kubectl logs`` gets here: the API server looks up the pod's ``spec.nodeName``, takes the
node's ``InternalIP`` address and ``status.daemonEndpoints.kubeletEndpoint.Port``, and GETs
``https://127.0.0.1:<port>/containerLogs/<ns>/<pod>/<container>``. ``start.sh`` passes no
``--kubelet-certificate-authority``, so the API server does not verify the kubelet's serving
certificate (a self-signed one is fine), and no ``--kubelet-client-certificate``, so it sends
none (the log server asks for none).
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import ipaddress
import json
import logging
import select
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from driftmend.kube.kubeconfig import connection_from_kubeconfig
from tests.services import free_port, poll_until

__all__ = ["FakeKubelet", "PodState", "is_ready", "running_and_ready"]

log = logging.getLogger(__name__)

Pod = dict[str, Any]


@dataclass
class PodState:
    """What the fake kubelet reports for a pod (every container of it alike).

    ``waiting`` puts each container in state waiting with that reason (e.g.
    "CrashLoopBackOff", "ImagePullBackOff", "CreateContainerConfigError"): not ready, not
    started. ``last_terminated`` is (reason, exit code) of the previous run, e.g.
    ("OOMKilled", 137). ``logs`` are lines the container printed; they are added to the pod's
    log whenever a behaviour returns a different list for it. ``phase`` is taken as given
    (pass "Pending" with an image-pull wait, as a kubelet would report); with "Succeeded" or
    "Failed" the containers are terminated (Completed/0 or Error/1).
    """

    phase: str = "Running"
    ready: bool = True
    restarts: int = 0
    waiting: str | None = None
    waiting_message: str = ""
    last_terminated: tuple[str, int] | None = None
    logs: list[str] = field(default_factory=list)


Behaviour = Callable[[Pod], PodState]


def running_and_ready(pod: Pod) -> PodState:
    """The default behaviour: every container running and ready."""
    return PodState()


def is_ready(pod: Pod) -> bool:
    """A pod that is Running, Ready and not being deleted."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return status.get("phase") == "Running" and ready


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _stamp(when: datetime.datetime) -> str:
    # The API's own timestamps have second precision (metav1.Time).
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector(selector: dict[str, str] | None) -> dict[str, str]:
    if not selector:
        return {}
    return {"labelSelector": ",".join(f"{k}={v}" for k, v in selector.items())}


def _rv(obj: Pod) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


# ---------------------------------------------------------------------------------------------
# Container logs, and the HTTPS server the API server proxies to


class _LogBook:
    """Lines per pod (all its containers share them), with the time each was printed."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], list[tuple[datetime.datetime, str]]] = {}
        self.changed = threading.Condition()

    def append(self, namespace: str, pod: str, lines: Sequence[str]) -> None:
        with self.changed:
            book = self._lines.setdefault((namespace, pod), [])
            book.extend((_now(), line) for line in lines)
            self.changed.notify_all()

    def since(self, namespace: str, pod: str, index: int) -> list[tuple[datetime.datetime, str]]:
        with self.changed:
            return list(self._lines.get((namespace, pod), [])[index:])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, as files for ``ssl``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-kubelet")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "kubelet.crt", folder / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _LogServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, tls: ssl.SSLContext, book: _LogBook) -> None:
        super().__init__(("127.0.0.1", port), _LogHandler)
        self.tls = tls
        self.book = book
        self.stopping = threading.Event()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so one slow client
        # never holds up the accept loop.
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            # The wrapped socket took over the connection: socketserver closes only the
            # original (now detached) one.
            with contextlib.suppress(OSError):
                wrapped.shutdown(socket.SHUT_RDWR)
            wrapped.close()


def _peer_closed(sock: socket.socket) -> bool:
    """True when the other end hung up (readable, and a read gives nothing)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        sock.setblocking(False)
        return sock.recv(1) == b""
    except ssl.SSLWantReadError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


class _LogHandler(BaseHTTPRequestHandler):
    server: _LogServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubelet log server: " + format, *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "not a containerLogs path")
            return
        _, namespace, pod, _container = parts
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        tail = int(query["tailLines"]) if "tailLines" in query else None
        since = int(query["sinceSeconds"]) if "sinceSeconds" in query else None
        stamps = query.get("timestamps") == "true"
        follow = query.get("follow") == "true"
        book = self.server.book

        entries = book.since(namespace, pod, 0)
        seen = len(entries)
        if since is not None:
            cutoff = _now() - datetime.timedelta(seconds=since)
            entries = [e for e in entries if e[0] >= cutoff]
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []

        def render(batch: list[tuple[datetime.datetime, str]]) -> bytes:
            return b"".join(
                (
                    f"{when.strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z {line}\n"
                    if stamps
                    else f"{line}\n"
                ).encode()
                for when, line in batch
            )

        body = render(entries)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if not follow:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        # Following: no length, the body ends when either side closes (HTTP/1.0 style).
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(body)
            self.wfile.flush()
            while not self.server.stopping.is_set():
                with book.changed:
                    book.changed.wait(0.25)
                fresh = book.since(namespace, pod, seen)
                if fresh:
                    seen += len(fresh)
                    self.wfile.write(render(fresh))
                    self.wfile.flush()
                elif _peer_closed(self.connection):
                    return
        except OSError:
            return  # the client went away mid-write


# ---------------------------------------------------------------------------------------------
# The kubelet


class FakeKubelet:
    """Plays the kubelet of one node (and the scheduler for it) against a real API server.

    Use as a context manager, or ``start()`` / ``stop()``. It works in its own threads
    (watchers, one worker, the log server), independent of any asyncio loop of the caller.
    """

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        node_name: str = "kubelet-0",
        namespaces: Sequence[str] | None = None,
        behaviour: Behaviour = running_and_ready,
        context: str | None = None,
    ) -> None:
        """A kubelet for ``node_name`` watching pods in ``namespaces`` (None: all of them),
        reaching the API server with the credentials of ``kubeconfig``'s ``context``."""
        info = connection_from_kubeconfig(Path(kubeconfig), context)
        self._server = info.server
        self._tls = info.as_ssl_context()
        self._headers = info.as_http_headers()
        self.node_name = node_name
        self.namespaces: tuple[str, ...] | None = tuple(namespaces) if namespaces else None
        self._behaviour = behaviour
        self._book = _LogBook()
        self._seeded: dict[tuple[str, str], list[str]] = {}
        self._cache: dict[tuple[str, str], Pod] = {}
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[str, str] | threading.Event] = collections.deque()
        self._queued: set[tuple[str, str]] = set()
        self._wake = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http: httpx2.Client | None = None
        self._log_server: _LogServer | None = None
        self._tmp: Path | None = None
        self.errors: list[str] = []
        self.status_writes = 0  # how many pod status writes: a settled pod gets no more

    # -- lifecycle -----------------------------------------------------------------------------

    def _client(self, timeout: float = 10.0) -> httpx2.Client:
        return httpx2.Client(
            base_url=self._server,
            verify=self._tls,
            headers=self._headers,
            timeout=httpx2.Timeout(timeout),
            trust_env=False,
        )

    @property
    def log_port(self) -> int:
        """The port of the HTTPS log server (the node's kubeletEndpoint)."""
        assert self._log_server is not None, "the kubelet is not started"
        return int(self._log_server.server_address[1])

    def start(self) -> FakeKubelet:
        """Serve logs, register the node, then watch and tend pods in the background."""
        self._stopping.clear()
        self._tmp = Path(tempfile.mkdtemp(prefix="driftmend-kubelet-"))
        cert, key = _self_signed(self._tmp)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        self._log_server = _LogServer(free_port(), tls, self._book)
        self._http = self._client()
        self._register_node()
        self._spawn(self._log_server.serve_forever, "kubelet-logs")
        self._spawn(self._work, "kubelet-worker")
        for namespace in self.namespaces or (None,):
            self._spawn(functools.partial(self._watch, namespace), f"kubelet-watch-{namespace}")
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop every thread and the log server; the Node object is left in place."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self._log_server is not None:
            self._log_server.stopping.set()
            self._log_server.shutdown()
            self._log_server.server_close()
        for thread in self._threads:
            thread.join(10)
        self._threads.clear()
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the node ------------------------------------------------------------------------------

    def _register_node(self) -> None:
        http = self._api()
        created = http.post(
            "/api/v1/nodes",
            json={
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.node_name,
                    "labels": {
                        "kubernetes.io/hostname": self.node_name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
            },
        )
        if created.status_code not in (201, 409):
            raise RuntimeError(f"creating node {self.node_name}: {created.text}")
        now = _stamp(_now())

        def condition(kind: str, status: str, reason: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": reason,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        resources = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
        status = {
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("Ready", "True", "KubeletReady"),
            ],
            # Only an InternalIP: the API server tries Hostname first by default, and a
            # node name resolves to nothing here.
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_port}},
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "machineID": "fake",
                "systemUUID": "fake",
                "bootID": "fake",
                "kernelVersion": "fake",
                "osImage": "driftmend fake kubelet",
                "containerRuntimeVersion": "fake://1.0",
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        patched = http.patch(
            f"/api/v1/nodes/{self.node_name}/status",
            content=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if patched.status_code != 200:
            raise RuntimeError(f"writing node {self.node_name} status: {patched.text}")
        # The API server taints a new node not-ready at creation and the node lifecycle
        # controller, which removes that taint once the node is Ready, does not run here.
        untainted = http.patch(
            f"/api/v1/nodes/{self.node_name}",
            content=json.dumps({"spec": {"taints": None}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if untainted.status_code != 200:
            raise RuntimeError(f"untainting node {self.node_name}: {untainted.text}")

    def _api(self) -> httpx2.Client:
        assert self._http is not None, "the kubelet is not started"
        return self._http

    # -- watching ------------------------------------------------------------------------------

    def _watch(self, namespace: str | None) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        with self._client(timeout=30.0) as http:
            version: str | None = None
            while not self._stopping.is_set():
                try:
                    if version is None:
                        version = self._relist(http, path, namespace)
                    version = self._follow(http, path, version)
                except Exception as exc:  # the watch must outlive any hiccup
                    if self._stopping.is_set():
                        return
                    if not isinstance(exc, httpx2.HTTPError):
                        self.errors.append(f"watch {path}: {type(exc).__name__}: {exc}")
                    log.debug("fake kubelet watch %s: %s", path, exc)
                    version = None
                    self._stopping.wait(0.2)

    def _relist(self, http: httpx2.Client, path: str, namespace: str | None) -> str:
        listed = http.get(path)
        listed.raise_for_status()
        body = listed.json()
        keys = set()
        with self._lock:
            for pod in body.get("items") or []:
                key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
                keys.add(key)
                self._cache[key] = pod
                self._enqueue(key)
            for key in [k for k in self._cache if namespace in (None, k[0]) and k not in keys]:
                del self._cache[key]
        return str(body["metadata"]["resourceVersion"])

    def _follow(self, http: httpx2.Client, path: str, version: str) -> str | None:
        """One watch request from ``version``; the version to go on from (None: relist).

        The server ends each watch after a second so that ``stop`` is never kept waiting
        on a blocked read."""
        params = {
            "watch": "1",
            "resourceVersion": version,
            "timeoutSeconds": "1",
            "allowWatchBookmarks": "true",
        }
        with http.stream("GET", path, params=params) as response:
            if response.status_code == 410:
                return None
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    # 410 Gone: our version is too old, start over from a fresh list.
                    return None
                version = str(obj["metadata"]["resourceVersion"])
                if event["type"] == "BOOKMARK":
                    continue
                key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                with self._lock:
                    if event["type"] == "DELETED":
                        self._cache.pop(key, None)
                        continue
                    if _rv(obj) >= _rv(self._cache.get(key) or {}):
                        self._cache[key] = obj
                    self._enqueue(key)
        return version

    def _enqueue(self, key: tuple[str, str]) -> None:
        # Called with self._lock held.
        if key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._wake.notify_all()

    # -- tending pods --------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                while not self._queue and not self._stopping.is_set():
                    self._wake.wait(0.5)
                if self._stopping.is_set():
                    return
                item = self._queue.popleft()
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                self._queued.discard(item)
                pod = self._cache.get(item)
                behaviour = self._behaviour
            if pod is None:
                continue
            try:
                self._tend(pod, behaviour)
            except Exception as exc:  # one bad pod must not stop the kubelet
                message = f"{item[0]}/{item[1]}: {type(exc).__name__}: {exc}"
                log.warning("fake kubelet: %s", message)
                self.errors.append(message)

    def _tend(self, pod: Pod, behaviour: Behaviour) -> None:
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        base = f"/api/v1/namespaces/{namespace}/pods/{name}"
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node != self.node_name:
            return  # another node's pod
        http = self._api()
        if meta.get("deletionTimestamp"):
            if node:
                # A kubelet confirms a graceful deletion once the containers are gone; ours
                # have nothing to stop, so at once. The uid guards a same-named successor.
                http.request(
                    "DELETE",
                    base,
                    json={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
                )
            return
        if not node:
            bound = http.post(
                f"{base}/binding",
                json={
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "namespace": namespace},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
                },
            )
            if bound.status_code == 404:
                return
            if bound.status_code not in (201, 409):
                raise RuntimeError(f"binding: {bound.status_code} {bound.text}")
        state = behaviour(pod)
        if state.logs != self._seeded.get((namespace, name)):
            self._seeded[(namespace, name)] = list(state.logs)
            self._book.append(namespace, name, state.logs)
        status = self._status(pod, state)
        if self._same(pod.get("status") or {}, status):
            return
        patched = http.patch(
            f"{base}/status",
            content=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if patched.status_code == 404:
            return
        if patched.status_code != 200:
            raise RuntimeError(f"status: {patched.status_code} {patched.text}")
        self.status_writes += 1
        fresh = patched.json()
        key = (namespace, name)
        with self._lock:
            # Our own write is the newest we know of: tend from it, not from the older copy
            # still in the cache until the watch reports it.
            if key in self._cache and _rv(fresh) > _rv(self._cache[key]):
                self._cache[key] = fresh

    @staticmethod
    def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
        return all(old.get(k) == v for k, v in new.items())

    def _status(self, pod: Pod, state: PodState) -> dict[str, Any]:
        """The status a kubelet would write for ``state``; times kept from ``pod`` where the
        thing they date has not changed, so that writing it again changes nothing."""
        old = pod.get("status") or {}
        now = _stamp(_now())
        start = old.get("startTime") or now
        old_containers = {c.get("name"): c for c in old.get("containerStatuses") or []}
        terminated = state.phase in ("Succeeded", "Failed")
        statuses = []
        for container in (pod.get("spec") or {}).get("containers") or []:
            cname = container["name"]
            before = old_containers.get(cname) or {}
            ready = state.ready and state.waiting is None and not terminated
            cstate: dict[str, Any]
            if terminated:
                ok = state.phase == "Succeeded"
                prior = (before.get("state") or {}).get("terminated") or {}
                cstate = {
                    "terminated": {
                        "reason": "Completed" if ok else "Error",
                        "exitCode": 0 if ok else 1,
                        "startedAt": prior.get("startedAt") or start,
                        "finishedAt": prior.get("finishedAt") or now,
                        "containerID": f"fake://{pod['metadata']['uid']}-{cname}",
                    }
                }
            elif state.waiting is not None:
                waiting = {"reason": state.waiting}
                if state.waiting_message:  # the API drops an empty one
                    waiting["message"] = state.waiting_message
                cstate = {"waiting": waiting}
            else:
                prior = (before.get("state") or {}).get("running") or {}
                same_run = before.get("restartCount") == state.restarts
                cstate = {"running": {"startedAt": (same_run and prior.get("startedAt")) or now}}
            last: dict[str, Any] = {}
            if state.last_terminated is not None:
                reason, code = state.last_terminated
                prior = (before.get("lastState") or {}).get("terminated") or {}
                if prior.get("reason") == reason and prior.get("exitCode") == code:
                    started, finished = prior.get("startedAt"), prior.get("finishedAt")
                else:
                    started, finished = start, now
                last = {
                    "terminated": {
                        "reason": reason,
                        "exitCode": code,
                        "startedAt": started,
                        "finishedAt": finished,
                        "containerID": f"fake://{pod['metadata']['uid']}-{cname}-previous",
                    }
                }
            image = container.get("image", "")
            entry: dict[str, Any] = {
                "name": cname,
                "image": image,
                "imageID": f"fake-registry/{image}@sha256:{'0' * 64}",
                "containerID": f"fake://{pod['metadata']['uid']}-{cname}",
                "ready": ready,
                "started": "running" in cstate,
                "restartCount": state.restarts,
                "state": cstate,
                "lastState": last,
            }
            if "waiting" in cstate and not state.restarts and not last:
                # Never started (image pull, config error): a kubelet knows no image digest
                # and no container yet. (The API drops an empty containerID, keeps imageID.)
                entry["imageID"] = ""
                del entry["containerID"]
            statuses.append(entry)
        all_ready = bool(statuses) and all(s["ready"] for s in statuses)
        old_conditions = {c.get("type"): c for c in old.get("conditions") or []}

        def condition(kind: str, ok: bool) -> dict[str, Any]:
            value = "True" if ok else "False"
            before = old_conditions.get(kind) or {}
            since = before.get("lastTransitionTime") if before.get("status") == value else None
            found: dict[str, Any] = {
                "type": kind,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": since or now,
            }
            if not ok:
                found["reason"] = "ContainersNotReady"
                found["message"] = "containers with unready status: [{}]".format(
                    " ".join(s["name"] for s in statuses if not s["ready"])
                )
            return found

        return {
            "phase": state.phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": start,
            "qosClass": old.get("qosClass") or "BestEffort",
            "conditions": [
                condition("Initialized", True),
                condition("Ready", all_ready),
                condition("ContainersReady", all_ready),
                condition("PodScheduled", True),
            ],
            "containerStatuses": statuses,
        }

    # -- what tests call -----------------------------------------------------------------------

    def behave(self, behaviour: Behaviour, *, deadline_s: float = 10.0) -> None:
        """Report every pod, from now on, as ``behaviour`` says; returns once every pod known
        now has been tended with it (its status written)."""
        barrier = threading.Event()
        with self._lock:
            self._behaviour = behaviour
            for key in list(self._cache):
                self._enqueue(key)
            self._queue.append(barrier)
            self._wake.notify_all()
        if not barrier.wait(deadline_s):
            raise TimeoutError(f"after {deadline_s}s: the fake kubelet applied a new behaviour")

    def pods(self, namespace: str, selector: dict[str, str] | None = None) -> list[Pod]:
        """The pods of ``namespace`` matching the label ``selector``, fresh from the API."""
        listed = self._api().get(f"/api/v1/namespaces/{namespace}/pods", params=_selector(selector))
        listed.raise_for_status()
        items: list[Pod] = listed.json().get("items") or []
        return items

    def wait_pods(
        self,
        namespace: str,
        selector: dict[str, str] | None,
        count: int,
        deadline_s: float = 30.0,
        predicate: Callable[[Pod], bool] | None = None,
    ) -> list[Pod]:
        """Wait until exactly ``count`` pods match ``selector`` and every one of them
        satisfies ``predicate`` (default: Running, Ready, not being deleted); return them."""
        check = predicate or is_ready

        def settled() -> list[Pod] | None:
            found = self.pods(namespace, selector)
            if len(found) == count and all(check(p) for p in found):
                return found or [{}]  # truthy even for count 0
            return None

        found = poll_until(
            settled,
            deadline_s=deadline_s,
            what=f"{count} pods {selector or {}} in {namespace} as wanted",
            interval=0.1,
        )
        return [p for p in found if p]

    def append_log(self, namespace: str, pod: str, line: str) -> None:
        """The pod's containers print ``line`` (seen by ``kubectl logs``, and ``-f``)."""
        self._book.append(namespace, pod, [line])
