"""The status publisher: what it sends the API server, read from a real (SQLite) store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driftmend.kube.publisher import StatusPublisher
from driftmend.kube.status import KubeEvent
from driftmend.model import Health, Plan, PlanStep
from driftmend.sources.kubernetes import CustomResource, KubernetesSource
from driftmend.store import Store
from tests.unit.test_kubernetes_source import CHECK, _container, _policy

KEY = "Container/shop/app"
NOW = 1_800_000_000.0


class Recorder:
    """A ``KubeWrites`` that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.events: list[tuple[str, KubeEvent]] = []

    async def patch_status(self, ref: CustomResource, status: Mapping[str, Any]) -> None:
        self.patches.append((ref.name, dict(status)))

    async def post_event(self, ref: CustomResource, event: KubeEvent) -> None:
        self.events.append((ref.name, event))


def _rig(tmp_path: Path) -> tuple[Store, Recorder, StatusPublisher, KubernetesSource]:
    store = Store(tmp_path / "driftmend.db")
    source = KubernetesSource(lambda _: None, CHECK)
    source.put(_container())
    source.put(_policy())
    api = Recorder()
    clock = iter(NOW + i for i in range(1000))
    publisher = StatusPublisher(source=source, store=store, api=api, clock=lambda: next(clock))
    return store, api, publisher, source


def test_a_status_is_sent_when_it_changes_and_only_then(tmp_path: Path) -> None:
    store, api, publisher, _ = _rig(tmp_path)
    store.resource_records.upsert_resource(KEY, "Container", {}, Health.HEALTHY, {}, NOW, "in sync")
    assert asyncio.run(publisher.publish_once()) == 2  # the Container and the policy
    by_name = dict(api.patches)
    assert by_name["app"]["health"] == "healthy"
    assert by_name["app"]["observedGeneration"] == 2
    assert by_name["crash"]["matchedResources"] == 1
    assert asyncio.run(publisher.publish_once()) == 0  # nothing changed: nothing sent
    store.resource_records.upsert_resource(KEY, "Container", {}, Health.DRIFTING, {}, NOW, "exited")
    assert asyncio.run(publisher.publish_once()) == 1
    assert api.patches[-1][1]["health"] == "drifting"


def test_a_refusal_and_a_parked_plan_reach_kubectl(tmp_path: Path) -> None:
    store, api, publisher, _ = _rig(tmp_path)
    store.resource_records.upsert_resource(KEY, "Container", {}, Health.DRIFTING, {}, NOW, "exited")
    plan = Plan(KEY, (PlanStep("container_restart", KEY),), "gemini", "restart it")
    store.audit_records.record_guard_decision(
        KEY, plan, False, "container_delete is not allowed", NOW + 1
    )
    plan_id = store.pending_records.add_pending_plan(KEY, plan, "restart the app", NOW + 2)
    asyncio.run(publisher.publish_once())
    refused = [e for _, e in api.events if e.reason == "PlanRefused"]
    assert len(refused) == 1 and refused[0].type == "Warning"
    assert "container_delete is not allowed" in refused[0].message
    status = dict(api.patches)["app"]
    assert status["pendingPlan"]["id"] == plan_id
    assert status["pendingPlan"]["summary"] == "restart the app"

    store.pending_records.set_pending_status(plan_id, "approved", "alice", NOW + 3)
    asyncio.run(publisher.publish_once())
    approved = [e for _, e in api.events if e.reason == "PlanApproved"]
    assert [e.message for e in approved] == [f"plan {plan_id} approved by alice"]
    assert api.patches[-1][1]["pendingPlan"] is None  # a merge patch's null removes it
    asyncio.run(publisher.publish_once())
    assert len([e for _, e in api.events if e.reason in ("PlanRefused", "PlanApproved")]) == 2


def test_a_refused_edit_is_shown_and_the_old_spec_stays(tmp_path: Path) -> None:
    _store, api, publisher, source = _rig(tmp_path)
    bad = _container()
    bad["metadata"]["generation"] = 3
    bad["spec"]["runtime"] = "vm"
    source.put(bad)
    asyncio.run(publisher.publish_once())
    status = [s for name, s in api.patches if name == "app"][-1]
    assert status["observedGeneration"] == 3
    assert status["message"].startswith(
        "the last edit was refused, the previous spec stays in force"
    )
    assert "spec.runtime" in status["message"]
