"""A fake metrics-server: the metrics.k8s.io v1beta1 API over plain HTTP on 127.0.0.1.

The API server of ``tests/k8s.py`` has no metrics-server. This one serves what a client of
metrics-server reads, with the values the test sets: discovery (``/apis/metrics.k8s.io/v1beta1``,
an APIResourceList), ``PodMetricsList`` per namespace (or all) with an optional
``labelSelector``, and one pod's ``PodMetrics``. Quantities look like metrics-server's: cpu in
millicores ("250m") when whole, else nanocores ("123456789n"); memory in "Ki" when a
multiple of 1024, else bytes. A pod with no usage set is absent, as a pod not yet scraped is.
It is reached at ``.url`` directly, not through the API server's aggregation layer.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["MetricsServer", "cpu_quantity", "matches_selector", "memory_quantity"]

GROUP_VERSION = "metrics.k8s.io/v1beta1"
PREFIX = "/apis/metrics.k8s.io/v1beta1"


def cpu_quantity(cores: float) -> str:
    """Cores as metrics-server writes them: "250m" when whole millicores, else nanocores."""
    nanos = round(cores * 1e9)
    if nanos == 0:
        return "0"
    if nanos % 1_000_000 == 0:
        return f"{nanos // 1_000_000}m"
    return f"{nanos}n"


def memory_quantity(value: int) -> str:
    """Bytes as metrics-server writes them: "12345Ki" when whole KiB, else plain bytes."""
    if value == 0:
        return "0"
    return f"{value // 1024}Ki" if value % 1024 == 0 else str(value)


_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _terms(selector: str) -> list[str]:
    # Commas inside "in (a,b)" do not separate terms.
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def matches_selector(labels: Mapping[str, str], selector: str) -> bool:
    """Whether ``labels`` match a Kubernetes label selector string (``a=b``, ``a==b``,
    ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x,y)``, comma-joined)."""
    for term in _terms(selector):
        found = _SET.match(term)
        if found:
            key, op, values = found.groups()
            wanted = {v.strip() for v in values.split(",") if v.strip()}
            if op == "in" and labels.get(key) not in wanted:
                return False
            if op == "notin" and key in labels and labels[key] in wanted:
                return False
        elif "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class _PodUsage:
    labels: dict[str, str] = field(default_factory=dict)
    containers: dict[str, tuple[float, int]] = field(default_factory=dict)
    timestamp: str = ""


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MetricsServer:
    """metrics.k8s.io v1beta1 on 127.0.0.1, in a thread; a context manager, or
    ``start()`` / ``stop()``. Values come from ``set_usage``."""

    def __init__(self, window: str = "30s") -> None:
        """A server whose readings each claim to cover ``window``."""
        self.window = window
        self._pods: dict[tuple[str, str], _PodUsage] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        """The server's base address, e.g. ``http://127.0.0.1:PORT``."""
        assert self._server is not None, "the metrics server is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def set_usage(
        self,
        namespace: str,
        pod: str,
        container: str,
        cpu_cores: float,
        memory_bytes: int,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """One container's current usage; ``labels`` (the pod's, for ``labelSelector``)
        replace those known for the pod when given."""
        with self._lock:
            usage = self._pods.setdefault((namespace, pod), _PodUsage())
            usage.containers[container] = (cpu_cores, memory_bytes)
            usage.timestamp = _stamp()
            if labels is not None:
                usage.labels = dict(labels)

    def clear(self, namespace: str, pod: str | None = None) -> None:
        """Forget one pod's usage, or a whole namespace's."""
        with self._lock:
            for key in [k for k in self._pods if k[0] == namespace and pod in (None, k[1])]:
                del self._pods[key]

    def _pod_metrics(self, namespace: str, name: str, usage: _PodUsage) -> dict[str, Any]:
        return {
            "kind": "PodMetrics",
            "apiVersion": GROUP_VERSION,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": _stamp(),
                "labels": dict(usage.labels),
            },
            "timestamp": usage.timestamp,
            "window": self.window,
            "containers": [
                {
                    "name": container,
                    "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)},
                }
                for container, (cpu, memory) in sorted(usage.containers.items())
            ],
        }

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for a GET of ``path`` (with its query)."""
        url = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = url.path.rstrip("/")
        if route == PREFIX:
            return 200, _DISCOVERY
        if route == "/apis/metrics.k8s.io":
            return 200, _GROUP
        parts = route[len(PREFIX) :].strip("/").split("/") if route.startswith(PREFIX) else []
        with self._lock:
            pods = dict(self._pods)
        if parts == ["pods"] or (
            len(parts) == 3 and parts[0] == "namespaces" and parts[2] == "pods"
        ):
            namespace = parts[1] if len(parts) == 3 else None
            selector = query.get("labelSelector", "")
            items = [
                self._pod_metrics(ns, name, usage)
                for (ns, name), usage in sorted(pods.items())
                if namespace in (None, ns) and matches_selector(usage.labels, selector)
            ]
            return 200, {
                "kind": "PodMetricsList",
                "apiVersion": GROUP_VERSION,
                "metadata": {},
                "items": items,
            }
        if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "pods":
            found = pods.get((parts[1], parts[3]))
            if found is not None:
                return 200, self._pod_metrics(parts[1], parts[3], found)
            return 404, _not_found(f'podmetrics.metrics.k8s.io "{parts[3]}" not found')
        if parts == ["nodes"]:
            return 200, {
                "kind": "NodeMetricsList",
                "apiVersion": GROUP_VERSION,
                "metadata": {},
                "items": [],
            }
        return 404, _not_found(f"the server could not find the requested resource ({url.path})")

    def start(self) -> MetricsServer:
        """Listen on a free port of 127.0.0.1 and serve in a daemon thread."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads ``requests`` instead

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status, body = outer.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-metrics-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _not_found(message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NotFound",
        "code": 404,
    }


_GROUP = {
    "kind": "APIGroup",
    "apiVersion": "v1",
    "name": "metrics.k8s.io",
    "versions": [{"groupVersion": GROUP_VERSION, "version": "v1beta1"}],
    "preferredVersion": {"groupVersion": GROUP_VERSION, "version": "v1beta1"},
}

_DISCOVERY = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": GROUP_VERSION,
    "resources": [
        {
            "name": "nodes",
            "singularName": "",
            "namespaced": False,
            "kind": "NodeMetrics",
            "verbs": ["get", "list"],
        },
        {
            "name": "pods",
            "singularName": "",
            "namespaced": True,
            "kind": "PodMetrics",
            "verbs": ["get", "list"],
        },
    ],
}
