"""The kubernetes runtime's writes, pure: restart, scale, limits and rollback patches."""

from __future__ import annotations

from typing import Any

import pytest

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
from driftmend.drivers.kubernetes.views import Pod, Workload
from driftmend.errors import RefusedError
from driftmend.spec import Container
from tests.unit.kube_objects import NOW, deployment, pod, replicaset


def container(limits: dict[str, Any] | None = None) -> Container:
    return Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "runtime": "kubernetes",
                "kubernetes": {"name": "web"},
                "limits": limits or {},
            },
        }
    )


def test_restart_is_kubectls_rollout_restart() -> None:
    patch = restart_patch("2026-12-05T10:00:00Z")
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"kubectl.kubernetes.io/restartedAt": "2026-12-05T10:00:00Z"}


def test_one_bad_pod_among_good_ones_is_deleted_alone() -> None:
    pods = [
        Pod.of(pod("web-a")),
        Pod.of(pod("web-b", waiting="CrashLoopBackOff")),
        Pod.of(pod("web-c")),
    ]
    bad = one_bad_pod(pods, 3, NOW, 30)
    assert bad is not None and bad.name == "web-b"


def test_two_bad_pods_or_one_replica_mean_a_rollout_restart() -> None:
    two = [
        Pod.of(pod("web-a", waiting="CrashLoopBackOff")),
        Pod.of(pod("web-b", waiting="CrashLoopBackOff")),
    ]
    assert one_bad_pod(two, 2, NOW, 30) is None
    assert one_bad_pod([Pod.of(pod("web-a", waiting="CrashLoopBackOff"))], 1, NOW, 30) is None
    unready_long = [Pod.of(pod("web-a")), Pod.of(pod("web-b", ready=False, ready_since=NOW - 90))]
    found = one_bad_pod(unready_long, 2, NOW, 30)
    assert found is not None and found.name == "web-b"
    unready_briefly = [Pod.of(pod("web-a")), Pod.of(pod("web-b", ready=False, ready_since=NOW - 5))]
    assert one_bad_pod(unready_briefly, 2, NOW, 30) is None


def test_a_statefulset_replica_is_its_ordinal() -> None:
    pods = [Pod.of(pod("db-0")), Pod.of(pod("db-1")), Pod.of(pod("db-2"))]
    found = replica_pod(pods, 1)
    assert found is not None and found.name == "db-1"
    assert replica_pod(pods, 7) is None


def test_scale_sets_and_clears_the_stop_annotation() -> None:
    stop = scale_patch(0, stopped_from=3)
    assert stop["spec"]["replicas"] == 0
    assert stop["metadata"]["annotations"]["driftmend.dev/stopped-replicas"] == "3"
    assert scale_patch(3)["metadata"]["annotations"]["driftmend.dev/stopped-replicas"] is None


def test_limits_raise_needs_a_cap_and_stays_within_it() -> None:
    w = Workload.of("Deployment", deployment(limits={"memory": "128Mi", "cpu": "500m"}))
    current = w.containers[0]
    with pytest.raises(RefusedError, match=r"needs limits.memoryCap"):
        check_limits(container(), current, None, 256 * 2**20, None)
    capped = container({"memoryCap": "256Mi", "cpuCap": 1})
    check_limits(capped, current, 1.0, 256 * 2**20, None)  # within the caps
    with pytest.raises(RefusedError, match=r"above limits.memoryCap"):
        check_limits(capped, current, None, 512 * 2**20, None)
    with pytest.raises(RefusedError, match=r"above limits.cpuCap"):
        check_limits(capped, current, 2.0, None, None)


def test_limits_lowering_stops_at_the_floor() -> None:
    current = Workload.of("Deployment", deployment(limits={"memory": "512Mi"})).containers[0]
    check_limits(container(), current, None, 256 * 2**20, 100 * 2**20)  # lowering: no cap needed
    with pytest.raises(RefusedError, match=r"below the floor"):
        check_limits(container(), current, None, 110 * 2**20, 100 * 2**20)
    with pytest.raises(RefusedError, match=r"below the floor of 0.1"):
        check_limits(container(), current, 0.05, None, None)


def test_limits_patch_merges_the_named_container_and_keeps_requests_below() -> None:
    w = Workload.of(
        "Deployment", deployment(limits={"memory": "512Mi"}, requests={"memory": "512Mi"})
    )
    patch = limits_patch(w.containers[0], None, 256 * 2**20)
    (entry,) = patch["spec"]["template"]["spec"]["containers"]
    assert entry["name"] == "app"
    assert entry["resources"] == {"limits": {"memory": "256Mi"}, "requests": {"memory": "256Mi"}}


def test_deployment_rollback_takes_the_previous_revisions_template() -> None:
    dep = deployment(revision=3)
    sets = [
        replicaset("web-11111", 1, "shop:1"),
        replicaset("web-22222", 2, "shop:2"),
        replicaset("web-33333", 3, "shop:3-broken"),
        replicaset("api-44444", 9, "api:1", owner="someone-else"),
    ]
    before, after, template = deployment_rollback(dep, sets)
    assert (before, after) == (3, 2)
    assert template["spec"]["containers"][0]["image"] == "shop:2"
    assert "pod-template-hash" not in template["metadata"]["labels"]


def test_a_deployment_without_history_cannot_roll_back() -> None:
    with pytest.raises(RefusedError, match=r"no revision before 1"):
        deployment_rollback(deployment(revision=1), [replicaset("web-11111", 1, "shop:1")])


def test_statefulset_rollback_applies_the_previous_controller_revision() -> None:
    sts = {
        "metadata": {"name": "db", "namespace": "shop", "uid": "sts"},
        "status": {"updateRevision": "db-3", "currentRevision": "db-2"},
    }

    def rev(name: str, n: int, image: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "ownerReferences": [{"uid": "sts", "controller": True}]},
            "revision": n,
            "data": {"spec": {"template": {"spec": {"containers": [{"image": image}]}}}},
        }

    before, after, data = statefulset_rollback(
        sts, [rev("db-1", 1, "pg:1"), rev("db-2", 2, "pg:2"), rev("db-3", 3, "pg:3")]
    )
    assert (before, after) == (3, 2)
    assert data["spec"]["template"]["spec"]["containers"][0]["image"] == "pg:2"
