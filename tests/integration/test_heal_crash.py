"""The core loop end to end on real processes: a crash healed and recorded, a restarted
controller adopting what runs, and a crash loop escalated to an operator."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from driftmend.spec import LoadResult
from tests.integration.harness import down_all, eventually, load, running, write_specs
from tests.services import free_port

pytestmark = pytest.mark.integration

API = "driftmend.dev/v1alpha1"

# A tiny web app: /healthz answers 200; it logs one line per request to stdout.
WEB = (
    "import http.server, os, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): print('INFO', *a, flush=True)\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
)


def web_container(name: str, port: int, command: list[str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Container",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "process": {"command": command or [sys.executable, "-c", WEB]},
            "port": port,
            "portEnv": "PORT",
            "health": {
                "http": {"path": "/healthz"},
                "interval": "200ms",
                "timeout": "500ms",
                "failureThreshold": 2,
            },
        },
    }


def crash_policy(max_attempts: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "HealingPolicy",
        "metadata": {"name": "app-crash"},
        "spec": {
            "selector": {"kind": "Container", "matchLabels": {"app": "web"}},
            "rules": [
                {
                    "name": "restart-on-exit",
                    "when": [{"signal": "container.running", "value": False}],
                    "do": [{"tool": "container_restart"}],
                    "verify": {"timeout": "10s", "interval": "100ms"},
                    "attempts": {"max": max_attempts, "window": "5m"},
                }
            ],
        },
    }


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[tuple[Path, LoadResult, int]]:
    port = free_port()
    specs = write_specs(tmp_path / "specs.yaml", [web_container("web", port), crash_policy()])
    result = load(specs)
    state = tmp_path / "state"
    yield state, result, port
    await down_all(state, result)


async def test_crash_is_healed_verified_and_recorded(web: tuple[Path, LoadResult, int]) -> None:
    state, result, port = web
    async with running(state, result) as controller:
        await eventually(
            lambda: (
                (controller.store.resource_records.resource("Container/web") or {}).get("health")
                == "healthy"
            ),
            what="web healthy",
        )
        before = await controller.runtime.stats(result.resources[0])  # type: ignore[arg-type]
        old_pid = before["replicas"][0]["pid"]

        os.kill(old_pid, signal.SIGKILL)

        fix = await eventually(
            lambda: controller.store.fix_records.last_fix("Container/web"), what="a fix"
        )
        fix = await eventually(
            lambda: (
                (f := controller.store.fix_records.last_fix("Container/web"))
                and f["status"] == "done"
                and f
            ),
            what="the fix finished",
        )
        assert fix["outcome"] == "fixed", fix
        assert fix["verified"]
        assert (
            fix["source"] == "rules"
            and fix["policy"] == "app-crash"
            and fix["rule"] == "restart-on-exit"
        )
        assert "container.running is false" in fix["root_cause"]
        assert [s["tool"] for s in fix["steps"]] == ["container_restart"]
        assert fix["steps"][0]["status"] == "ok"
        assert fix["signals_before"]["container.running"] is False
        assert fix["signals_after"]["container.running"] is True
        assert fix["signals_after"]["container.healthy"] is True
        assert 0 <= fix["time_to_detect"] < 2.0
        assert (
            fix["time_to_recover"] is not None
            and fix["time_to_detect"] <= fix["time_to_recover"] < 10.0
        )

        # The app really answers again, from a new process.
        after = await controller.runtime.stats(result.resources[0])  # type: ignore[arg-type]
        assert after["replicas"][0]["pid"] != old_pid
        async with httpx2.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        assert (
            controller.metrics.registry.get_sample_value(
                "driftmend_fix_total", {"tool": "container_restart", "outcome": "ok"}
            )
            == 1.0
        )
        await eventually(
            lambda: (
                (controller.store.resource_records.resource("Container/web") or {}).get("health")
                == "healthy"
            ),
            what="healthy again",
        )


async def test_restarted_controller_adopts_running_processes(
    web: tuple[Path, LoadResult, int],
) -> None:
    state, result, port = web
    async with running(state, result) as controller:
        await eventually(
            lambda: (
                (controller.store.resource_records.resource("Container/web") or {}).get("health")
                == "healthy"
            ),
            what="web healthy",
        )
        pid = (await controller.runtime.stats(result.resources[0]))["replicas"][0]["pid"]  # type: ignore[arg-type]

    async with running(state, result) as controller:
        res = await controller.reconcile("Container/web")
        assert res.outcome.value == "in-sync", res
        stats = await controller.runtime.stats(result.resources[0])  # type: ignore[arg-type]
        assert [r["pid"] for r in stats["replicas"]] == [pid]
        # Still watched: its death is noticed and healed by the adopting controller.
        os.kill(pid, signal.SIGKILL)
        fix = await eventually(
            lambda: (
                (f := controller.store.fix_records.last_fix("Container/web"))
                and f["status"] == "done"
                and f
            ),
            what="the fix of the adopted process",
        )
        assert fix["outcome"] == "fixed"
    # No duplicate was started by either controller: one server on this port, the new one.
    assert len(_servers_on(port)) == 1


def _servers_on(port: int) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "ThreadingHTTPServer" in " ".join(proc.info["cmdline"] or []) and proc.environ().get(
                "PORT"
            ) == str(port):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


async def test_a_crash_loop_is_flagged_and_retried_with_its_backoff(tmp_path: Path) -> None:
    port = free_port()
    crashing = web_container(
        "web",
        port,
        [sys.executable, "-c", "import sys; print('ERROR boom', flush=True); sys.exit(3)"],
    )
    policy = crash_policy(max_attempts=2)
    policy["spec"]["rules"][0]["verify"]["timeout"] = "2s"
    policy["spec"]["backoff"] = {"initial": "1s", "max": "2s"}
    result = load(write_specs(tmp_path / "specs.yaml", [crashing, policy]))
    state = tmp_path / "state"
    key = "Container/web"
    try:
        async with running(state, result) as controller:
            row = await eventually(
                lambda: (
                    (r := controller.store.resource_records.resource(key))
                    and r["needs_operator"]
                    and r
                ),
                deadline=40,
                what="needs-operator",
            )
            assert "ladder exhausted" in (row["needs_operator_reason"] or "")
            assert "used 2/2 attempts" in (row["needs_operator_reason"] or "")
            # The kubelet's way: the ladder is spent, but the spec's convergence goes on.
            retries = await eventually(
                lambda: (
                    len(
                        found := [
                            f
                            for f in controller.store.fix_records.fixes(key=key)
                            if f.plan.get("trigger") == "backoff" and f.status == "done"
                        ]
                    )
                    >= 3
                    and found
                ),
                deadline=40,
                what="three backoff retries",
            )
            third, second, first = retries[:3]
            assert all(f.outcome == "failed" for f in retries)
            # Each retry waited its backoff after the previous fix ended: 1 s, then 2 s (max).
            assert second.detected_at - first.finished_at >= 2.0 - 0.05
            assert third.detected_at - second.finished_at >= 2.0 - 0.05
            row = controller.store.resource_records.resource(key)
            assert row is not None and row["needs_operator"]
            assert row["health"] == "needs-operator"
            assert (
                controller.store.fix_records.last_fix(key)["signals_after"]["container.exit_code"]
                == 3
            )
    finally:
        await down_all(state, result)
