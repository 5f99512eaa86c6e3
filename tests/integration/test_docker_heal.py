"""The same policies heal the same failures on Docker containers, through the real Controller.

A real engine, real containers on local/hostbase with host networking: a crash (``docker
kill``) healed by restart, an OOM kill detected as an OOM kill and healed by its own rung
(the memory limit raised within its cap), a failing Docker healthcheck healed, and a removed
container reported as a drift and recreated. The resync period is longer than any wait
here, and the events the runtime reported are recorded: the Docker event stream (``die``,
``oom``, ``health_status``, ``destroy``) put the resource on the queue.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from driftmend.controller import Controller
from driftmend.spec import Container, LoadResult
from tests.integration.docker_harness import (
    HOST_MOUNTS,
    WEB,
    Engine,
    docker_container,
    policy,
    record_events,
    running,
)
from tests.integration.harness import eventually, load, write_specs
from tests.services import free_port

pytestmark = pytest.mark.integration

RESYNC = 60.0  # longer than any wait below: only events (and requeues) drive these passes


def restart_rule(name: str, signal: str, value: bool, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "when": [{"signal": signal, "value": value}],
        "do": [{"tool": "container_restart"}],
        "verify": {"timeout": "20s", "interval": "100ms"},
        "attempts": {"max": 3, "window": "5m"},
        **extra,
    }


def container_of(result: LoadResult, name: str) -> Container:
    return next(r for r in result.resources if isinstance(r, Container) and r.name == name)


async def finished_fix(
    controller: Controller, key: str, after: int = 0, deadline: float = 30
) -> dict[str, Any]:
    """The newest fix of ``key`` with an id above ``after``, once it has finished."""

    def check() -> dict[str, Any] | None:
        fix = controller.store.fix_records.last_fix(key)
        return fix if fix and fix["id"] > after and fix["status"] == "done" else None

    return await eventually(check, deadline=deadline, what=f"a finished fix of {key}")


async def observed(controller: Controller, c: Container, **want: Any) -> dict[str, Any]:
    """Observe until every ``signal=value`` in ``want`` holds (dots spelled as ``__``)."""
    names = {k.replace("__", "."): v for k, v in want.items()}

    async def check() -> dict[str, Any] | None:
        obs = await controller.runtime.observe(c)
        ok = all(obs.signals.get(n) == v for n, v in names.items())
        return dict(obs.signals) if ok else None

    return await eventually(check, deadline=20, interval=0.1, what=f"{c.key} with {names}")


async def test_crash_is_healed_by_restart(engine: Engine, tmp_path: Path) -> None:
    port = free_port()
    docs = [
        docker_container(
            "web",
            command=["python3", "-u", "-c", WEB],
            port=port,
            health={"http": {"path": "/healthz"}, "interval": "200ms", "failureThreshold": 2},
        ),
        policy("app-crash", [restart_rule("restart-on-exit", "container.running", False)]),
    ]
    result = load(write_specs(tmp_path / "specs.yaml", docs))
    web = container_of(result, "web")
    async with running(tmp_path / "state", result, resync_period=RESYNC) as controller:
        events = record_events(controller)
        await observed(controller, web, container__healthy=True)
        before = (await controller.runtime.stats(web))["replicas"][0]

        await asyncio.to_thread(engine.api.kill, before["container"])  # SIGKILL

        fix = await finished_fix(controller, "Container/web")
        assert fix["outcome"] == "fixed", fix
        assert fix["verified"]
        assert (fix["policy"], fix["rule"]) == ("app-crash", "restart-on-exit")
        assert "container.running is false" in fix["root_cause"]
        assert [(s["tool"], s["status"]) for s in fix["steps"]] == [("container_restart", "ok")]
        assert fix["signals_before"]["container.running"] is False
        assert fix["signals_before"]["container.exit_code"] == 137  # Docker's code for SIGKILL
        assert fix["signals_before"]["container.oom_killed"] is False
        assert fix["signals_after"]["container.running"] is True
        assert fix["signals_after"]["container.healthy"] is True  # our probe passed again
        # The engine's `die` put it on the queue (the resync is a minute away), and the
        # record's times are ordered: the fault, its detection, the recovery.
        assert ("Container/web", "exit") in events
        assert 0 <= fix["time_to_detect"] <= fix["time_to_recover"]

        # The same container, restarted: a new process that answers.
        after = (await controller.runtime.stats(web))["replicas"][0]
        assert after["container"] == before["container"] and after["pid"] != before["pid"]
        async with httpx2.AsyncClient(trust_env=False) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        # The container's own output reached the log accumulator, from both of its runs.
        lines = await eventually(
            lambda: [
                line
                for line in controller.logs.recent("Container/web", 200)
                if "web starting" in line.message
            ][1:],
            what="the log lines of both runs",
        )
        assert lines


# Needs 64 MiB on every run: over its 48 MiB limit the OOM killer ends it each time, so only
# a raised limit heals it (a plain restart would meet the same end).
NEEDS_64_MIB = (
    "import time\n"
    "print('INFO allocating 64 MiB', flush=True)\n"
    "hog = bytearray(64 << 20)\n"
    "print('INFO running', flush=True)\n"
    "time.sleep(3600)\n"
)


async def test_oom_kill_is_detected_as_oom_and_healed_by_raising_the_limit(
    engine: Engine, tmp_path: Path
) -> None:
    docs = [
        docker_container(
            "hog",
            command=["python3", "-u", "-c", NEEDS_64_MIB],
            limits={"memory": "48Mi", "memoryCap": "96Mi"},
        ),
        policy(
            "app-crash",
            [
                {
                    "name": "raise-memory-after-oom-kill",
                    "when": [{"signal": "container.oom_killed", "value": True}],
                    "do": [{"tool": "container_set_limits", "params": {"memory": "96Mi"}}],
                    "verify": {"timeout": "20s", "interval": "100ms"},
                    "attempts": {"max": 1, "window": "1h"},
                },
                restart_rule("restart-on-exit", "container.running", False),
            ],
        ),
    ]
    result = load(write_specs(tmp_path / "specs.yaml", docs))
    hog = container_of(result, "hog")
    async with running(tmp_path / "state", result, resync_period=RESYNC) as controller:
        fix = await finished_fix(controller, "Container/hog")
        assert fix["outcome"] == "fixed", fix
        # Detected as an OOM kill, not as a plain crash: its own rung ran, and only once.
        assert fix["rule"] == "raise-memory-after-oom-kill"
        assert fix["signals_before"]["container.oom_killed"] is True
        assert fix["signals_before"]["container.exit_code"] == 137
        assert fix["signals_before"]["container.running"] is False
        assert "container.oom_killed is true" in fix["root_cause"]
        [step] = fix["steps"]
        assert (step["tool"], step["status"]) == ("container_set_limits", "ok")
        assert step["result"]["data"]["memory"] == 96 << 20
        assert [s["replica"] for s in step["result"]["data"]["started"]] == [0]
        assert fix["signals_after"]["container.running"] is True
        assert fix["signals_after"]["container.oom_killed"] is False

        async def holding() -> dict[str, Any] | None:
            row = (await controller.runtime.stats(hog))["replicas"][0]
            return row if row["running"] and (row["memory_bytes"] or 0) > 48 << 20 else None

        # Above the old limit, within the new one: the raise is what healed it.
        stats = await eventually(holding, what="the hog holding 64 MiB under the raised limit")
        assert stats["memory_limit"] == 96 << 20
        assert len(controller.store.fix_records.fixes(key="Container/hog")) == 1


# Healthy (per its Docker healthcheck) only from its second run on: the first run marks that
# it started and stays unhealthy until restarted.
SICK_ONCE = (
    "import pathlib, time\n"
    "d = pathlib.Path('/data')\n"
    "if (d / 'started').exists(): (d / 'healthy').write_text('1')\n"
    "else: (d / 'started').write_text('1')\n"
    "print('INFO up', flush=True)\n"
    "time.sleep(3600)\n"
)


async def test_failing_docker_healthcheck_is_healed(engine: Engine, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    docs = [
        docker_container(
            "sick",
            command=["python3", "-u", "-c", SICK_ONCE],
            docker_extra={
                "volumes": [*HOST_MOUNTS, f"{data}:/data"],
                "healthcheck": {
                    "test": ["CMD", "test", "-f", "/data/healthy"],
                    "interval": "300ms",
                    "timeout": "2s",
                    "retries": 2,
                },
            },
        ),
        policy(
            "app-health",
            [restart_rule("restart-when-unhealthy", "container.healthy", False)],
        ),
    ]
    result = load(write_specs(tmp_path / "specs.yaml", docs))
    sick = container_of(result, "sick")
    async with running(tmp_path / "state", result, resync_period=RESYNC) as controller:
        fix = await finished_fix(controller, "Container/sick")
        assert fix["outcome"] == "fixed", fix
        assert fix["rule"] == "restart-when-unhealthy"
        assert fix["signals_before"]["container.healthy"] is False
        assert fix["signals_before"]["container.running"] is True
        assert fix["signals_before"]["container.health_failures"] >= 2
        signals = await observed(controller, sick, container__healthy=True)
        assert signals["container.health_failures"] == 0
        assert len(controller.store.fix_records.fixes(key="Container/sick")) == 1


async def test_removed_container_is_a_drift_and_is_recreated(
    engine: Engine, tmp_path: Path
) -> None:
    port = free_port()
    docs = [
        docker_container("web", command=["python3", "-u", "-c", WEB], port=port),
        policy("app-crash", [restart_rule("restart-on-exit", "container.running", False)]),
    ]
    result = load(write_specs(tmp_path / "specs.yaml", docs))
    web = container_of(result, "web")
    async with running(tmp_path / "state", result, resync_period=RESYNC) as controller:
        await observed(controller, web, container__running=True)
        old = (await controller.runtime.stats(web))["replicas"][0]

        await asyncio.to_thread(engine.api.remove_container, old["container"], force=True)

        # Seen as a replica that is not running (no error of the controller), and healed.
        fix = await finished_fix(controller, "Container/web")
        assert fix["outcome"] == "fixed", fix
        assert fix["signals_before"]["container.running"] is False
        assert fix["signals_before"]["container.replicas_running"] == 0
        assert fix["steps"][0]["result"]["data"]["how"] == ["created"]
        new = (await controller.runtime.stats(web))["replicas"][0]
        assert new["running"] and new["id"] != old["id"] and new["container"] == old["container"]
        errors = [
            r
            for r in controller.store.reconciliation_records.reconciliations(
                key="Container/web", limit=100
            )
            if r["outcome"] == "error"
        ]
        assert errors == []


# A web app that starts burning a core on GET /burn and leaking memory on GET /leak: fast
# up to 200 MiB, then 4 MiB/s. Unlike a process's, a container's memory limit is enforced:
# a leak that crossed the last 10 % of the limit faster than the policy's `for: 2s` would
# meet the kernel's OOM killer first (the Compose policies' OOM rung covers that case).
HOG = (
    "import http.server, os, threading, time\n"
    "hog = []\n"
    "def burn():\n"
    "    while True: pass\n"
    "def leak():\n"
    "    while True:\n"
    "        hog.append(b'x' * (1 << 20)); time.sleep(0.02 if len(hog) < 200 else 0.25)\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        job = {'/burn': burn, '/leak': leak}.get(self.path)\n"
    "        if job: threading.Thread(target=job, daemon=True).start()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
)
LOCAL_POLICIES = Path(__file__).resolve().parents[2] / "manifests/examples/local/policies.yaml"


def local_policies(*names: str) -> list[dict[str, Any]]:
    """The demo's own policies (manifests/examples/local/), unchanged, by name."""
    docs = yaml.safe_load_all(LOCAL_POLICIES.read_text(encoding="utf-8"))
    return [d for d in docs if d and d["metadata"]["name"] in names]


async def test_cpu_burn_and_memory_leak_are_healed_by_the_demo_policies(
    engine: Engine, tmp_path: Path
) -> None:
    """The local demo's app-cpu-burn and app-memory-leak policies, as they are, heal a
    Docker container: its CPU and memory ratios come from Docker's own stats against the
    limits Docker enforces."""
    port = free_port()
    docs = [
        docker_container(
            "shop",
            command=["python3", "-u", "-c", HOG],
            port=port,
            health={"http": {"path": "/"}, "interval": "500ms", "failureThreshold": 3},
            labels={"app": "shop", "tier": "web"},
            limits={"cpu": 1, "memory": "256Mi"},
        ),
        *local_policies("app-cpu-burn", "app-memory-leak"),
    ]
    result = load(write_specs(tmp_path / "specs.yaml", docs))
    shop = container_of(result, "shop")
    async with running(tmp_path / "state", result, resync_period=1.0) as controller:
        await observed(controller, shop, container__healthy=True)
        for path, rule, signal, threshold in (
            ("/burn", "restart-on-cpu-burn", "container.cpu_used_ratio", 0.8),
            ("/leak", "restart-on-memory-leak", "container.memory_used_ratio", 0.9),
        ):
            last = (controller.store.fix_records.last_fix("Container/shop") or {}).get("id", 0)
            async with httpx2.AsyncClient(trust_env=False, timeout=5) as client:
                assert (await client.get(f"http://127.0.0.1:{port}{path}")).status_code == 200
            fix = await finished_fix(controller, "Container/shop", after=last, deadline=60)
            assert fix["outcome"] == "fixed" and fix["verified"], fix
            assert fix["rule"] == rule
            assert [s["tool"] for s in fix["steps"]] == ["container_restart"]
            assert fix["signals_before"][signal] >= threshold
            assert fix["signals_after"][signal] < threshold
