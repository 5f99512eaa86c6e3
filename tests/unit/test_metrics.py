"""Metrics: each method moves exactly its samples, on a fresh registry per test."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftmend.metrics import Metrics, render
from driftmend.model import Health, Outcome, ToolStatus


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry except ``_created`` timestamps, which always move."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def changed(before: dict, after: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in after.items() if before.get(k) != v}


def test_observe_reconcile(registry: CollectorRegistry, metrics: Metrics) -> None:
    before = samples(registry)
    metrics.observe_reconcile("Container", Outcome.IN_SYNC, 0.02)
    diff = changed(before, samples(registry))
    g = registry.get_sample_value
    assert g("driftmend_reconcile_total", {"kind": "Container", "result": "in-sync"}) == 1
    assert g("driftmend_reconcile_duration_seconds_count", {"kind": "Container"}) == 1
    assert g("driftmend_reconcile_duration_seconds_sum", {"kind": "Container"}) == 0.02
    assert (
        g("driftmend_reconcile_duration_seconds_bucket", {"kind": "Container", "le": "0.01"}) == 0
    )
    assert (
        g("driftmend_reconcile_duration_seconds_bucket", {"kind": "Container", "le": "0.025"}) == 1
    )
    assert g("driftmend_reconcile_errors_total", {"kind": "Container"}) is None
    assert {name for name, _ in diff} == {
        "driftmend_reconcile_total",
        "driftmend_reconcile_duration_seconds_bucket",
        "driftmend_reconcile_duration_seconds_count",
        "driftmend_reconcile_duration_seconds_sum",
    }

    metrics.observe_reconcile("Container", Outcome.ERROR, 0.5)
    assert g("driftmend_reconcile_total", {"kind": "Container", "result": "error"}) == 1
    assert g("driftmend_reconcile_errors_total", {"kind": "Container"}) == 1


def test_drift_detected(registry: CollectorRegistry, metrics: Metrics) -> None:
    before = samples(registry)
    metrics.drift_detected("RedisCache", "redis.memory_used_ratio")
    metrics.drift_detected("RedisCache", "redis.memory_used_ratio")
    labels = {"kind": "RedisCache", "signal": "redis.memory_used_ratio"}
    assert registry.get_sample_value("driftmend_drift_detected_total", labels) == 2
    assert list(changed(before, samples(registry))) == [
        ("driftmend_drift_detected_total", tuple(sorted(labels.items())))
    ]


def test_fix_step_and_fix_finished(registry: CollectorRegistry, metrics: Metrics) -> None:
    g = registry.get_sample_value
    before = samples(registry)
    metrics.fix_step("docker_restart", ToolStatus.OK)
    metrics.fix_step("docker_restart", ToolStatus.ERROR)
    assert g("driftmend_fix_total", {"tool": "docker_restart", "outcome": "ok"}) == 1
    assert g("driftmend_fix_total", {"tool": "docker_restart", "outcome": "error"}) == 1
    assert {name for name, _ in changed(before, samples(registry))} == {"driftmend_fix_total"}

    before = samples(registry)
    metrics.fix_finished("Container", "rules", Outcome.FIXED, 1.5, 7.0)
    assert (
        g("driftmend_fixes_total", {"kind": "Container", "source": "rules", "outcome": "fixed"})
        == 1
    )
    assert g("driftmend_time_to_detect_seconds_sum", {"kind": "Container"}) == 1.5
    assert g("driftmend_time_to_recover_seconds_sum", {"kind": "Container"}) == 7.0
    assert g("driftmend_time_to_recover_seconds_bucket", {"kind": "Container", "le": "5.0"}) == 0
    assert g("driftmend_time_to_recover_seconds_bucket", {"kind": "Container", "le": "10.0"}) == 1
    assert g("driftmend_time_to_recover_seconds_bucket", {"kind": "Container", "le": "0.1"}) == 0
    assert g("driftmend_time_to_recover_seconds_bucket", {"kind": "Container", "le": "600.0"}) == 1
    assert {name.rsplit("_", 1)[0] for name, _ in changed(before, samples(registry))} == {
        "driftmend_fixes",
        "driftmend_time_to_detect_seconds",
        "driftmend_time_to_recover_seconds",
    }

    # Not recovered: counted, but no time to recover is observed.
    metrics.fix_finished("Container", "gemini", Outcome.FAILED, 2.0, None)
    assert (
        g("driftmend_fixes_total", {"kind": "Container", "source": "gemini", "outcome": "failed"})
        == 1
    )
    assert g("driftmend_time_to_recover_seconds_count", {"kind": "Container"}) == 1
    assert g("driftmend_time_to_detect_seconds_count", {"kind": "Container"}) == 2


def test_guard_queue_workers(registry: CollectorRegistry, metrics: Metrics) -> None:
    g = registry.get_sample_value
    metrics.guard_decision(True)
    metrics.guard_decision(False)
    metrics.guard_decision(False)
    assert g("driftmend_guard_decisions_total", {"decision": "admitted"}) == 1
    assert g("driftmend_guard_decisions_total", {"decision": "rejected"}) == 2
    metrics.set_queue_depth(3)
    metrics.set_workers_busy(2)
    assert g("driftmend_queue_depth") == 3
    assert g("driftmend_workers_busy") == 2


def test_health_is_a_state_set(registry: CollectorRegistry, metrics: Metrics) -> None:
    def health(key: str, kind: str = "Container") -> dict[str, float | None]:
        return {
            h.value: registry.get_sample_value(
                "driftmend_resource_health", {"key": key, "kind": kind, "health": h.value}
            )
            for h in Health
        }

    metrics.set_health("Container/web", "Container", Health.HEALTHY)
    assert health("Container/web") == {
        "healthy": 1,
        "drifting": 0,
        "healing": 0,
        "needs-operator": 0,
        "unknown": 0,
    }
    metrics.set_health("Container/web", "Container", Health.HEALING)
    assert health("Container/web") == {
        "healthy": 0,
        "drifting": 0,
        "healing": 1,
        "needs-operator": 0,
        "unknown": 0,
    }
    metrics.set_health("Container/other", "Container", Health.DRIFTING)
    assert health("Container/web")["healing"] == 1  # another resource leaves this one alone


def test_signals_and_forget(registry: CollectorRegistry, metrics: Metrics) -> None:
    def signal(key: str, name: str) -> float | None:
        return registry.get_sample_value("driftmend_resource_signal", {"key": key, "signal": name})

    key = "PostgresDatabase/db"
    metrics.set_signals(
        key, {"postgres.up": True, "postgres.connections_used": 7, "postgres.ratio": 0.5}
    )
    assert signal(key, "postgres.up") == 1.0
    assert signal(key, "postgres.connections_used") == 7
    assert signal(key, "postgres.ratio") == 0.5

    # An unreadable (None) or missing signal disappears instead of keeping a stale value.
    metrics.set_signals(key, {"postgres.up": False, "postgres.connections_used": None})
    assert signal(key, "postgres.up") == 0.0
    assert signal(key, "postgres.connections_used") is None
    assert signal(key, "postgres.ratio") is None

    metrics.set_health(key, "PostgresDatabase", Health.DRIFTING)
    metrics.set_health("Container/web", "Container", Health.HEALTHY)
    metrics.set_signals("Container/web", {"container.running": True})
    metrics.forget(key)
    remaining = samples(registry)
    assert not any(dict(labels).get("key") == key for _, labels in remaining)
    assert signal("Container/web", "container.running") == 1.0
    assert (
        registry.get_sample_value(
            "driftmend_resource_health",
            {"key": "Container/web", "kind": "Container", "health": "healthy"},
        )
        == 1
    )
    metrics.forget(key)  # forgetting twice is harmless
    metrics.forget("Container/never-seen")


def test_kind_change_drops_old_health_labels(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.set_health("x/y", "Container", Health.HEALTHY)
    metrics.set_health("x/y", "RedisCache", Health.HEALTHY)
    assert (
        registry.get_sample_value(
            "driftmend_resource_health", {"key": "x/y", "kind": "Container", "health": "healthy"}
        )
        is None
    )


def test_llm_request(registry: CollectorRegistry, metrics: Metrics) -> None:
    g = registry.get_sample_value
    before = samples(registry)
    metrics.llm_request("gemini", "ok", 1.2, tokens_in=300, tokens_out=40)
    metrics.llm_request("gemini", "error", 0.3)
    assert g("driftmend_llm_requests_total", {"planner": "gemini", "outcome": "ok"}) == 1
    assert g("driftmend_llm_requests_total", {"planner": "gemini", "outcome": "error"}) == 1
    assert g("driftmend_llm_tokens_total", {"planner": "gemini", "direction": "in"}) == 300
    assert g("driftmend_llm_tokens_total", {"planner": "gemini", "direction": "out"}) == 40
    assert g("driftmend_llm_latency_seconds_count", {"planner": "gemini"}) == 2
    assert g("driftmend_llm_latency_seconds_sum", {"planner": "gemini"}) == pytest.approx(1.5)
    assert {name.rsplit("_", 1)[0] for name, _ in changed(before, samples(registry))} == {
        "driftmend_llm_requests",
        "driftmend_llm_tokens",
        "driftmend_llm_latency_seconds",
    }


def test_render_parses(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.observe_reconcile("Container", Outcome.FIXED, 0.1)
    metrics.set_health("Container/web", "Container", Health.HEALTHY)
    metrics.set_signals("Container/web", {"container.cpu_percent": 12.5})
    metrics.fix_finished("Container", "rules", Outcome.FIXED, 1.0, 2.0)
    body, content_type = render(registry)
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["driftmend_reconcile"].type == "counter"
    assert families["driftmend_reconcile_duration_seconds"].type == "histogram"
    assert families["driftmend_resource_health"].type == "gauge"
    assert families["driftmend_queue_depth"].type == "gauge"
    signal = families["driftmend_resource_signal"].samples[0]
    assert signal.labels == {"key": "Container/web", "signal": "container.cpu_percent"}
    assert signal.value == 12.5


def test_metrics_are_per_registry() -> None:
    # Two controllers (or two tests) never share a registry, so no duplicate-name error.
    a, b = CollectorRegistry(), CollectorRegistry()
    Metrics(a).guard_decision(True)
    Metrics(b)
    assert b.get_sample_value("driftmend_guard_decisions_total", {"decision": "admitted"}) is None


def test_leader_gauge_and_transitions(registry: CollectorRegistry, metrics: Metrics) -> None:
    g = registry.get_sample_value
    assert g("driftmend_leader_transitions_total") == 0
    metrics.set_leader("pod-a", True)
    metrics.leader_transition()
    assert g("driftmend_leader", {"identity": "pod-a"}) == 1
    assert g("driftmend_leader_transitions_total") == 1
    metrics.set_leader("pod-a", False)
    assert g("driftmend_leader", {"identity": "pod-a"}) == 0


def test_the_per_resource_series_are_exposed_as_prometheus_client_would() -> None:
    """``render`` writes the per-resource gauges from their kept text (issue 15); what it
    writes must parse to the very samples the registry's ordinary collection yields."""
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.set_health('Container/we"ird\\key', "Container", Health.DRIFTING)
    m.set_signals(
        'Container/we"ird\\key', {"container.running": False, "container.cpu_percent": None}
    )
    m.set_health("RedisCache/cache", "RedisCache", Health.HEALTHY)
    m.set_signals("RedisCache/cache", {"redis.up": True, "redis.used_memory_bytes": 1_800_000})
    m.set_signals("RedisCache/cache", {"redis.up": True, "redis.used_memory_bytes": 2_500_000})
    m.set_health("Container/gone", "Container", Health.HEALTHY)
    m.forget("Container/gone")

    def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for family in text_string_to_metric_families(text)
            if family.name.startswith("driftmend_resource_")
            for s in family.samples
        }

    body, _ = render(registry)
    fast = samples(body.decode())
    assert fast == samples(generate_latest(registry).decode())
    signal = {(dict(lbl)["key"], dict(lbl)["signal"]): v for n, lbl, v in fast if "signal" in n}
    assert signal == {
        ('Container/we"ird\\key', "container.running"): 0.0,  # None: no series at all
        ("RedisCache/cache", "redis.up"): 1.0,
        ("RedisCache/cache", "redis.used_memory_bytes"): 2_500_000.0,  # the latest value
    }
    assert not any(dict(lbl)["key"] == "Container/gone" for _, lbl, _ in fast)
    assert body.count(b"# TYPE driftmend_resource_signal gauge") == 1
