"""End to end on a real kube-apiserver: ``kubectl apply`` in, a healed drift out, read with kubectl.

The operator is the real ``driftmend operator`` process (kopf, the webhook, the controller, the
process runtime); the API server and etcd are the real ones of ``../shared/k8s``. The test
skips with the reason where that folder is absent (a fresh clone).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.operator_process import (
    REPO,
    OperatorProcess,
    start_operator,
    wait_for_log,
)
from tests.k8s import ApiServer
from tests.services import poll_until

pytestmark = pytest.mark.timeout(180)

NS = "e2e-heal"
SLEEP = f"{200000 + os.getpid() % 1000}.25"  # a command line no other test runs


def _stack(generation_note: str = "") -> str:
    return f"""
apiVersion: driftmend.dev/v1alpha1
kind: HealingPolicy
metadata: {{name: crash, namespace: {NS}}}
spec:
  selector: {{kind: Container, matchLabels: {{app: e2e}}}}
  rules:
    - name: restart-on-exit
      when: [{{signal: container.running, operator: "==", value: false}}]
      do: [{{tool: container_restart}}]
      verify: {{timeout: 20s}}
---
apiVersion: driftmend.dev/v1alpha1
kind: Container
metadata:
  name: sleeper
  namespace: {NS}
  labels: {{app: e2e}}
  annotations: {{note: "{generation_note}"}}
spec:
  runtime: process
  process: {{command: [sleep, "{SLEEP}"]}}
  replicas: 1
"""


@pytest.fixture(scope="module")
def cluster(apiserver: ApiServer) -> ApiServer:
    """The API server with driftmend's CRDs applied and established."""
    apiserver.kubectl("apply", "-f", str(REPO / "crds"))
    apiserver.kubectl(
        "wait", "--for", "condition=established", "--timeout=60s", "-f", str(REPO / "crds")
    )
    return apiserver


@pytest.fixture
def operator(cluster: ApiServer, tmp_path: Path) -> Iterator[OperatorProcess]:
    """One operator replica acting at once on the test namespace."""
    cluster.kubectl("create", "namespace", NS, check=False)
    op = start_operator(cluster, tmp_path, namespaces=[NS], extra=["--no-leader-election"])
    try:
        wait_for_log(op, "acting:")
        poll_until(
            lambda: (
                cluster.kubectl(
                    "get", "validatingwebhookconfiguration", "driftmend.dev", check=False
                ).returncode
                == 0
            ),
            deadline_s=30,
            what="kopf to register the validating webhook",
        )
        yield op
    finally:
        op.stop()
        subprocess.run(["pkill", "-f", f"sleep {SLEEP}$"], check=False)


def _status(api: ApiServer, kind: str, name: str) -> dict[str, Any]:
    return dict(api.get_json(kind, name, "-n", NS).get("status") or {})


def test_a_drift_is_healed_and_kubectl_tells_the_story(
    cluster: ApiServer, operator: OperatorProcess
) -> None:
    cluster.kubectl("apply", "-f", "-", input=_stack())
    poll_until(
        lambda: _status(cluster, "containers", "sleeper").get("health") == "healthy",
        deadline_s=30,
        what="the Container's status to say healthy",
    )
    policy = poll_until(
        lambda: (
            _status(cluster, "healingpolicies", "crash").get("matchedResources") == 1
            and _status(cluster, "healingpolicies", "crash")
        ),
        deadline_s=10,
        what="the policy's status to count its resource",
    )
    assert policy["conditions"][0]["reason"] == "Accepted"

    subprocess.run(["pkill", "-f", f"sleep {SLEEP}$"], check=True)  # the drift: a crash
    fixed = poll_until(
        lambda: (
            (_status(cluster, "containers", "sleeper").get("lastFix") or {}).get("outcome")
            == "fixed"
            and _status(cluster, "containers", "sleeper")
        ),
        deadline_s=30,
        what="the status to show the crash fixed",
    )
    assert fixed["lastFix"]["rule"] == "restart-on-exit"
    assert fixed["lastFix"]["secondsToRecover"] > 0
    assert fixed["health"] == "healthy"
    conditions = {c["type"]: c for c in fixed["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["NeedsOperator"]["status"] == "False"

    table = cluster.kubectl("get", "containers", "-n", NS).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "HEALTH", "LAST", "FIX"]
    assert row.split()[:3] == ["sleeper", "healthy", "fixed"]
    assert "restart-on-exit" in row

    described = poll_until(
        lambda: "Fixed" in (out := cluster.kubectl("describe", "container", "sleeper", "-n", NS).stdout)
        and out,
        deadline_s=10,
        what="kubectl describe to show the Fixed event",
    )  # fmt: skip
    assert "FixStarted" in described
    assert "recovered in" in described

    # A spec edit: the status follows its generation.
    cluster.kubectl("apply", "-f", "-", input=_stack("edited"))
    generation = cluster.get_json("container", "sleeper", "-n", NS)["metadata"]["generation"]
    poll_until(
        lambda: _status(cluster, "containers", "sleeper").get("observedGeneration") == generation,
        deadline_s=15,
        what="observedGeneration to follow the edit",
    )


def test_kubectl_apply_refuses_a_bad_spec_with_the_validators_message(
    cluster: ApiServer, operator: OperatorProcess
) -> None:
    bad = _stack().replace("container_restart", "container_restat")
    done = cluster.kubectl("apply", "-f", "-", input=bad, check=False)
    assert done.returncode != 0
    assert 'admission webhook "validate-healingpolicies.driftmend.dev" denied' in done.stderr
    assert "spec.rules[0].do[0].tool: unknown tool 'container_restat'" in done.stderr
    assert "did you mean container_restart?" in done.stderr
    # What the schema cannot say, the webhook says: a process runtime without its process.
    broken = _stack().replace(f'  process: {{command: [sleep, "{SLEEP}"]}}\n', "")
    done = cluster.kubectl("apply", "-f", "-", input=broken, check=False)
    assert done.returncode != 0 and "spec.process" in done.stderr, done.stderr


def test_the_examples_apply_through_the_webhook(
    cluster: ApiServer, operator: OperatorProcess
) -> None:
    examples = REPO / "manifests" / "examples" / "kubernetes"
    out = cluster.kubectl("apply", "-f", str(examples)).stdout
    assert "healingpolicy.driftmend.dev/app-crash" in out
    listed = json.loads(
        cluster.kubectl("get", "driftmend", "-n", "driftmend-demo", "-o", "json").stdout
    )
    kinds = {i["kind"] for i in listed["items"]}
    assert kinds == {"Container", "HealingPolicy", "PostgresDatabase", "RedisCache"}
