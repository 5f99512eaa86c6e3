"""What the store's reads return: frozen records with typed fields that still read, compare
and serialise like the dicts they replaced; and the read Protocols the families offer."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

import driftmend.codec
import driftmend.store
from driftmend.model import (
    Health,
    LlmDecision,
    Outcome,
    PendingStatus,
    Plan,
    PlanStep,
    ShadowAgreement,
    ToolResult,
)
from driftmend.store import (
    Fix,
    FixHistory,
    FixStep,
    FixSummary,
    ParkedPlans,
    Record,
    ResourceState,
    Store,
)
from tests.unit.conftest import StoreBackend

KEY = "Container/web"


@pytest.fixture
def store(backend: StoreBackend) -> Iterator[Store]:
    s = backend.open(clock=lambda: 5.0)
    yield s
    s.close()


def make_plan(source: str = "rules") -> Plan:
    return Plan(
        KEY,
        (PlanStep("docker_restart", KEY, {"timeout": 10}),),
        source,  # type: ignore[arg-type]
        "restart it",
        policy="web-heal",
        rule="restart",
    )


def finished_fix(store: Store) -> int:
    fid = store.fix_records.begin_fix(
        KEY, make_plan(), {"container.running": False}, 1.0, 2.0, "exit"
    )
    sid = store.fix_records.journal_step(fid, 0, make_plan().steps[0])
    store.fix_records.finish_step(sid, ToolResult.success(pid=7), 0.5)
    store.fix_records.finish_fix(fid, Outcome.FIXED, True, {"container.running": True}, 4.0, 3.0)
    return fid


def test_a_fix_reads_by_attribute_and_by_key(store: Store) -> None:
    fix = store.fix_records.fix(finished_fix(store))
    assert isinstance(fix, Fix) and isinstance(fix, Mapping)
    assert fix.outcome is Outcome.FIXED and fix["outcome"] == "fixed"
    assert fix.time_to_recover == fix["time_to_recover"] == 2.0
    assert fix.get("no such field") is None and "steps" in fix
    with pytest.raises(KeyError):
        fix["no such field"]
    step = fix.steps[0]
    assert isinstance(step, FixStep) and step.index == 0 and step["tool"] == "docker_restart"
    assert step.result == {"status": "ok", "data": {"pid": 7}, "error": None}


def test_a_record_is_frozen(store: Store) -> None:
    fix = store.fix_records.fix(finished_fix(store))
    assert fix is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        fix.status = "done"  # type: ignore[misc]
    with pytest.raises(TypeError):
        fix["status"] = "done"  # type: ignore[index]


def test_a_record_equals_the_dict_it_used_to_be(store: Store) -> None:
    store.audit_records.record_action(KEY, "pause", "operator:alice", {"why": "maintenance"}, 10.0)
    (action,) = store.audit_records.actions()
    as_dict = {
        "id": action.id,
        "key": KEY,
        "at": 10.0,
        "action": "pause",
        "actor": "operator:alice",
        "detail": {"why": "maintenance"},
    }
    assert action == as_dict and as_dict == action
    assert dict(action) == as_dict and {**action} == as_dict
    assert action != as_dict | {"actor": "bob"} and action != {}
    assert list(action) == list(as_dict) and len(action) == len(as_dict)


def test_a_union_with_a_dict_is_a_plain_json_dict(store: Store) -> None:
    fix = store.fix_records.fix(finished_fix(store))
    assert fix is not None
    merged = fix | {"resource_id": "Container.web"}
    assert type(merged) is dict and merged["resource_id"] == "Container.web"
    assert type(merged["steps"][0]) is dict and type(merged["outcome"]) is str
    assert ({"x": 1} | fix)["x"] == 1


def test_to_json_round_trips_through_json(store: Store) -> None:
    fid = finished_fix(store)
    store.resource_records.upsert_resource(
        KEY, "Container", {"replicas": 1}, Health.HEALTHY, {"a": 1}, 6.0
    )
    resource = store.resource_records.resource(KEY)
    assert isinstance(resource, ResourceState)
    assert resource.health is Health.HEALTHY
    assert isinstance(resource.last_fix, FixSummary) and resource.last_fix.id == fid
    for record in (resource, store.fix_records.fix(fid)):
        assert record is not None
        data = record.to_json()
        assert json.loads(json.dumps(data)) == data == record
    assert resource.to_json()["last_fix"]["outcome"] == "fixed"


def test_enum_fields_use_the_model_vocabularies(store: Store) -> None:
    pid = store.pending_records.add_pending_plan(KEY, make_plan("gemini"), "needs approval", 1.0)
    pending = store.pending_records.pending_plan(pid)
    assert pending is not None and pending.status is PendingStatus.PENDING
    iid = store.llm_records.record_llm_interaction(
        KEY, "gemini", "m", "p", "r", make_plan("gemini"), 1, 2, 0.1, 3.0
    )
    store.llm_records.set_llm_outcome(iid, mode="shadow", decision="shadow", reason="shadow mode")
    store.llm_records.set_shadow_agreement(iid, "agrees", 1)
    (item,) = store.llm_records.llm_interactions()
    assert item.decision is LlmDecision.SHADOW and item.agreement is ShadowAgreement.AGREES
    # A decision this driftmend does not know is kept as its text, not refused.
    store.llm_records.set_llm_outcome(iid, mode="m", decision="from-the-future", reason="")
    (item,) = store.llm_records.llm_summaries()
    assert item.decision == "from-the-future" and "prompt" not in item
    reconciliation_id = store.reconciliation_records.record_reconciliation(
        KEY, "Container", 1.0, 0.1, Outcome.ERROR, [], {}
    )
    (rec,) = store.reconciliation_records.reconciliations()
    assert rec.id == reconciliation_id and rec.outcome is Outcome.ERROR


def test_every_read_record_is_a_record(store: Store) -> None:
    finished_fix(store)
    store.signal_records.record_signals(KEY, 1.0, {"a": 1})
    store.audit_records.record_guard_decision(KEY, make_plan(), True, "ok", 1.0)
    reads: list[Sequence[Any]] = [
        store.fix_records.fixes(),
        store.signal_records.signal_history(KEY, None, 0.0),
        store.audit_records.guard_decisions(),
        store.fix_records.interrupted_fixes(),
    ]
    assert all(isinstance(r, Record) for rows in reads for r in rows)


def test_the_families_satisfy_the_read_protocols(store: Store) -> None:
    fid = finished_fix(store)

    def last_outcome(history: FixHistory) -> str:
        return str(history.fixes(key=KEY, limit=1)[0]["outcome"])

    def waiting(plans: ParkedPlans) -> int:
        return len(plans.pending_plans())

    assert last_outcome(store.fix_records) == "fixed"
    assert waiting(store.pending_records) == 0
    assert store.fix_records.fix(fid) == store.fix_records.fix(fid)


def test_the_codec_moved_and_is_re_exported() -> None:
    assert driftmend.store.plan_from_dict is driftmend.codec.plan_from_dict
    assert driftmend.store.drift_to_dict is driftmend.codec.drift_to_dict
