"""The core loop end to end on real processes: a crash healed and recorded, a restarted
controller adopting what runs, and a crash loop escalated to an operator."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import psutil
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


# --- verification that ends as soon as the answer is known ---------------------------------

# The web app, unless the file `broken` exists in its state directory: then it dies, as
# many seconds after it starts as the file says, with an error in its log.
BREAKABLE = (
    "import os, pathlib, sys, time\n"
    "flag = pathlib.Path(os.environ['DRIFTMEND_STATE_DIR']) / 'broken'\n"
    "if flag.exists():\n"
    "    time.sleep(float(flag.read_text()))\n"
    "    print('ERROR cannot start: broken', flush=True)\n"
    "    sys.exit(3)\n" + WEB
)


def probed_web(name: str, port: int, command: list[str], **health: Any) -> dict[str, Any]:
    """``web_container`` with the demo's probe (1 s interval), or the one given."""
    doc = web_container(name, port, command)
    doc["spec"]["health"] = {"http": {"path": "/healthz"}, "interval": "1s", "timeout": "1s",
                             "failureThreshold": 3, **health}  # fmt: skip
    return doc


def demo_crash_policy() -> dict[str, Any]:
    """``crash_policy`` with the demo's verify (a 30 s timeout, looked at every 0.5 s)."""
    doc = crash_policy()
    doc["spec"]["rules"][0]["verify"] = {"timeout": "30s"}
    return doc


async def finished_fix(controller: Any, key: str, deadline: float = 20.0) -> Any:
    return await eventually(
        lambda: (f := controller.store.fix_records.last_fix(key)) and f["status"] == "done" and f,
        deadline=deadline,
        what=f"a finished fix of {key}",
    )


async def healthy(controller: Any, key: str) -> None:
    """Healthy in the store, and its probe passed (a health not known yet is no drift)."""
    await eventually(
        lambda: (controller.store.resource_records.resource(key) or {}).get("health") == "healthy",
        what=f"{key} healthy",
    )
    container = controller.resources[key]

    async def probed() -> bool:
        return (await controller.runtime.observe(container)).get("container.healthy") is True

    await eventually(probed, what=f"{key}'s probe passed")


async def broken_restart(tmp_path: Path, dies_after: float) -> tuple[Any, float]:
    """Kill the healthy app after breaking its start; the fix that followed and when the
    new replica started dying (the restart step's end)."""
    port = free_port()
    command = [sys.executable, "-c", BREAKABLE]
    specs = [probed_web("web", port, command), demo_crash_policy()]
    result = load(write_specs(tmp_path / "specs.yaml", specs))
    state = tmp_path / "state"
    try:
        async with running(state, result) as controller:
            await healthy(controller, "Container/web")
            stats = await controller.runtime.stats(result.resources[0])  # type: ignore[arg-type]
            (state / "containers" / "default.web" / "broken").write_text(str(dies_after))
            os.kill(stats["replicas"][0]["pid"], signal.SIGKILL)
            fix = await finished_fix(controller, "Container/web")
            return controller.store.fix_records.fix(fix["id"]), dies_after
    finally:
        await down_all(state, result)


async def test_a_restart_that_dies_at_start_fails_its_fix_within_a_second(
    tmp_path: Path,
) -> None:
    fix, _ = await broken_restart(tmp_path, dies_after=0.03)
    assert fix["outcome"] == "failed" and not fix["verified"]
    [step] = fix["steps"]
    assert step["tool"] == "container_restart" and step["status"] == "error"
    # Why, in the step's error and the fix's message: the exit and the log's last words.
    assert "exited with code 3" in step["error"], step["error"]
    assert "cannot start: broken" in step["error"]
    assert "did not stay up" in fix["message"]
    assert step["result"]["data"]["alive"] == [False]
    assert fix["finished_at"] - fix["started_at"] < 1.0, fix


async def test_a_replica_that_dies_after_its_restart_fails_verification_at_once(
    tmp_path: Path,
) -> None:
    """It outlives the restart's start-up grace (the step is ok), then exits: verification
    fails on that exit, not at its 30 s timeout."""
    fix, dies_after = await broken_restart(tmp_path, dies_after=0.8)
    assert fix["outcome"] == "failed" and not fix["verified"]
    assert fix["steps"][0]["status"] == "ok"
    assert "a replica exited" in fix["message"] and "code 3" in fix["message"], fix["message"]
    assert fix["signals_after"]["container.running"] is False
    # The replica started during the step; it died `dies_after` later, the fix within 1 s.
    assert fix["finished_at"] - fix["started_at"] < dies_after + 1.0, fix


def _first_answer(port: int, stop: threading.Event) -> float | None:
    """In a thread of its own (the controller's loop must not slow it down): poll /healthz
    every 10 ms until it answers 200; the time it first did."""
    while not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return time.time()
        except OSError:
            pass
        finally:
            conn.close()
        stop.wait(0.01)
    return None


async def test_recovery_is_recorded_when_the_app_answers_again(tmp_path: Path) -> None:
    """The fix's recovered_at is within 0.1 s of the moment an HTTP client sees the app
    answer again, although its probe runs every second and verify looks every 0.5 s."""
    port = free_port()
    result = load(
        write_specs(
            tmp_path / "specs.yaml",
            [probed_web("web", port, [sys.executable, "-c", WEB]), demo_crash_policy()],
        )
    )
    state = tmp_path / "state"
    try:
        async with running(state, result) as controller:
            await healthy(controller, "Container/web")
            stats = await controller.runtime.stats(result.resources[0])  # type: ignore[arg-type]
            os.kill(stats["replicas"][0]["pid"], signal.SIGKILL)
            killed_at = time.time()
            await eventually(lambda: not _answers(port), what="the app down")
            stop = threading.Event()
            poller = asyncio.create_task(asyncio.to_thread(_first_answer, port, stop))
            try:
                fix = await finished_fix(controller, "Container/web")
                answered = await asyncio.wait_for(asyncio.shield(poller), 10)
            finally:
                stop.set()
                await poller
            assert fix["outcome"] == "fixed", fix["message"]
            assert answered is not None
            print(
                f"kill -9 -> HTTP back {answered - killed_at:.3f}s, "
                f"recorded recovered {fix['recovered_at'] - killed_at:.3f}s"
            )
            assert abs(fix["recovered_at"] - answered) <= 0.1, (fix["recovered_at"], answered)
    finally:
        await down_all(state, result)


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


async def test_a_hung_app_heals_within_its_declared_window(tmp_path: Path) -> None:
    """SIGSTOP: 3 probes of 500 ms fail, then `for: 3s` (a declared window of 4.5 s); the
    restart wakes it with SIGCONT so SIGTERM ends it at once; healed within 4.5 s + 2 s."""
    port = free_port()
    web = probed_web("web", port, [sys.executable, "-c", WEB], interval="500ms", timeout="500ms")
    policy = crash_policy()
    policy["spec"]["rules"] = [
        {
            "name": "restart-when-unhealthy",
            "when": [{"signal": "container.healthy", "value": False, "for": "3s"}],
            "do": [{"tool": "container_restart"}],
            "verify": {"timeout": "30s"},
        }
    ]
    result = load(write_specs(tmp_path / "specs.yaml", [web, policy]))
    state = tmp_path / "state"
    window = 3 * 0.5 + 3.0
    try:
        async with running(state, result) as controller:
            await healthy(controller, "Container/web")
            stats = await controller.runtime.stats(result.resources[0])  # type: ignore[arg-type]
            pid = stats["replicas"][0]["pid"]
            os.kill(pid, signal.SIGSTOP)
            hung_at = time.time()
            fix = await finished_fix(controller, "Container/web", deadline=window + 10)
            assert fix["outcome"] == "fixed", fix["message"]
            assert fix["rule"] == "restart-when-unhealthy"
            healed = fix["recovered_at"] - hung_at
            print(f"hang healed in {healed:.2f}s for a declared window of {window:g}s")
            assert healed <= window + 2.0, healed
            assert _answers(port)
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        await down_all(state, result)
