"""The fake kubelet and metrics-server against a real kube-apiserver + controller manager.

The controller manager is the real one: it makes ReplicaSets and pods of Deployments and
StatefulSets and computes their status from the pod status the fake kubelet writes, so these
tests show that what the fake writes is what Kubernetes' own controllers understand.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.integration.kubelet import FakeKubelet, PodState, is_ready
from tests.integration.metrics_server import MetricsServer, cpu_quantity, memory_quantity
from tests.k8s import ApiServer
from tests.services import poll_until

_names = itertools.count()


@pytest.fixture
def namespace(cluster: ApiServer, kubelet: FakeKubelet) -> Iterator[str]:
    """A fresh namespace; the default behaviour again after the test."""
    name = f"fk-{next(_names)}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubelet.behave(lambda pod: PodState())


def deployment(cluster: ApiServer, namespace: str, name: str, replicas: int = 2) -> None:
    """Create a Deployment of one container named ``app``."""
    cluster.kubectl(
        "-n", namespace, "create", "deployment", name,
        "--image=registry.example/web:1", f"--replicas={replicas}",
    )  # fmt: skip


def test_node_is_registered_ready_with_its_log_port(
    cluster: ApiServer, kubelet: FakeKubelet
) -> None:
    node = cluster.get_json("node", "kubelet-0")
    status = node["status"]
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    assert status["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"}]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.log_port
    assert status["allocatable"]["pods"] == "110"
    assert not node["spec"].get("taints")


def test_deployment_pods_run_and_the_deployment_becomes_available(
    cluster: ApiServer, kubelet: FakeKubelet, namespace: str
) -> None:
    deployment(cluster, namespace, "web")
    pods = kubelet.wait_pods(namespace, {"app": "web"}, 2, deadline_s=20)
    for pod in pods:
        assert pod["spec"]["nodeName"] == "kubelet-0"
        status = pod["status"]
        assert status["hostIP"] == status["podIP"] == "127.0.0.1"
        assert status["startTime"]
        kinds = {c["type"]: c["status"] for c in status["conditions"]}
        assert kinds == {
            "PodScheduled": "True",
            "Initialized": "True",
            "ContainersReady": "True",
            "Ready": "True",
        }
        [container] = status["containerStatuses"]
        assert container["name"] == "web"
        assert container["image"] == "registry.example/web:1"
        assert container["ready"] is True and container["started"] is True
        assert container["restartCount"] == 0
        assert container["state"]["running"]["startedAt"]

    def available() -> dict[str, Any] | None:
        status = cluster.get_json("-n", namespace, "deployment", "web")["status"]
        ok = status.get("readyReplicas") == 2 and status.get("availableReplicas") == 2
        return status if ok else None

    poll_until(available, deadline_s=20, what="deployment web has 2 ready, available replicas")


def test_rollout_restart_completes(
    cluster: ApiServer, kubelet: FakeKubelet, namespace: str
) -> None:
    deployment(cluster, namespace, "roll")
    old = {p["metadata"]["name"] for p in kubelet.wait_pods(namespace, {"app": "roll"}, 2)}
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/roll", "--timeout=20s")
    old_rs = {rs["metadata"]["name"] for rs in cluster.get_json("-n", namespace, "rs")["items"]}
    assert len(old_rs) == 1

    cluster.kubectl("-n", namespace, "rollout", "restart", "deployment/roll")
    # rollout status exits 0 only once the new ReplicaSet is fully rolled out.
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/roll", "--timeout=40s")

    new = kubelet.wait_pods(
        namespace,
        {"app": "roll"},
        2,
        deadline_s=20,
        predicate=lambda p: is_ready(p) and p["metadata"]["name"] not in old,
    )
    assert len({p["metadata"]["name"] for p in new} & old) == 0
    sets = {rs["metadata"]["name"]: rs for rs in cluster.get_json("-n", namespace, "rs")["items"]}
    [fresh] = set(sets) - old_rs
    assert sets[fresh]["status"].get("readyReplicas") == 2
    [stale] = old_rs
    assert sets[stale]["spec"]["replicas"] == 0
    assert not sets[stale]["status"].get("replicas")


def test_a_crash_loop_shows_in_the_pods_and_the_deployment(
    cluster: ApiServer, kubelet: FakeKubelet, namespace: str
) -> None:
    deployment(cluster, namespace, "crash")
    kubelet.wait_pods(namespace, {"app": "crash"}, 2)

    def crashing(pod: dict[str, Any]) -> PodState:
        if pod["metadata"]["namespace"] != namespace:
            return PodState()
        return PodState(
            ready=False,
            restarts=4,
            waiting="CrashLoopBackOff",
            waiting_message="back-off 40s restarting failed container",
            last_terminated=("OOMKilled", 137),
        )

    kubelet.behave(crashing)
    # behave returns once every known pod has been written: no waiting needed here.
    pods = kubelet.pods(namespace, {"app": "crash"})
    assert len(pods) == 2
    for pod in pods:
        [container] = pod["status"]["containerStatuses"]
        assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert container["ready"] is False and container["started"] is False
        assert container["restartCount"] == 4
        assert container["lastState"]["terminated"]["reason"] == "OOMKilled"
        assert container["lastState"]["terminated"]["exitCode"] == 137
        kinds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert kinds["Ready"] == "False" and kinds["ContainersReady"] == "False"

    def unready() -> bool:
        status = cluster.get_json("-n", namespace, "deployment", "crash")["status"]
        return not status.get("readyReplicas") and status.get("unavailableReplicas") == 2

    poll_until(unready, deadline_s=20, what="deployment crash has no ready replica")

    # And back: the default behaviour heals them.
    kubelet.behave(lambda pod: PodState())
    kubelet.wait_pods(namespace, {"app": "crash"}, 2)


def test_kubectl_logs_reads_the_lines_through_the_api_server(
    cluster: ApiServer, kubelet: FakeKubelet, namespace: str
) -> None:
    deployment(cluster, namespace, "talk", replicas=1)
    [pod] = kubelet.wait_pods(namespace, {"app": "talk"}, 1)
    name = pod["metadata"]["name"]
    kubelet.append_log(namespace, name, "first line")
    kubelet.append_log(namespace, name, "second line")
    assert cluster.kubectl("-n", namespace, "logs", name).stdout == "first line\nsecond line\n"
    assert cluster.kubectl("-n", namespace, "logs", name, "--tail=1").stdout == "second line\n"
    stamped = cluster.kubectl("-n", namespace, "logs", name, "--timestamps").stdout
    assert stamped.splitlines()[0].endswith("Z first line")

    with subprocess.Popen(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "logs", "-f", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as follower:
        # A hung follower is killed, so a missing line fails the test instead of blocking it.
        guard = threading.Timer(20, follower.kill)
        guard.start()
        try:
            assert follower.stdout is not None
            assert follower.stdout.readline() == "first line\n"
            assert follower.stdout.readline() == "second line\n"
            kubelet.append_log(namespace, name, "third line, while following")
            assert follower.stdout.readline() == "third line, while following\n"
        finally:
            guard.cancel()
            follower.terminate()


def test_pod_state_logs_are_served(
    cluster: ApiServer, kubelet: FakeKubelet, namespace: str
) -> None:
    deployment(cluster, namespace, "oom", replicas=1)
    kubelet.wait_pods(namespace, {"app": "oom"}, 1)
    kubelet.behave(
        lambda pod: (
            PodState(
                ready=False,
                restarts=1,
                waiting="CrashLoopBackOff",
                last_terminated=("OOMKilled", 137),
                logs=["allocating buffers", "fatal: out of memory"],
            )
            if pod["metadata"]["namespace"] == namespace
            else PodState()
        )
    )
    [pod] = kubelet.pods(namespace, {"app": "oom"})
    out = cluster.kubectl("-n", namespace, "logs", pod["metadata"]["name"]).stdout
    assert out == "allocating buffers\nfatal: out of memory\n"


def test_a_statefulset_pod_runs(cluster: ApiServer, kubelet: FakeKubelet, namespace: str) -> None:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "registry.example/db:1"}]},
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    [pod] = kubelet.wait_pods(namespace, {"app": "db"}, 1, deadline_s=20)
    assert pod["metadata"]["name"] == "db-0"

    def ready() -> bool:
        status = cluster.get_json("-n", namespace, "statefulset", "db")["status"]
        return bool(status.get("readyReplicas") == 1)

    poll_until(ready, deadline_s=20, what="statefulset db has 1 ready replica")


def test_metrics_server_speaks_metrics_k8s_io() -> None:
    with MetricsServer() as metrics:
        metrics.set_usage("ns1", "web-1", "app", 0.25, 64 * 1024 * 1024, labels={"app": "web"})
        metrics.set_usage("ns1", "web-1", "sidecar", 0.123456789, 12345 * 1024)
        metrics.set_usage("ns1", "job-1", "app", 1.0, 1000, labels={"app": "job"})
        metrics.set_usage("ns2", "other", "app", 0.5, 2048)
        base = f"{metrics.url}/apis/metrics.k8s.io/v1beta1"
        with httpx2.Client(timeout=5, trust_env=False) as http:
            discovery = http.get(base).json()
            assert discovery["kind"] == "APIResourceList"
            assert {r["name"] for r in discovery["resources"]} == {"pods", "nodes"}

            listed = http.get(f"{base}/namespaces/ns1/pods").json()
            assert listed["kind"] == "PodMetricsList"
            assert [i["metadata"]["name"] for i in listed["items"]] == ["job-1", "web-1"]

            selected = http.get(
                f"{base}/namespaces/ns1/pods", params={"labelSelector": "app=web"}
            ).json()
            [web] = selected["items"]
            assert web["kind"] == "PodMetrics" and web["window"] == "30s"
            usage = {c["name"]: c["usage"] for c in web["containers"]}
            assert usage == {
                "app": {"cpu": "250m", "memory": "65536Ki"},
                "sidecar": {"cpu": "123456789n", "memory": "12345Ki"},
            }

            one = http.get(f"{base}/namespaces/ns2/pods/other")
            assert one.status_code == 200
            assert one.json()["containers"] == [
                {"name": "app", "usage": {"cpu": "500m", "memory": "2Ki"}}
            ]
            missing = http.get(f"{base}/namespaces/ns2/pods/never-set")
            assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
    assert cpu_quantity(0) == "0" and memory_quantity(1000) == "1000"
