"""The operator under kopf's own test runner, against kmock's Kubernetes API emulator.

``kopf.testing.KopfRunner`` runs ``kopf run -m driftmend.operator.handlers``, the module
``driftmend operator`` runs, in a thread; kmock (kopf's author's API mock, pinned) serves the
custom resources and records every request, so the test reads back exactly what the operator
sent: the status patches and the Events. The replica's controller, store and process runtime
are the real ones.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kopf.testing import KopfRunner

from tests.integration.harness import eventually
from tests.services import free_port

pytestmark = pytest.mark.timeout(90)

GROUP_VERSION = "driftmend.dev/v1alpha1"
SLEEP = f"{100000 + os.getpid() % 1000}.5"  # a command line no other test runs


def _kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                "users": [{"name": "kmock", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
                "current-context": "kmock",
            }
        )
    )
    return path


def _container() -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "Container",
        "metadata": {"name": "sleeper", "namespace": "default", "uid": "u-1", "generation": 1,
                     "labels": {"app": "shop"}},
        "spec": {"runtime": "process", "process": {"command": ["sleep", SLEEP]}},
    }  # fmt: skip


def _policy() -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "HealingPolicy",
        "metadata": {"name": "crash", "namespace": "default", "uid": "u-2", "generation": 1},
        "spec": {
            "selector": {"kind": "Container", "matchLabels": {"app": "shop"}},
            "rules": [
                {
                    "name": "restart",
                    "when": [{"signal": "container.running", "operator": "==", "value": False}],
                    "do": [{"tool": "container_restart"}],
                }
            ],
        },
    }


def _kill_replica(*, check: bool) -> None:
    """SIGTERM the Container's replica (a command line only this test runs)."""
    subprocess.run(["pkill", "-f", f"sleep {SLEEP}$"], check=check)


def _serve_driftmend_kinds(km: kmock.KubernetesEmulator) -> None:
    """Make the emulator serve the four CRDs' kinds (discovery, list, watch, patch)."""
    for plural, kind in [
        ("containers", "Container"),
        ("healingpolicies", "HealingPolicy"),
        ("postgresdatabases", "PostgresDatabase"),
        ("rediscaches", "RedisCache"),
    ]:
        km.resources[f"{GROUP_VERSION}/{plural}"] = km.ResourceInfo(
            kind=kind,
            namespaced=True,
            verbs={"list", "watch", "get", "patch"},
            subresources={"status"},
        )


@pytest.fixture
def operator_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("DRIFTMEND_STATE_DIR", str(state))
    monkeypatch.setenv("DRIFTMEND_HTTP_PORT", str(free_port()))
    monkeypatch.setenv("DRIFTMEND_OPERATOR_LEADER_ELECTION", "0")
    monkeypatch.setenv("DRIFTMEND_OPERATOR_WEBHOOK", "0")
    monkeypatch.setenv("DRIFTMEND_OPERATOR_NAMESPACES", "default")
    return state


def _status_patches(km: kmock.KubernetesEmulator, plural: str, name: str) -> list[dict[str, Any]]:
    """Every status the operator patched onto one custom resource, in order."""
    suffix = f"/namespaces/default/{plural}/{name}/status"
    return [r.data["status"] for r in km["patch"] if r.url.path.endswith(suffix)]


def _events(km: kmock.KubernetesEmulator) -> list[dict[str, Any]]:
    """Every Event the operator posted."""
    return [r.data for r in km["post"] if r.url.path.endswith("/events")]


async def test_custom_resources_are_reconciled_and_their_status_and_events_sent(
    kmock: kmock.KubernetesEmulator,
    operator_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _serve_driftmend_kinds(kmock)
    kmock.objects[f"{GROUP_VERSION}/containers", "default", "sleeper"] = _container()
    kmock.objects[f"{GROUP_VERSION}/healingpolicies", "default", "crash"] = _policy()
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "kubeconfig", str(kmock.url))))
    args = ["run", "--standalone", "-n", "default", "-m", "driftmend.operator.handlers"]
    try:
        await _run_operator(kmock, args)
    finally:  # the replica outlives the operator by design: stop it
        _kill_replica(check=False)


async def _run_operator(kmock: kmock.KubernetesEmulator, args: list[str]) -> None:
    with KopfRunner(args) as runner:
        healthy = await eventually(
            lambda: [s for s in _status_patches(kmock, "containers", "sleeper") if s.get("health") == "healthy"],
            deadline=30, what="a status patch saying the Container is healthy",
        )  # fmt: skip
        ready = {c["type"]: c["status"] for c in healthy[-1]["conditions"]}
        assert ready == {
            "Ready": "True",
            "Drifting": "False",
            "Healing": "False",
            "NeedsOperator": "False",
        }
        assert healthy[-1]["observedGeneration"] == 1
        policy = await eventually(
            lambda: _status_patches(kmock, "healingpolicies", "crash"),
            deadline=10, what="a status patch on the HealingPolicy",
        )  # fmt: skip
        assert policy[-1]["matchedResources"] == 1
        _kill_replica(check=True)  # the crash
        fixed = await eventually(
            lambda: [e for e in _events(kmock) if e["reason"] == "Fixed"],
            deadline=30, what="an Event saying the crash was fixed",
        )  # fmt: skip
        assert fixed[0]["involvedObject"]["name"] == "sleeper"
        assert fixed[0]["involvedObject"]["kind"] == "Container"
        started = [e for e in _events(kmock) if e["reason"] == "FixStarted"]
        assert started and started[0]["type"] == "Normal"
        await eventually(
            lambda: [s for s in _status_patches(kmock, "containers", "sleeper") if (s.get("lastFix") or {}).get("outcome") == "fixed"],
            deadline=10, what="a status patch with the last fix",
        )  # fmt: skip
    assert runner.exception is None, runner.output


def _review(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "review-1",
            "kind": {"group": "driftmend.dev", "version": "v1alpha1", "kind": obj["kind"]},
            "resource": {"group": "driftmend.dev", "version": "v1alpha1", "resource": "healingpolicies"},
            "operation": "CREATE",
            "namespace": "default",
            "name": obj["metadata"]["name"],
            "object": obj,
            "userInfo": {"username": "alice"},
            "dryRun": False,
        },
    }  # fmt: skip


async def test_the_webhook_refuses_what_validate_refuses_with_its_message(
    kmock: kmock.KubernetesEmulator,
    operator_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx2

    port = free_port()
    monkeypatch.setenv("DRIFTMEND_OPERATOR_WEBHOOK", "1")
    monkeypatch.setenv("DRIFTMEND_OPERATOR_WEBHOOK_MANAGED", "0")
    monkeypatch.setenv("DRIFTMEND_OPERATOR_WEBHOOK_ADDR", "127.0.0.1")
    monkeypatch.setenv("DRIFTMEND_OPERATOR_WEBHOOK_PORT", str(port))
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "kubeconfig", str(kmock.url))))
    _serve_driftmend_kinds(kmock)
    bad = _policy()
    bad["spec"]["rules"][0]["do"][0]["tool"] = "container_restat"
    args = ["run", "--standalone", "-n", "default", "-m", "driftmend.operator.handlers"]
    with KopfRunner(args) as runner:
        ca = await eventually(
            lambda: (operator_env / "webhook" / "ca.crt").is_file() and operator_env / "webhook" / "ca.crt",
            deadline=20, what="the webhook's self-signed CA",
        )  # fmt: skip

        async def review(obj: dict[str, Any]) -> dict[str, Any]:
            async with httpx2.AsyncClient(
                verify=ssl.create_default_context(cafile=ca), trust_env=False
            ) as http:
                answer = await http.post(
                    f"https://127.0.0.1:{port}/validate-healingpolicies", json=_review(obj)
                )
                assert answer.status_code == 200, answer.text
                return dict(answer.json()["response"])

        async def served() -> dict[str, Any] | None:
            try:
                return await review(bad)
            except httpx2.HTTPError:
                return None

        refused = await eventually(served, deadline=20, what="the webhook to answer")
        assert refused["allowed"] is False
        assert refused["status"]["code"] == 422
        message = refused["status"]["message"]
        assert "spec.rules[0].do[0].tool" in message and "container_restart" in message
        allowed = await review(_policy())
        assert allowed["allowed"] is True
    assert runner.exception is None, runner.output
