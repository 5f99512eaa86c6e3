"""Custom resources in, the file source's documents out; admission's one-line answer."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from driftmend.sources.kubernetes import KubernetesSource, admission_problem, document_of
from driftmend.spec import LoadResult
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check

CHECK = tool_check(default_catalogue())


def _container(name: str = "app", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "driftmend.dev/v1alpha1",
        "kind": "Container",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "1234",
            "generation": 2,
            "resourceVersion": "99",
            "creationTimestamp": "2026-12-05T12:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "labels": {"app": "shop"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "driftmend.dev/last-handled-configuration": "{}",
                "team": "payments",
            },
        },
        "spec": {"runtime": "process", "process": {"command": ["sleep", "1000"]}, **spec},
        "status": {"health": "healthy"},
    }


def _policy(tool: str = "container_restart") -> dict[str, Any]:
    return {
        "apiVersion": "driftmend.dev/v1alpha1",
        "kind": "HealingPolicy",
        "metadata": {"name": "crash", "namespace": "shop", "generation": 1},
        "spec": {
            "selector": {"kind": "Container", "matchLabels": {"app": "shop"}},
            "rules": [
                {
                    "name": "restart",
                    "when": [{"signal": "container.running", "operator": "==", "value": False}],
                    "do": [{"tool": tool}],
                }
            ],
        },
    }


def test_document_of_keeps_the_intent_and_drops_the_servers_bookkeeping() -> None:
    doc = document_of(_container())
    assert doc["metadata"] == {
        "name": "app",
        "namespace": "shop",
        "labels": {"app": "shop"},
        "annotations": {"team": "payments"},
    }
    assert "status" not in doc
    assert doc["spec"]["runtime"] == "process"


def test_a_valid_custom_resource_is_admitted() -> None:
    assert admission_problem(_container(), CHECK) is None
    assert admission_problem(_policy(), CHECK) is None


def test_admission_says_what_validate_says_field_and_closest_match() -> None:
    problem = admission_problem(_policy(tool="container_restat"), CHECK)
    assert problem is not None
    assert "spec.rules[0].do[0].tool" in problem
    assert "container_restart" in problem  # the closest match
    assert "\n" not in problem
    typo = _container()
    typo["spec"]["runtme"] = "process"
    problem = admission_problem(typo, CHECK)
    assert problem is not None and "runtme" in problem and "runtime" in problem


def test_the_source_applies_once_per_burst_and_keys_by_namespace() -> None:
    applied: list[LoadResult] = []

    async def main() -> None:
        done = asyncio.Event()

        def apply(result: LoadResult) -> None:
            applied.append(result)
            done.set()

        source = KubernetesSource(apply, CHECK, settle_s=0.01)
        for i in range(50):
            assert source.put(_container(name=f"app-{i}")) is None
        source.put(_policy())
        assert applied == []  # nothing yet: the burst settles first
        await asyncio.wait_for(done.wait(), timeout=5)
        # The first apply already holds all 51 documents: one apply for the burst.
        keys = sorted(r.key for r in applied[0].resources)
        assert keys[0] == "Container/shop/app-0" and len(keys) == 50
        assert [p.key for p in applied[0].policies] == ["HealingPolicy/shop/crash"]
        declared = [source.declared(ref) for ref in source.custom_resources()]
        assert {d.key for d in declared if d is not None} == set(keys) | {
            "HealingPolicy/shop/crash"
        }

    asyncio.run(main())


def test_a_bad_edit_keeps_the_last_valid_spec_and_says_why() -> None:
    applied: list[LoadResult] = []
    source = KubernetesSource(applied.append, CHECK)
    good = _container()
    source.put(good)  # no loop: applied at once
    bad = copy.deepcopy(good)
    bad["spec"]["runtime"] = "vm"
    problem = source.put(bad)
    assert problem is not None and "spec.runtime" in problem
    ref = source.custom_resources()[0]
    assert source.problem(ref) == problem
    assert source.result().resources[0].spec.runtime == "process"
    source.put(good)
    assert source.problem(ref) is None


def test_a_deletion_leaves_the_desired_state() -> None:
    applied: list[LoadResult] = []
    source = KubernetesSource(applied.append, CHECK)
    source.put(_container())
    source.remove(_container())
    assert applied[-1].resources == []
    assert source.custom_resources() == []


def test_a_foreign_kind_is_refused_without_raising() -> None:
    source = KubernetesSource(lambda _: None, CHECK)
    assert "not a driftmend.dev kind" in (source.put({"kind": "Pod"}) or "")
