"""The example policies for clusters heal their failures on real Kubernetes workloads.

A real API server and controller manager (``../shared/k8s``): a Deployment makes its
ReplicaSets and pods, a rollout restart makes a new ReplicaSet, a rollback brings an old
template back. No kubelet runs, so ``tests/integration/kubelet.py`` plays it: it binds the
pods to its Node and writes their status as a kubelet would (crash loops, OOM kills,
unreadiness, image pulls that fail), and serves their logs. ``metrics_server.py`` speaks
metrics.k8s.io. The controller, its runtime router, the lightkube client, the guard, the
tools and the store are the real ones; the policies are ``manifests/examples/kubernetes/
workloads.yaml``'s, with their ``for`` and verification windows shortened to test time.
The resync is longer than any wait: the watch is what brings each change to the loop.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftmend.controller import Controller
from driftmend.drivers.docker import DockerRuntime
from driftmend.drivers.kubernetes import KubernetesRuntime
from driftmend.drivers.process import ProcessRuntime
from driftmend.drivers.runtimes import RuntimeRouter
from driftmend.errors import PermanentError, RefusedError
from driftmend.eval import EvalOptions, run_eval
from driftmend.planners.base import PlannerAnswer, PlanRequest
from driftmend.settings import Settings
from driftmend.spec import Container, LoadResult
from tests.integration.harness import eventually, load, running, write_specs
from tests.integration.kubelet import FakeKubelet, Pod, PodState
from tests.integration.metrics_server import MetricsServer
from tests.k8s import ApiServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples" / "kubernetes"
KEY_OF = "Container/{ns}/storefront"
RESYNC = 60.0  # longer than any wait: the watch, not the resync, drives these passes
GOOD = "registry.example.com/storefront:1.4.2"  # the example's image
_names = itertools.count(1)


@pytest.fixture(scope="module")
def metrics() -> Iterator[MetricsServer]:
    with MetricsServer() as server:
        yield server


@pytest.fixture
def ns(cluster: ApiServer, kubelet: FakeKubelet) -> Iterator[str]:
    """A namespace of its own for each test; the kubelet back to healthy pods after it."""
    name = f"heal-{next(_names)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    kubelet.behave(lambda pod: PodState())
    cluster.kubectl("delete", "namespace", name, "--wait=false")


# --- the example manifests, for a test's namespace ----------------------------------------


def example_workload(kind: str, ns: str, **spec: Any) -> dict[str, Any]:
    """``storefront.json``'s Deployment or StatefulSet, in ``ns``, with ``spec`` merged in."""
    items = json.loads((EXAMPLES / "storefront.json").read_text())["items"]
    obj: dict[str, Any] = copy.deepcopy(next(i for i in items if i["kind"] == kind))
    obj["metadata"]["namespace"] = ns
    obj["spec"].update(spec)
    return obj


def example_docs(ns: str, *policies: str, **shorter: str) -> list[dict[str, Any]]:
    """``workloads.yaml``'s storefront Container and the named policies, in ``ns``; every ``for`` and
    ``verify.timeout`` of those policies set from ``shorter`` (``for_``, ``verify``)."""
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "workloads.yaml").read_text()) if d]
    out = []
    for doc in docs:
        if doc["kind"] == "HealingPolicy" and doc["metadata"]["name"] not in policies:
            continue
        if doc["kind"] == "Container" and doc["metadata"]["name"] != "storefront":
            continue  # the StatefulSet's Container: its own test
        doc["metadata"]["namespace"] = ns
        for rule in doc["spec"].get("rules", []):
            for cond in rule["when"]:
                if "for" in cond and "for_" in shorter:
                    cond["for"] = shorter["for_"]
            if "verify" in shorter:
                rule["verify"] = {"timeout": shorter["verify"], "interval": "200ms"}
        out.append(doc)
    return out


def apply(cluster: ApiServer, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"kind": "List", "apiVersion": "v1",
                                                          "items": list(objects)}))  # fmt: skip


def deployment(cluster: ApiServer, ns: str, name: str = "storefront") -> dict[str, Any]:
    found: dict[str, Any] = cluster.get_json("deployment", name, "-n", ns)
    return found


# --- the controller -----------------------------------------------------------------------


class AskedPlanner:
    """An LLM planner at our Protocol: remembers each request and proposes a rollback."""

    name = "gemini"

    def __init__(self) -> None:
        self.requests: list[PlanRequest] = []

    async def plan(self, request: PlanRequest) -> PlannerAnswer:
        from driftmend.model import Plan, PlanStep

        self.requests.append(request)
        plan = Plan(
            request.resource.key,
            (PlanStep("container_rollback", request.resource.key, {}),),
            "gemini",
            "the logs show a crash at start; go back to the revision that ran",
        )
        return PlannerAnswer(plan, "gemini", "scripted", "prompt", "response", 10, 5, 0.0)

    async def close(self) -> None:
        return None


@asynccontextmanager
async def healing(
    tmp: Path,
    cluster: ApiServer,
    result: LoadResult,
    metrics_url: str | None = None,
    resync: float = RESYNC,
    **kw: Any,
) -> AsyncIterator[Controller]:
    """A started controller on ``result`` whose kubernetes runtime reaches ``cluster``."""
    state = tmp / "state"
    router = RuntimeRouter(
        ProcessRuntime(state, base_dir=REPO),
        lambda: DockerRuntime(state),
        lambda: KubernetesRuntime(
            state, kubeconfig=cluster.kubeconfig, metrics_url=metrics_url, unready_grace=1.0
        ),
    )
    async with running(
        state, result, runtime=router, resync_period=resync, kubeconfig=cluster.kubeconfig, **kw
    ) as controller:
        yield controller


async def fix_of(
    controller: Controller, key: str, rule: str, deadline: float = 60
) -> dict[str, Any]:
    """The newest finished fix of ``key`` by ``rule``."""

    def check() -> dict[str, Any] | None:
        fix = controller.store.fix_records.last_fix(key)
        if fix and fix["rule"] == rule and fix["status"] == "done":
            return dict(fix)
        return None

    return await eventually(check, deadline=deadline, what=f"a finished fix of {key} by {rule}")


async def health(controller: Controller, key: str, want: str, deadline: float = 60) -> None:
    await eventually(
        lambda: (controller.store.resource_records.resource(key) or {}).get("health") == want,
        deadline=deadline,
        what=f"{key} {want}",
    )


def annotations(pod: Pod) -> dict[str, str]:
    return pod["metadata"].get("annotations") or {}


# --- the example policies, one failure each -----------------------------------------------


async def test_a_crash_loop_is_healed_by_a_rollout_restart(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, ns: str
) -> None:
    # Every pod of the first template crash-loops; the restarted template's pods run (a
    # fresh start gets past what broke: a stale cache, a lost connection).
    def behaviour(pod: Pod) -> PodState:
        if "kubectl.kubernetes.io/restartedAt" in annotations(pod):
            return PodState()
        return PodState(ready=False, restarts=6, waiting="CrashLoopBackOff",
                        last_terminated=("Error", 1), logs=["ERROR cache: stale entry"])  # fmt: skip

    kubelet.behave(behaviour)
    apply(cluster, example_workload("Deployment", ns))
    result = load(write_specs(tmp_path / "s.yaml", example_docs(ns, "crash-loop", verify="60s")))
    key = KEY_OF.format(ns=ns)
    async with healing(tmp_path, cluster, result) as controller:
        fix = await fix_of(controller, key, "rollout-restart")
        await health(controller, key, "healthy")
    assert fix["outcome"] == "fixed" and fix["verified"], fix
    assert fix["signals_before"]["container.crash_looping"] is True
    assert fix["signals_after"]["container.crash_looping"] is False
    (step,) = fix["steps"]
    assert step["tool"] == "container_restart"
    assert step["result"]["data"]["how"] == "rollout-restart"  # two bad pods: all of them
    template = deployment(cluster, ns)["spec"]["template"]["metadata"]["annotations"]
    assert template["kubectl.kubernetes.io/restartedAt"] == step["result"]["data"]["restarted_at"]


async def test_a_crash_loop_that_comes_back_is_escalated_with_logs_and_events(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, ns: str
) -> None:
    kubelet.behave(
        lambda pod: PodState(
            ready=False,
            restarts=9,
            waiting="CrashLoopBackOff",
            last_terminated=("Error", 3),
            logs=["ERROR config: DATABASE_URL is not set"],
        )
    )
    apply(cluster, example_workload("Deployment", ns, replicas=1))
    pod = (await asyncio.to_thread(
        kubelet.wait_pods, ns, {"app": "storefront"}, 1,
        predicate=lambda p: bool(p["spec"].get("nodeName"))))[0]  # fmt: skip
    # The Event a kubelet posts for a container in back-off.
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod['metadata']['name']}.backoff", "namespace": ns},
        "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": ns},
        "reason": "BackOff",
        "message": "Back-off restarting failed container web",
        "type": "Warning",
        "count": 9,
        "source": {"component": "kubelet"},
    }
    apply(cluster, event)
    planner = AskedPlanner()
    result = load(write_specs(tmp_path / "s.yaml", example_docs(ns, "crash-loop", verify="3s")))
    key = KEY_OF.format(ns=ns)
    async with healing(tmp_path, cluster, result, planners={"gemini": planner}) as controller:
        first = await fix_of(controller, key, "rollout-restart")
        await eventually(lambda: planner.requests, deadline=60, what="an escalation")
        parked = await eventually(
            lambda: controller.store.pending_records.pending_plans(key=key),
            what="the LLM's plan parked for an operator (mode: approve)",
        )
    assert first["outcome"] != "fixed"  # the restart did not hold: the ladder is spent
    request = planner.requests[0]
    assert any("DATABASE_URL is not set" in line.message for line in request.logs), request.logs
    assert "Back-off restarting failed container" in request.facts["events"]
    assert request.facts["waiting_reason"] == "CrashLoopBackOff"
    assert request.signals["container.crash_looping"] is True
    assert parked[0]["plan"]["steps"][0]["tool"] == "container_rollback"


async def test_an_oom_kill_raises_the_memory_limit_within_its_cap(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, ns: str
) -> None:
    # At 256Mi the app is OOM-killed and restarted by the kubelet, again and again; at the
    # raised limit it runs.
    def behaviour(pod: Pod) -> PodState:
        limit = pod["spec"]["containers"][0]["resources"]["limits"]["memory"]
        if limit == "256Mi":
            return PodState(restarts=4, last_terminated=("OOMKilled", 137))
        return PodState()

    kubelet.behave(behaviour)
    apply(cluster, example_workload("Deployment", ns))
    result = load(write_specs(tmp_path / "s.yaml", example_docs(ns, "oom-killed", verify="60s")))
    key = KEY_OF.format(ns=ns)
    async with healing(tmp_path, cluster, result) as controller:
        fix = await fix_of(controller, key, "raise-memory")
    assert fix["outcome"] == "fixed" and fix["verified"], fix
    assert fix["signals_before"]["container.oom_killed"] is True
    resources = deployment(cluster, ns)["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["memory"] == "512Mi"  # the example's memoryCap
    assert resources["requests"]["memory"] == "128Mi"  # below the new limit: kept
    assert fix["steps"][0]["result"]["data"]["previous"]["memory"] == 256 * 2**20


async def test_a_stalled_rollout_is_rolled_back_once_an_operator_approves(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, ns: str
) -> None:
    kubelet.behave(
        lambda pod: (
            PodState(phase="Pending", ready=False, waiting="ImagePullBackOff")
            if pod["spec"]["containers"][0]["image"].endswith(":broken")
            else PodState()
        )
    )
    apply(cluster, example_workload("Deployment", ns, progressDeadlineSeconds=2))
    await asyncio.to_thread(kubelet.wait_pods, ns, {"app": "storefront"}, 2)
    cluster.kubectl("set", "image", "deployment/storefront", "web=registry.example.com/storefront:broken", "-n", ns)  # fmt: skip
    result = load(
        write_specs(tmp_path / "s.yaml", example_docs(ns, "stalled-rollout", verify="60s"))
    )
    key = KEY_OF.format(ns=ns)
    async with healing(tmp_path, cluster, result) as controller:
        parked = await eventually(
            lambda: controller.store.pending_records.pending_plans(key=key),
            deadline=60,
            what="the rollback parked for an operator's approval",
        )
        assert deployment(cluster, ns)["spec"]["template"]["spec"]["containers"][0][
            "image"
        ].endswith(":broken")
        await controller.operations.approve_plan(parked[0]["id"], "alice")
        fix = await fix_of(controller, key, "roll-back")
    assert fix["outcome"] == "fixed" and fix["verified"], fix
    assert fix["signals_before"]["container.rollout_stalled"] is True
    assert fix["steps"][0]["result"]["data"]["to_revision"] == 1
    dep = deployment(cluster, ns)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


async def test_a_pod_unready_for_long_is_replaced_while_the_others_serve(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, ns: str
) -> None:
    # One pod of two runs but fails its readiness probe for good (a deadlock); its
    # replacement is ready.
    apply(cluster, example_workload("Deployment", ns))
    first = await asyncio.to_thread(kubelet.wait_pods, ns, {"app": "storefront"}, 2)
    bad = first[0]["metadata"]["uid"]
    kubelet.behave(lambda pod: PodState(ready=pod["metadata"]["uid"] != bad))
    result = load(
        write_specs(tmp_path / "s.yaml", example_docs(ns, "unready", for_="1s", verify="60s"))
    )
    key = KEY_OF.format(ns=ns)
    async with healing(tmp_path, cluster, result) as controller:
        fix = await fix_of(controller, key, "replace-unready-pods")
    assert fix["outcome"] == "fixed" and fix["verified"], fix
    assert fix["signals_before"]["container.healthy"] is False
    assert fix["signals_after"]["container.healthy"] is True
    (step,) = fix["steps"]
    assert step["result"]["data"]["how"] == "deleted-pod"  # the other pod kept serving
    assert step["result"]["data"]["pod"] == first[0]["metadata"]["name"]
    pods = kubelet.pods(ns, {"app": "storefront"})
    assert bad not in {
        p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")
    }
    assert first[1]["metadata"]["uid"] in {p["metadata"]["uid"] for p in pods}


async def test_cpu_saturation_scales_out_within_the_cap(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, metrics: MetricsServer, ns: str
) -> None:
    # Two pods at 0.9 of their 1-core limit; the same load over four pods is 0.45 each.
    # metrics.k8s.io cannot be watched: the resync (1 s, the default) is what reads it.
    apply(cluster, example_workload("Deployment", ns))
    load_cores = 1.8

    def spread() -> int:
        pods = [p for p in kubelet.pods(ns, {"app": "storefront"})
                if not p["metadata"].get("deletionTimestamp")]  # fmt: skip
        for pod in pods:
            labels = pod["metadata"]["labels"]
            metrics.set_usage(ns, pod["metadata"]["name"], "web", load_cores / len(pods),
                              200 * 2**20, labels)  # fmt: skip
        return len(pods)

    await asyncio.to_thread(kubelet.wait_pods, ns, {"app": "storefront"}, 2)
    spread()
    result = load(
        write_specs(
            tmp_path / "s.yaml", example_docs(ns, "cpu-saturation", for_="2s", verify="60s")
        )
    )
    key = KEY_OF.format(ns=ns)
    async with healing(
        tmp_path, cluster, result, metrics_url=metrics.url, resync=1.0
    ) as controller:
        await eventually(lambda: deployment(cluster, ns)["spec"]["replicas"] == 4, deadline=60,
                         what="the Deployment scaled out")  # fmt: skip

        async def spread_over_four() -> bool:
            return await asyncio.to_thread(spread) == 4

        await eventually(spread_over_four, deadline=30, what="the load spread over four pods")
        fix = await fix_of(controller, key, "scale-out")
    assert fix["outcome"] == "fixed" and fix["verified"], fix
    assert fix["signals_before"]["container.cpu_used_ratio"] == pytest.approx(0.9)
    assert fix["signals_after"]["container.cpu_used_ratio"] == pytest.approx(0.45)
    (step,) = fix["steps"]
    assert step["tool"] == "container_scale" and step["result"]["data"]["replicas"] == 4
    assert any(f"/namespaces/{ns}/pods" in path for path in metrics.requests)


# --- driftmend eval on the cluster --------------------------------------------------------


def real_kubelet(pod: Pod) -> PodState:
    """What a kubelet makes of the two workload faults of ``driftmend chaos``."""
    (web,) = pod["spec"]["containers"][:1]
    if web["image"].endswith(":driftmend-chaos-missing"):
        return PodState(phase="Pending", ready=False, waiting="ImagePullBackOff",
                        waiting_message=f'Back-off pulling image "{web["image"]}"')  # fmt: skip
    for env in web.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["name"] == "driftmend-chaos-missing":
            return PodState(phase="Pending", ready=False, waiting="CreateContainerConfigError",
                            waiting_message=f'secret "{ref["name"]}" not found')  # fmt: skip
    return PodState()


async def test_eval_scores_the_replay_baseline_on_the_workload_faults(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, ns: str
) -> None:
    # The examples as a platform engineer applies them, in this test's namespace; the eval
    # breaks the storefront through the API, the planner's rollback heals it.
    kubelet.behave(real_kubelet)
    apply(cluster, example_workload("Deployment", ns, progressDeadlineSeconds=2),
          example_workload("StatefulSet", ns))  # fmt: skip
    specs = tmp_path / "specs"
    specs.mkdir()
    text = (EXAMPLES / "workloads.yaml").read_text().replace("driftmend-demo", ns)
    (specs / "workloads.yaml").write_text(text)
    settings = Settings(kubeconfig=cluster.kubeconfig, state_dir=tmp_path / "state")
    # Without --approve, the rollback (destructive) waits for an operator, as in production.
    waiting = await run_eval(
        EvalOptions(planner="replay", specs=specs, deadline_s=60,
                    scenarios=("workload-bad-image",)),
        settings,
    )  # fmt: skip
    (scenario,) = waiting.scenarios
    assert (scenario.outcome, scenario.fixed) == ("pending", False), scenario
    assert scenario.steps == ["container_rollback"]
    report = await run_eval(
        EvalOptions(planner="replay", specs=specs, deadline_s=60, approve=True), settings
    )
    by_name = {s.scenario: s for s in report.scenarios}
    assert set(by_name) == {"workload-bad-image", "workload-config-error"}  # what it can run
    for scenario in by_name.values():
        assert scenario.fixed and scenario.outcome == "fixed", scenario
        assert scenario.steps == ["container_rollback"] and scenario.controller_verified
        assert scenario.key == f"Container/{ns}/storefront"
    image = deployment(cluster, ns)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == GOOD
    assert report.overall()["verified_fix_rate"] == 1.0
    assert report.to_json()["destructive_steps_approved"] is True


# --- the runtime alone: StatefulSets, selectors, refusals ---------------------------------


def container(ns: str, **kubernetes: Any) -> Container:
    return Container.model_validate({
        "apiVersion": "driftmend.dev/v1alpha1", "kind": "Container",
        "metadata": {"name": "db", "namespace": ns},
        "spec": {"runtime": "kubernetes", "kubernetes": kubernetes, "maxReplicas": 3,
                 "limits": {"memoryCap": "1Gi"}},
    })  # fmt: skip


async def test_a_statefulset_by_selector_restarts_and_rolls_back(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, ns: str
) -> None:
    apply(cluster, example_workload("StatefulSet", ns))
    selector = {"app.kubernetes.io/name": "storefront-db"}
    await asyncio.to_thread(kubelet.wait_pods, ns, selector, 1)
    db = container(ns, kind="StatefulSet", selector={"app.kubernetes.io/name": "storefront-db"})
    runtime = KubernetesRuntime(tmp_path, kubeconfig=cluster.kubeconfig)
    try:
        obs = await runtime.observe(db)
        assert obs.signals["container.running"] is True
        assert obs.facts["workload"] == f"StatefulSet {ns}/storefront-db"
        assert obs.signals["container.metrics_available"] is False  # no metrics-server here
        assert "metrics.k8s.io did not answer" in obs.facts["metrics"]
        # A new template (revision 2), then back to the first.
        cluster.kubectl("set", "image", "statefulset/storefront-db", "postgres=registry.example.com/postgres:17", "-n", ns)  # fmt: skip
        await eventually(
            lambda: len(cluster.get_json("controllerrevisions", "-n", ns)["items"]) == 2,
            what="a second ControllerRevision",
        )
        done = await runtime.rollback(db)
        assert (done["from_revision"], done["to_revision"]) == (2, 1)
        image = cluster.get_json("statefulset", "storefront-db", "-n", ns)["spec"]["template"]["spec"]["containers"][0]["image"]  # fmt: skip
        assert image == "registry.example.com/postgres:16"
        restarted = await runtime.restart(db)
        assert restarted["how"] == "rollout-restart"
        scaled = await runtime.scale(db, 2)
        assert scaled["replicas"] == 2
        assert cluster.get_json("statefulset", "storefront-db", "-n", ns)["spec"]["replicas"] == 2
        with pytest.raises(RefusedError, match=r"allowed 0\.\.3"):
            await runtime.scale(db, 5)
    finally:
        await runtime.close()


async def test_stop_and_start_keep_the_replica_count(
    tmp_path: Path, cluster: ApiServer, kubelet: FakeKubelet, ns: str
) -> None:
    apply(cluster, example_workload("Deployment", ns, replicas=3))
    web = container(ns, name="storefront")
    runtime = KubernetesRuntime(tmp_path, kubeconfig=cluster.kubeconfig)
    try:
        await runtime.stop(web)
        assert deployment(cluster, ns)["spec"]["replicas"] == 0
        obs = await eventually(lambda: runtime.observe(web), what="an observation")
        assert obs.signals["container.replicas_desired"] == 3  # still wanted
        assert obs.signals["container.running"] is False
        await runtime.start_replicas(web)
        dep = deployment(cluster, ns)
        assert dep["spec"]["replicas"] == 3
        assert "driftmend.dev/stopped-replicas" not in (dep["metadata"].get("annotations") or {})
    finally:
        await runtime.close()


async def test_an_ambiguous_selector_and_a_missing_workload_are_said(
    tmp_path: Path, cluster: ApiServer, ns: str
) -> None:
    for name in ("a", "b"):
        dep = example_workload("Deployment", ns)
        dep["metadata"]["name"] = name
        dep["metadata"]["labels"] = {"team": "shop"}
        apply(cluster, dep)
    runtime = KubernetesRuntime(tmp_path, kubeconfig=cluster.kubeconfig)
    try:
        with pytest.raises(PermanentError, match=r"2 Deployments in .* match team=shop \(a, b\)"):
            await runtime.observe(container(ns, selector={"team": "shop"}))
        obs = await runtime.observe(container(ns, name="gone"))
        assert obs.signals["container.running"] is False
        assert obs.facts["missing"] == f"no Deployment {ns}/gone"
        with pytest.raises(PermanentError, match="no Deployment"):
            await runtime.restart(container(ns, name="gone"))
    finally:
        await runtime.close()


async def test_an_unreachable_cluster_fails_its_container_with_the_setting_to_fix(
    tmp_path: Path,
) -> None:
    runtime = KubernetesRuntime(tmp_path, kubeconfig=tmp_path / "no-such-kubeconfig")
    with pytest.raises(PermanentError, match="DRIFTMEND_KUBECONFIG"):
        await runtime.observe(container("shop", name="web"))
    await runtime.close()
