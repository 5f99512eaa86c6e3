"""The kubernetes runtime's pure parts: pod status to signals and facts, quantities, selectors."""

from __future__ import annotations

from typing import Any

import pytest

from driftmend.drivers.kubernetes.observation import (
    EventLine,
    Snapshot,
    facts_of,
    health_known_in,
    signals_of,
    stats_rows,
)
from driftmend.drivers.kubernetes.quantities import cpu_quantity, memory_quantity, parse_quantity
from driftmend.drivers.kubernetes.views import Workload, matches, pods_of
from driftmend.signals import SIGNALS
from tests.unit.kube_objects import NOW, deployment, pod


def snap(dep: dict[str, Any], pods: list[dict[str, Any]], **kw: Any) -> Snapshot:
    w = Workload.of("Deployment", dep)
    return Snapshot(w, tuple(pods_of(w, pods)), **kw)


def test_a_healthy_deployment_is_running_and_healthy() -> None:
    s = signals_of(snap(deployment(), [pod("web-a"), pod("web-b")]), NOW)
    assert s["container.running"] is True
    assert s["container.healthy"] is True
    assert s["container.replicas_running"] == 2
    assert s["container.replicas_ready"] == 2
    assert s["container.replicas_desired"] == 2
    assert s["container.crash_looping"] is False
    assert s["container.exit_code"] is None
    assert s["container.oom_killed"] is False
    assert set(s) <= set(SIGNALS), set(s) - set(SIGNALS)


def test_a_crash_loop_is_not_running_and_names_its_reason() -> None:
    pods = [
        pod("web-a"),
        pod("web-b", waiting="CrashLoopBackOff", restarts=7, last=("Error", 1, NOW - 20)),
    ]
    snapshot = snap(deployment(ready=1), pods)
    s = signals_of(snapshot, NOW)
    assert s["container.running"] is False
    assert s["container.crash_looping"] is True
    assert s["container.restarts"] == 7
    assert s["container.exit_code"] == 1
    facts = facts_of(snapshot, NOW)
    assert facts["waiting_reason"] == "CrashLoopBackOff"
    assert "web-b" in facts["stuck"]
    assert facts["last_exit_reason"] == "Error (exit code 1)"


def test_a_container_the_kubelet_is_restarting_counts_as_running() -> None:
    # Terminated a moment ago and about to be restarted by the kubelet: Kubernetes heals
    # this alone, so it is not a drift of "running".
    restarting = pod("web-b", waiting="ContainerCreating", last=("Error", 2, NOW - 2))
    s = signals_of(snap(deployment(ready=1), [pod("web-a"), restarting]), NOW)
    assert s["container.running"] is True
    assert s["container.crash_looping"] is False
    assert s["container.exit_code"] == 2


@pytest.mark.parametrize(
    ("reason", "flag"),
    [
        ("ImagePullBackOff", "container.image_pull_failing"),
        ("ErrImagePull", "container.image_pull_failing"),
        ("CreateContainerConfigError", "container.config_error"),
        ("CrashLoopBackOff", "container.crash_looping"),
    ],
)
def test_each_stuck_reason_has_its_flag(reason: str, flag: str) -> None:
    s = signals_of(snap(deployment(replicas=1, ready=0), [pod("web-a", waiting=reason)]), NOW)
    assert s[flag] is True
    assert s["container.running"] is False
    others = {"container.image_pull_failing", "container.config_error", "container.crash_looping"}
    assert all(s[o] is False for o in others - {flag})


def test_an_oom_kill_the_kubelet_restarted_is_seen_while_recent() -> None:
    oom = pod("web-a", restarts=3, last=("OOMKilled", 137, NOW - 30))
    s = signals_of(snap(deployment(replicas=1, ready=1), [oom]), NOW)
    assert s["container.running"] is True
    assert s["container.oom_killed"] is True
    assert s["container.exit_code"] == 137
    old = pod("web-a", restarts=3, last=("OOMKilled", 137, NOW - 7200))
    s = signals_of(snap(deployment(replicas=1, ready=1), [old]), NOW)
    assert s["container.oom_killed"] is False  # history, not news


def test_unready_is_unknown_at_first_then_unhealthy() -> None:
    fresh = pod("web-a", ready=False, ready_since=NOW - 5)
    assert (
        signals_of(snap(deployment(replicas=1, ready=0), [fresh]), NOW)["container.healthy"] is None
    )
    stale = pod("web-a", ready=False, ready_since=NOW - 120)
    s = signals_of(snap(deployment(replicas=1, ready=0), [stale]), NOW)
    assert s["container.healthy"] is False
    assert s["container.running"] is True  # running, but not serving


def test_the_end_of_an_unready_grace_is_when_to_look_again() -> None:
    # No API change marks the grace's end, so the runtime asks for a pass then.
    dep = deployment(replicas=2, ready=1)
    fresh = pod("web-a", ready=False, ready_since=NOW - 5)
    fresher = pod("web-b", ready=False, ready_since=NOW - 2)
    assert health_known_in(snap(dep, [fresh, fresher]), NOW, 30.0) == pytest.approx(25.0)
    stale = pod("web-a", ready=False, ready_since=NOW - 31)
    assert health_known_in(snap(dep, [stale, fresher]), NOW, 30.0) is None  # known: unhealthy
    assert health_known_in(snap(dep, [pod("web-a"), pod("web-b")]), NOW, 30.0) is None


def test_a_stalled_rollout_is_flagged_with_its_message() -> None:
    dep = deployment(progressing=("False", "ProgressDeadlineExceeded"), updated=1)
    snapshot = snap(dep, [pod("web-a"), pod("web-b"), pod("web-new", waiting="ImagePullBackOff")])
    s = signals_of(snapshot, NOW)
    assert s["container.rollout_stalled"] is True
    assert s["container.running"] is True  # the old pods still serve
    assert s["container.image_pull_failing"] is True
    assert s["container.replicas_updated"] == 1
    assert facts_of(snapshot, NOW)["rollout"].startswith("ProgressDeadlineExceeded")


def test_no_metrics_server_is_said_and_cpu_is_absent() -> None:
    snapshot = snap(deployment(), [pod("web-a"), pod("web-b")], metrics_error="HTTP 404")
    s = signals_of(snapshot, NOW)
    assert s["container.metrics_available"] is False
    assert "container.cpu_percent" not in s
    assert "container.cpu_used_ratio" not in s
    assert "HTTP 404" in facts_of(snapshot, NOW)["metrics"]


def test_usage_against_the_template_limits_gives_the_ratios() -> None:
    dep = deployment(limits={"cpu": "500m", "memory": "256Mi"})
    usage = {
        "web-a": {"app": (0.45, 100 * 2**20)},
        "web-b": {"app": (0.10, 200 * 2**20)},
    }
    s = signals_of(snap(dep, [pod("web-a"), pod("web-b")], usage=usage), NOW)
    assert s["container.metrics_available"] is True
    assert s["container.cpu_percent"] == 55.0
    assert s["container.cpu_used_ratio"] == 0.9  # the worst pod against its limit
    assert s["container.memory_used_ratio"] == round(200 / 256, 4)
    assert s["container.memory_bytes"] == 300 * 2**20


def test_a_stopped_workload_still_wants_its_replicas() -> None:
    dep = deployment(replicas=0, ready=0, annotations={"driftmend.dev/stopped-replicas": "3"})
    snapshot = snap(dep, [])
    s = signals_of(snapshot, NOW)
    assert s["container.replicas_desired"] == 3
    assert s["container.running"] is False
    assert "from 3" in facts_of(snapshot, NOW)["stopped"]


def test_a_missing_workload_is_not_running_and_says_why() -> None:
    snapshot = Snapshot(None, missing="no Deployment shop/web")
    assert signals_of(snapshot, NOW)["container.running"] is False
    assert facts_of(snapshot, NOW)["missing"] == "no Deployment shop/web"


def test_pods_being_deleted_and_of_other_apps_are_not_the_workloads() -> None:
    w = Workload.of("Deployment", deployment())
    found = pods_of(w, [pod("web-a"), pod("web-old", deleting=True), pod("api-a", app="api")])
    assert [p.name for p in found] == ["web-a"]


def test_events_are_in_the_facts_warnings_first() -> None:
    events = (
        EventLine(NOW - 5, "Normal", "Pulled", "Pod/web-a", "pulled"),
        EventLine(NOW - 50, "Warning", "BackOff", "Pod/web-b", "Back-off restarting", count=9),
    )
    facts = facts_of(snap(deployment(), [pod("web-a")], events=events), NOW)
    assert facts["events"].startswith("Warning BackOff Pod/web-b: Back-off restarting (x9)")
    assert "Normal Pulled" in facts["events"]


def test_stats_rows_show_each_pod() -> None:
    rows = stats_rows(
        snap(deployment(), [pod("web-a", restarts=2)], usage={"web-a": {"app": (0.2, 1024)}}), NOW
    )
    assert rows[0]["pod"] == "web-a"
    assert rows[0]["restarts"] == 2
    assert rows[0]["cpu_percent"] == 20.0
    assert rows[0]["containers"][0]["state"] == "running"


@pytest.mark.parametrize(
    ("text", "value"),
    [("250m", 0.25), ("1", 1.0), ("1.5", 1.5), ("128Mi", 128 * 2**20), ("1G", 1e9),
     ("123456789n", 0.123456789), ("1e3", 1000.0), ("2Ki", 2048.0)],
)  # fmt: skip
def test_quantities_parse(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


def test_quantities_refuse_garbage_and_write_back() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("12 bananas")
    assert cpu_quantity(1.5) == "1500m"
    assert cpu_quantity(2.0) == "2"
    assert memory_quantity(256 * 2**20) == "256Mi"
    assert memory_quantity(1000) == "1000"


def test_label_selectors_with_expressions() -> None:
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert matches(sel, {"app": "web", "tier": "front"})
    assert not matches(sel, {"app": "web", "tier": "back"})
    assert not matches(sel, {"app": "web", "tier": "front", "canary": "1"})
    assert not matches({}, {"app": "web"})  # an empty selector selects nothing
