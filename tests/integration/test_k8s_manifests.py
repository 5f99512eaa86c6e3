"""manifests/kubernetes (the kustomize base) rendered, then checked by a real API server.

Stage: *deployment*. ``kubectl kustomize`` renders the base; the API server (kube-apiserver
1.20 from ../shared/k8s) takes every object it serves in a server-side dry-run apply; the
RBAC objects are applied for real and ``kubectl auth can-i`` answers, as the operator's
ServiceAccount, that it may do exactly what the plan lists and nothing else. Skipped, with
the reason, where ../shared/k8s is absent (a fresh clone).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from driftmend.cli import build_parser
from driftmend.spec import KINDS, crd
from tests.k8s import REPO, ApiServer

pytestmark = pytest.mark.integration

BASE = REPO / "manifests" / "kubernetes"
SA = "system:serviceaccount:driftmend:driftmend"
SELECTOR = {"app.kubernetes.io/name": "driftmend", "app.kubernetes.io/component": "operator"}

# What the operator may do (issue 12's plan), as `kubectl auth can-i --list` prints it:
# (resource, resource names) -> verbs.
CLUSTER_GRANTS: dict[tuple[str, str], set[str]] = {
    ("customresourcedefinitions.apiextensions.k8s.io", ""): {"get", "list", "watch"},
    ("namespaces", ""): {"get", "list", "watch"},
    **{(f"{p}.driftmend.dev", ""): {"get", "list", "watch", "patch"} for p in
       ("containers", "postgresdatabases", "rediscaches", "healingpolicies")},
    **{(f"{p}.driftmend.dev/status", ""): {"get", "patch"} for p in
       ("containers", "postgresdatabases", "rediscaches", "healingpolicies")},
    ("events", ""): {"create", "patch", "get", "list", "watch"},
    ("events.events.k8s.io", ""): {"create", "patch"},
    # Healing workloads (issue 13): the ClusterRole driftmend-workloads.
    **{(f"{p}.apps", ""): {"get", "list", "watch", "patch"} for p in
       ("deployments", "statefulsets")},
    **{(f"{p}.apps/scale", ""): {"get", "patch"} for p in ("deployments", "statefulsets")},
    **{(f"{p}.apps", ""): {"get", "list"} for p in ("replicasets", "controllerrevisions")},
    ("pods", ""): {"get", "list", "watch", "delete"},
    ("pods/log", ""): {"get"},
    ("pods.metrics.k8s.io", ""): {"get", "list"},
    ("validatingwebhookconfigurations.admissionregistration.k8s.io", ""): {
        "get", "list", "watch", "create", "patch",
    },
}  # fmt: skip
NAMESPACE_GRANTS = {
    **CLUSTER_GRANTS,
    ("leases.coordination.k8s.io", ""): {"create"},
    ("leases.coordination.k8s.io", "driftmend-leader"): {"get", "update"},
}
# What every authenticated user may do (system:basic-user): not the base's doing.
EVERYONE = {
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
}


def render() -> list[dict[str, Any]]:
    """``kubectl kustomize manifests/kubernetes``, parsed (kubectl bundles kustomize)."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """The rendered base; needs only kubectl (it bundles kustomize), not an API server."""
    if shutil.which("kubectl") is None:
        pytest.skip("needs kubectl (which bundles kustomize) to render manifests/kubernetes")
    return render()


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


# --- the render ---------------------------------------------------------------------------------


def test_the_base_renders_every_object(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in rendered)
    assert kinds == sorted(
        [("Namespace", "driftmend"), ("ServiceAccount", "driftmend"),
         ("ClusterRole", "driftmend"), ("ClusterRoleBinding", "driftmend"),
         ("ClusterRole", "driftmend-workloads"), ("ClusterRoleBinding", "driftmend-workloads"),
         ("Role", "driftmend-leader-election"), ("RoleBinding", "driftmend-leader-election"),
         ("Deployment", "driftmend"), ("Service", "driftmend"), ("Service", "driftmend-webhook"),
         ("PodDisruptionBudget", "driftmend")]
        + [("CustomResourceDefinition", crd(kind)["metadata"]["name"]) for kind in KINDS]
    )  # fmt: skip
    # The CRDs are crds/ itself (generated from the models), not a copy that can go stale.
    for kind in KINDS:
        generated = crd(kind)
        assert (
            one(rendered, "CustomResourceDefinition", generated["metadata"]["name"])["spec"]
            == generated["spec"]
        )
    for obj in rendered:
        if obj["kind"] not in (
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        ):
            assert obj["metadata"]["namespace"] == "driftmend", obj["metadata"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "driftmend"


def test_the_deployment_is_the_hardened_operator(rendered: list[dict[str, Any]]) -> None:
    deployment = one(rendered, "Deployment", "driftmend")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2 and spec["selector"]["matchLabels"] == SELECTOR
    assert pod["serviceAccountName"] == "driftmend"
    assert container["image"] == "driftmend:latest"
    # The command is one driftmend's own parser takes, with the options the probes rely on.
    assert container["command"][:2] == ["driftmend", "operator"]
    args = build_parser().parse_args(container["command"][1:])
    assert args.all_namespaces and args.liveness == "http://0.0.0.0:8081/healthz"
    assert str(args.webhook_cert_dir) == "/etc/driftmend/webhook"
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"requests", "limits"} <= set(container["resources"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "health": 8081, "webhook": 9443}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/var/lib/driftmend", "/tmp", "/etc/driftmend/webhook"}
    writable = [mounts["/var/lib/driftmend"], mounts["/tmp"]]
    assert all(volumes[name] == {"name": name, "emptyDir": {}} for name in writable)
    tls = volumes[mounts["/etc/driftmend/webhook"]]["secret"]
    assert tls == {"secretName": "driftmend-webhook-tls", "optional": True}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["DRIFTMEND_STATE_DIR"] == "/var/lib/driftmend"
    assert env["DRIFTMEND_HTTP_HOST"] == "0.0.0.0"
    secrets = {
        name: ref["secretKeyRef"]
        for name, ref in env.items()
        if isinstance(ref, dict) and "secretKeyRef" in ref
    }
    assert secrets == {
        "GEMINI_API_KEY": {"name": "driftmend", "key": "gemini-api-key", "optional": True},
        "DRIFTMEND_DASHBOARD_TOKEN": {
            "name": "driftmend",
            "key": "dashboard-token",
            "optional": True,
        },
        "DRIFTMEND_STORE_DSN": {"name": "driftmend", "key": "store-dsn", "optional": True},
    }
    spread = pod["topologySpreadConstraints"][0]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == (
        "kubernetes.io/hostname",
        "DoNotSchedule",
    )
    assert spread["labelSelector"]["matchLabels"] == SELECTOR


def test_the_services_and_the_disruption_budget(rendered: list[dict[str, Any]]) -> None:
    http = one(rendered, "Service", "driftmend")
    assert http["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert http["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert http["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    webhook = one(rendered, "Service", "driftmend-webhook")
    assert webhook["spec"]["ports"] == [
        {"name": "webhook", "port": 9443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    assert http["spec"]["selector"] == webhook["spec"]["selector"] == SELECTOR
    pdb = one(rendered, "PodDisruptionBudget", "driftmend")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}


def test_kustomize_images_overrides_the_placeholder(
    tmp_path: Any, rendered: list[dict[str, Any]]
) -> None:
    """How a user points the base at their registry: an overlay with ``images``."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({
            "resources": [os.path.relpath(BASE, overlay)],
            "images": [{"name": "driftmend", "newName": "registry.example/driftmend", "newTag": "1.2.3"}],
        })
    )  # fmt: skip
    done = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    deployment = one([d for d in yaml.safe_load_all(done.stdout) if d], "Deployment", "driftmend")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example/driftmend:1.2.3"


# --- against the API server -------------------------------------------------------------------


def served(apiserver: ApiServer) -> set[tuple[str, str]]:
    """(apiVersion, kind) of every resource the server serves, from ``kubectl api-resources``.

    Only the preferred version of each group is listed: a kind served in another version
    (1.20's PodDisruptionBudget in policy/v1beta1, not v1) counts as not served in ours.
    """
    lines = apiserver.kubectl("api-resources").stdout.splitlines()
    header = lines[0]
    start, kind_at = header.index("APIVERSION"), header.index("KIND")
    return {(line[start:].split()[0], line[kind_at:].strip()) for line in lines[1:] if line.strip()}


def test_every_served_object_passes_a_server_side_dry_run(
    rendered: list[dict[str, Any]], apiserver: ApiServer
) -> None:
    kinds = served(apiserver)
    unserved = [o for o in rendered if (o["apiVersion"], o["kind"]) not in kinds]
    # 1.20 predates policy/v1; that PodDisruptionBudget is the only object it cannot take.
    assert {(o["apiVersion"], o["kind"]) for o in unserved} <= {
        ("policy/v1", "PodDisruptionBudget")
    }
    objects = [o for o in rendered if o not in unserved]
    # The namespace must exist for a dry run of what lives in it (a dry run creates nothing).
    apiserver.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump(one(rendered, "Namespace", "driftmend"))
    )
    text = yaml.safe_dump_all(objects)
    done = apiserver.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=driftmend-test",
        "-f",
        "-",
        input=text,
    )
    applied = [line for line in done.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objects), done.stdout
    # The same budget in the version 1.20 serves: its spec is valid there too.
    for pdb in unserved:
        if ("policy/v1beta1", "PodDisruptionBudget") in kinds:
            older = {**pdb, "apiVersion": "policy/v1beta1"}
            apiserver.kubectl(
                "apply", "--server-side", "--dry-run=server", "-f", "-", input=yaml.safe_dump(older)
            )


def test_a_broken_object_fails_the_dry_run(
    rendered: list[dict[str, Any]], apiserver: ApiServer
) -> None:
    """The dry run judges: a Deployment whose selector misses its pods is refused."""
    deployment = one(rendered, "Deployment", "driftmend")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["selector"]["matchLabels"] = {"app": "other"}
    apiserver.kubectl("create", "namespace", "driftmend", check=False)
    done = apiserver.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        "-",
        input=yaml.safe_dump(broken),
        check=False,
    )
    assert done.returncode != 0 and "selector" in done.stderr, done.stderr


def grants(apiserver: ApiServer, *namespace: str) -> dict[tuple[str, str], set[str]]:
    """``kubectl auth can-i --list`` as the operator's ServiceAccount: resource rows only."""
    out = apiserver.kubectl("auth", "can-i", "--list", f"--as={SA}", *namespace).stdout
    rows: dict[tuple[str, str], set[str]] = {}
    for line in out.splitlines()[1:]:
        match = re.match(r"^(\S+)\s+\[[^\]]*\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]$", line)
        if match and match[1] not in EVERYONE:
            rows.setdefault((match[1], match[2]), set()).update(match[3].split())
    return rows


@pytest.fixture(scope="module")
def rbac(rendered: list[dict[str, Any]], apiserver: ApiServer) -> ApiServer:
    """The base's RBAC objects (and the ServiceAccount and Namespace) applied for real."""
    wanted = {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }
    objects = [o for o in rendered if o["kind"] in wanted]
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    # can-i names the custom resources: the server must serve them.
    crds = [o for o in rendered if o["kind"] == "CustomResourceDefinition"]
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds))
    names = [f"crd/{o['metadata']['name']}" for o in crds]
    apiserver.kubectl("wait", "--for", "condition=established", *names, "--timeout=60s")
    return apiserver


def test_the_operator_may_do_exactly_what_the_plan_lists(rbac: ApiServer) -> None:
    assert grants(rbac) == CLUSTER_GRANTS
    assert grants(rbac, "-n", "driftmend") == NAMESPACE_GRANTS
    # The lease rules hold in the operator's namespace only.
    assert ("leases.coordination.k8s.io", "") not in grants(rbac, "-n", "default")


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (["watch", "containers.driftmend.dev", "--all-namespaces"], True),
        (["patch", "healingpolicies.driftmend.dev/status", "-n", "shop"], True),
        (["create", "events", "-n", "shop"], True),
        (["update", "leases/driftmend-leader", "-n", "driftmend"], True),
        (["create", "leases", "-n", "driftmend"], True),
        (["create", "validatingwebhookconfigurations"], True),
        (["get", "secrets", "-n", "driftmend"], False),
        (["list", "secrets", "--all-namespaces"], False),
        (["delete", "pods", "-n", "shop"], True),  # one bad pod of a healed workload
        (["patch", "deployments/scale", "-n", "shop"], True),
        (["get", "pods/log", "-n", "shop"], True),
        (["delete", "deployments", "-n", "shop"], False),
        (["update", "deployments", "-n", "shop"], False),  # patches only, never a replace
        (["create", "pods", "-n", "shop"], False),
        (["create", "deployments", "-n", "driftmend"], False),
        (["update", "containers.driftmend.dev", "-n", "shop"], False),  # a spec is the user's
        (["delete", "healingpolicies.driftmend.dev", "-n", "shop"], False),
        (["update", "leases/someone-else", "-n", "driftmend"], False),
        (["create", "leases", "-n", "shop"], False),
        (["delete", "validatingwebhookconfigurations"], False),
        (["create", "customresourcedefinitions"], False),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_can_i(args: list[str], allowed: bool, rbac: ApiServer) -> None:
    done = rbac.kubectl("auth", "can-i", *args, f"--as={SA}", check=False)
    assert done.stdout.strip() == ("yes" if allowed else "no"), (args, done.stdout, done.stderr)
