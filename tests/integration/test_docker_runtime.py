"""The Docker runtime's tools against a real engine: scale, limits, stop, a watched container.

These call the runtime directly (as the tools do); test_docker_heal.py drives the same
runtime through the Controller.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from driftmend.drivers.docker import DockerRuntime, parse_time_ns
from driftmend.drivers.docker.logs import FIRST_TAIL
from driftmend.drivers.runtimes import RuntimeRouter
from driftmend.errors import PermanentError
from driftmend.logs import parse_line
from driftmend.spec import Container
from tests.integration.docker_harness import (
    HOST_MOUNTS,
    WEB,
    Engine,
    docker_container,
    router,
)
from tests.integration.harness import eventually
from tests.integration.test_process_runtime import free_ports

pytestmark = pytest.mark.integration


@pytest.fixture
async def rt(engine: Engine, tmp_path: Path) -> AsyncIterator[RuntimeRouter]:
    runtime = router(tmp_path / "state")
    runtime.set_event_sink(lambda key, reason: None)
    await runtime.start()
    yield runtime
    await runtime.close()


def container(name: str, **kw: Any) -> Container:
    return Container.model_validate(docker_container(name, **kw))


def names(engine: Engine, key: str) -> list[str]:
    found = engine.api.containers(all=True, filters={"label": [f"driftmend.key={key}"]})
    return sorted(c["Names"][0].lstrip("/") for c in found)


async def answers(port: int) -> bool:
    async with httpx2.AsyncClient(trust_env=False, timeout=1) as client:
        try:
            return (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200
        except httpx2.HTTPError:
            return False


async def test_scale_up_and_down(engine: Engine, rt: RuntimeRouter) -> None:
    port = free_ports(3)
    web = container("web", command=["python3", "-u", "-c", WEB], port=port, maxReplicas=3)
    assert await rt.ensure(web) == ["created Container/web replica 0 (driftmend-default.web-0)"]
    assert await rt.ensure(web) == []  # level-triggered: nothing more to create

    out = await rt.scale(web, 3)
    assert out["started"] == [1, 2] and out["removed"] == []
    assert names(engine, "Container/web") == [f"driftmend-default.web-{i}" for i in range(3)]
    for i in range(3):  # replica i listens on port+i (portEnv)
        await eventually(lambda i=i: answers(port + i), what=f"replica {i} answers")
    obs = await rt.observe(web)
    assert obs.signals["container.replicas_running"] == 3
    assert obs.signals["container.replicas_desired"] == 3
    assert obs.signals["container.running"] is True
    assert await rt.ensure(web) == []  # the override holds: ensure does not undo it

    out = await rt.scale(web, 1)
    assert out["started"] == []
    assert [r["replica"] for r in out["removed"]] == [2, 1]
    assert names(engine, "Container/web") == ["driftmend-default.web-0"]
    obs = await rt.observe(web)
    assert (obs.signals["container.replicas_running"], obs.signals["container.running"]) == (
        1,
        True,
    )
    assert not await answers(port + 1)

    with pytest.raises(PermanentError, match="maxReplicas"):
        await rt.scale(web, 4)


# Allocates 40 MiB and keeps it: more than a 32 MiB limit allows, well within 96 MiB.
HOG = (
    "import time\n"
    "hog = bytearray(40 << 20)\n"
    "print('INFO holding 40 MiB', flush=True)\n"
    "time.sleep(3600)\n"
)


async def test_oom_then_raise_the_limit_within_its_cap(engine: Engine, rt: RuntimeRouter) -> None:
    hog = container(
        "hog",
        command=["python3", "-u", "-c", HOG],
        limits={"memory": "32Mi", "memoryCap": "96Mi", "cpu": 0.5, "cpuCap": 1},
    )
    await rt.ensure(hog)

    async def oom_killed() -> Any:
        obs = await rt.observe(hog)
        return obs if obs.signals["container.oom_killed"] else None

    obs = await eventually(oom_killed, what="the OOM kill")
    assert obs.signals["container.running"] is False
    assert obs.signals["container.exit_code"] == 137
    assert obs.facts["last_exit_reason"] == "killed by the out-of-memory killer (memory limit 32Mi)"

    with pytest.raises(PermanentError, match="memoryCap"):
        await rt.set_limits(hog, memory=128 << 20)
    with pytest.raises(PermanentError, match="cpuCap"):
        await rt.set_limits(hog, cpu=1.5)
    with pytest.raises(PermanentError, match=r"below the floor of 0\.1 cores"):
        await rt.set_limits(hog, cpu=0.05)
    # Raising the limit also starts the OOM-killed replica again, with the new limit.
    out = await rt.set_limits(hog, cpu=1.0, memory=96 << 20)
    assert out["previous"] == {"cpu": 0.5, "memory": 32 << 20}
    assert (out["cpu"], out["memory"]) == (1.0, 96 << 20)
    assert [(s["replica"], s["how"]) for s in out["started"]] == [(0, "started")]
    host = engine.api.inspect_container("driftmend-default.hog-0")["HostConfig"]
    assert host["Memory"] == 96 << 20 and host["CpuQuota"] == 100_000

    async def holding() -> Any:
        row = (await rt.stats(hog))["replicas"][0]  # waits for a fresh stats reading
        return row if row["running"] and (row["memory_bytes"] or 0) > 40 << 20 else None

    stats = await eventually(holding, what="the hog holding its 40 MiB under the raised limit")
    assert stats["memory_limit"] == 96 << 20
    obs = await rt.observe(hog)
    assert obs.signals["container.running"] is True, obs
    assert obs.signals["container.oom_killed"] is False
    assert 0.4 < obs.signals["container.memory_used_ratio"] < 1  # of the raised limit

    # Lowering stops at a floor: below what the hog holds now, it would be OOM-killed at once.
    with pytest.raises(PermanentError, match="below the floor"):
        await rt.set_limits(hog, memory=32 << 20)

    # The process runtime has no limits to update: it refuses, and says what to do instead.
    proc = Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": "p"},
            "spec": {"process": {"command": ["true"]}},
        }
    )
    with pytest.raises(PermanentError, match="cannot enforce CPU or memory"):
        await rt.set_limits(proc, memory=64 << 20)


async def test_raising_a_limit_needs_a_declared_cap(engine: Engine, rt: RuntimeRouter) -> None:
    web = container(
        "capless",
        command=["python3", "-c", "import time; time.sleep(3600)"],
        limits={"memory": "64Mi", "cpu": 0.5},
    )
    await rt.ensure(web)
    with pytest.raises(PermanentError, match=r"no spec.limits.memoryCap is declared"):
        await rt.set_limits(web, memory=128 << 20)
    with pytest.raises(PermanentError, match=r"no spec.limits.cpuCap is declared"):
        await rt.set_limits(web, cpu=1.0)
    out = await rt.set_limits(web, memory=48 << 20)  # lowering needs no cap
    assert out["memory"] == 48 << 20 and out["started"] == []
    host = engine.api.inspect_container("driftmend-default.capless-0")["HostConfig"]
    assert host["Memory"] == 48 << 20


async def test_a_command_missing_from_the_image_is_permanent(
    engine: Engine, rt: RuntimeRouter
) -> None:
    # Without Docker's init, the engine itself execs the command, and answers 400 (exec: not
    # found): retrying will not help.
    broken = container("broken", command=["/no/such/binary"], docker_extra={"init": False})
    with pytest.raises(PermanentError, match=r"no/such/binary"):
        await rt.ensure(broken)
    obs = await rt.observe(broken)
    assert obs.signals["container.running"] is False
    assert obs.signals["container.exit_code"] == 127
    assert obs.facts["last_exit_reason"].startswith("could not start: ")
    with pytest.raises(PermanentError, match=r"no/such/binary"):
        await rt.restart(broken)


async def test_stop_is_a_drift_until_start(engine: Engine, rt: RuntimeRouter) -> None:
    port = free_ports(2)
    web = container("web", command=["python3", "-u", "-c", WEB], port=port, replicas=2)
    await rt.ensure(web)
    await eventually(lambda: answers(port), what="web answers")
    out = await rt.stop(web)
    assert [s["container"] for s in out["stopped"]] == [
        "driftmend-default.web-1",
        "driftmend-default.web-0",
    ]
    obs = await rt.observe(web)
    assert obs.signals["container.running"] is False and obs.facts["stopped"] == "true"
    assert obs.facts["last_exit_reason"].startswith("stopped by driftmend")
    assert await rt.ensure(web) == []  # stopped on purpose: ensure leaves it alone
    out = await rt.start_replicas(web)
    assert [(s["replica"], s["how"]) for s in out["started"]] == [(0, "started"), (1, "started")]
    await eventually(lambda: answers(port + 1), what="replica 1 answers again")
    obs = await rt.observe(web)
    assert obs.signals["container.running"] is True and "stopped" not in obs.facts

    # start touches only what is down: a running replica keeps its process.
    pid0 = engine.api.inspect_container("driftmend-default.web-0")["State"]["Pid"]
    await asyncio.to_thread(engine.api.kill, "driftmend-default.web-1")

    async def down() -> bool:
        return (await rt.observe(web)).signals["container.replicas_running"] == 1

    await eventually(down, what="replica 1 down")
    out = await rt.start_replicas(web)
    assert [s["replica"] for s in out["started"]] == [1]
    assert engine.api.inspect_container("driftmend-default.web-0")["State"]["Pid"] == pid0


async def test_changed_spec_is_applied_by_the_next_restart(
    engine: Engine, rt: RuntimeRouter
) -> None:
    port = free_ports(1)
    web = container("web", command=["python3", "-u", "-c", WEB], port=port)
    await rt.ensure(web)
    old_id = engine.api.inspect_container("driftmend-default.web-0")["Id"]
    edited = container(
        "web",
        command=["python3", "-u", "-c", WEB],
        port=port,
        docker_extra={"env": {"GREETING": "hello"}},
    )
    obs = await rt.observe(edited)
    assert "config_outdated" in obs.facts
    out = await rt.restart(edited)
    assert out["how"] == ["recreated"]
    attrs = engine.api.inspect_container("driftmend-default.web-0")
    assert attrs["Id"] != old_id and "GREETING=hello" in attrs["Config"]["Env"]
    assert "config_outdated" not in (await rt.observe(edited)).facts


async def test_missing_watched_container_is_a_drift_not_an_error(
    engine: Engine, rt: RuntimeRouter
) -> None:
    ghost = Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": "ghost"},
            "spec": {"runtime": "docker", "docker": {"containerName": "driftmend-no-such"}},
        }
    )
    assert await rt.ensure(ghost) == []  # a watched container is never created by driftmend
    obs = await rt.observe(ghost)
    assert obs.error is None
    assert obs.signals["container.running"] is False
    assert obs.signals["container.replicas_running"] == 0
    assert obs.signals["container.exit_code"] is None
    assert obs.facts["missing"] == "replica 0 (driftmend-no-such)"
    with pytest.raises(PermanentError, match="cannot create it"):
        await rt.restart(ghost)

    # Once it exists (made by someone else), the same spec watches it.
    engine.api.create_container(
        "local/hostbase",
        ["python3", "-c", "import time; time.sleep(3600)"],
        name="driftmend-no-such",
        labels={"driftmend.test": "1"},
        host_config=engine.api.create_host_config(
            network_mode="host", binds=HOST_MOUNTS, init=True
        ),
    )
    engine.api.start("driftmend-no-such")
    obs = await rt.observe(ghost)
    assert obs.signals["container.running"] is True
    assert obs.facts["containers"] == "driftmend-no-such"


async def test_docker_events_reach_the_sink(engine: Engine, tmp_path: Path) -> None:
    runtime = DockerRuntime(tmp_path / "state")
    seen: list[tuple[str, str]] = []
    runtime.set_event_sink(lambda key, reason: seen.append((key, reason)))
    await runtime.start()
    try:
        web = container("web", command=["python3", "-u", "-c", "import time; time.sleep(3600)"])
        await runtime.ensure(web)
        await eventually(lambda: runtime.event_stream_connects >= 1, what="the event stream")
        await runtime.restart(web)  # driftmend's own restart: its `die` is not news
        await asyncio.to_thread(engine.api.kill, "driftmend-default.web-0")
        await eventually(lambda: ("Container/web", "exit") in seen, what="the die event")
        # The engine sends events in order: had the restart's `die` been reported, it
        # would be here, before the kill's.
        assert seen == [("Container/web", "exit")]
    finally:
        await runtime.close()


# 500 numbered lines without a time of their own, then quiet.
CHATTY = "import sys, time\nfor i in range(500): print(f'line {i}', flush=True)\ntime.sleep(3600)\n"


def log_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


async def test_logs_start_at_a_bounded_tail_and_keep_dockers_times(
    engine: Engine, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    path = state.resolve() / "docker" / "default.chatty" / "replica-0.log"
    chatty = container("chatty", command=["python3", "-u", "-c", CHATTY])
    runtime = router(state)
    await runtime.start()
    try:
        await runtime.ensure(chatty)
        name = "driftmend-default.chatty-0"

        def history() -> list[str]:
            raw = engine.api.logs(name, timestamps=True).decode().splitlines()
            return raw if len(raw) == 500 else []

        stamped = await eventually(history, what="the container's 500 lines")
        await runtime.observe(chatty)  # starts the log follower
        lines = await eventually(
            lambda: (found := log_lines(path)) and len(found) >= FIRST_TAIL and found,
            what="the tail copied",
        )
        # Only the last FIRST_TAIL lines of the history, each at the time Docker gave it.
        assert len(lines) == FIRST_TAIL
        for written, original in zip(lines, stamped[-FIRST_TAIL:], strict=True):
            stamp, _, text = original.partition(" ")
            parsed = parse_line(written, read_at=0.0)
            assert parsed.message == text
            assert parsed.at == pytest.approx(parse_time_ns(stamp) / 1e9)  # type: ignore[operator]

        # A new run is copied whole, after what was copied of the last one.
        await runtime.restart(chatty)

        async def second_run() -> bool:
            await runtime.observe(chatty)  # as every pass does: a follower for the new run
            return len(log_lines(path)) == FIRST_TAIL + 500

        await eventually(second_run, what="the second run copied")
    finally:
        await runtime.close()

    # A restarted controller follows from where the last one stopped: nothing copied twice.
    again = router(state)
    await again.start()
    try:
        await again.observe(chatty)
        follower = f"docker logs {engine.api.inspect_container(name)['Id'][:12]}"
        assert follower in {t.name for t in threading.enumerate()}
        # The stream ends when the container stops, after everything it had to send.
        await asyncio.to_thread(engine.api.kill, name)
        await eventually(
            lambda: follower not in {t.name for t in threading.enumerate()},
            what="the follower done",
        )
        assert len(log_lines(path)) == FIRST_TAIL + 500
    finally:
        await again.close()


async def test_resources_whose_names_once_met_both_run(engine: Engine, rt: RuntimeRouter) -> None:
    # "driftmend-{namespace}-{name}-{i}" named both driftmend-shop-prod-db-0: the second
    # create met a name taken by the first.
    def in_namespace(namespace: str, name: str, port: int) -> Container:
        doc = docker_container(name, command=["python3", "-u", "-c", WEB], port=port)
        doc["metadata"]["namespace"] = namespace
        return Container.model_validate(doc)

    port = free_ports(2)
    a, b = in_namespace("shop-prod", "db", port), in_namespace("shop", "prod-db", port + 1)
    assert len(await rt.ensure(a)) == 1
    assert len(await rt.ensure(b)) == 1
    for p in (port, port + 1):
        await eventually(lambda p=p: answers(p), what=f"port {p} answers")
    assert names(engine, a.key) != names(engine, b.key)
    assert rt.log_files(a) != rt.log_files(b)


async def test_a_replica_named_the_older_way_is_adopted(engine: Engine, tmp_path: Path) -> None:
    port = free_ports(1)
    web = container("web", command=["python3", "-u", "-c", WEB], port=port)
    first = router(tmp_path / "state")
    await first.start()
    await first.ensure(web)
    await first.close()
    # As an older controller left it: its name, and its state directory.
    await asyncio.to_thread(engine.api.rename, "driftmend-default.web-0", "driftmend-default-web-0")
    state = tmp_path / "state" / "docker"
    (state / "default.web").rename(state / "default-web")

    second = router(tmp_path / "state")
    await second.start()
    try:
        assert await second.ensure(web) == []  # found by its labels: not created twice
        obs = await second.observe(web)
        assert obs.signals["container.running"] is True
        assert obs.facts["containers"] == "driftmend-default-web-0"
        assert (state / "default.web" / "state.json").exists()
        out = await second.restart(web)
        assert out["how"] == ["restarted"] and out["alive"] == [True]
        assert names(engine, web.key) == ["driftmend-default-web-0"]
    finally:
        await second.close()


async def test_a_stopped_container_is_woken_and_restarts_at_once(
    engine: Engine, rt: RuntimeRouter
) -> None:
    """SIGSTOP on the container's process: the restart sends SIGCONT first, so SIGTERM
    ends it at once instead of SIGKILL after stopTimeout (10 s)."""
    port = free_ports(1)
    web = container("web", command=["python3", "-u", "-c", WEB], port=port)
    await rt.ensure(web)
    await eventually(lambda: answers(port), what="web answers")
    pid = engine.api.inspect_container("driftmend-default.web-0")["State"]["Pid"]
    os.kill(pid, signal.SIGSTOP)
    began = time.monotonic()
    out = await rt.restart(web)
    assert out["alive"] == [True] and out["died"] == [], out
    assert time.monotonic() - began < 5.0
    await eventually(lambda: answers(port), what="web answers again")


async def test_a_restart_that_dies_at_once_says_why(engine: Engine, rt: RuntimeRouter) -> None:
    doomed = container("doomed", command=["sh", "-c", "echo bad; exit 3"])
    await rt.ensure(doomed)

    async def exited() -> bool:
        return (await rt.observe(doomed)).signals["container.running"] is False

    await eventually(exited, what="the first run exited")
    out = await rt.restart(doomed)
    assert out["alive"] == [False]
    [death] = out["died"]
    assert death["replica"] == 0 and "code 3" in death["reason"], death


async def test_quiet_observations_ask_the_engine_nothing(engine: Engine, tmp_path: Path) -> None:
    """Issue 15: a pass over a Container nothing happened to reads its kept snapshot and its
    cgroup; an outside change (a `docker stop`) is seen through the event stream."""
    runtime = DockerRuntime(tmp_path / "state")
    runtime.set_event_sink(lambda key, reason: None)
    await runtime.start()
    try:
        web = container("web", command=["python3", "-u", "-c", "import time; time.sleep(3600)"])
        await runtime.ensure(web)
        await eventually(lambda: runtime._relay.live, what="the event stream")
        await runtime.observe(web)
        calls: list[str] = []
        for name in ("snapshot", "sample"):
            real = getattr(runtime._engine, name)

            def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
                calls.append(_name)
                return _real(*args)

            setattr(runtime._engine, name, counted)
        for _ in range(5):
            await asyncio.sleep(0.3)
            obs = await runtime.ensure(web), await runtime.observe(web)
            signals = obs[1].signals
            assert signals["container.running"] is True
            assert isinstance(signals["container.memory_bytes"], int)
            assert signals["container.memory_bytes"] > 1_000_000  # a Python process, in MB
        assert calls == []  # neither a list/inspect nor a stats request in five passes

        await asyncio.to_thread(engine.api.stop, "driftmend-default.web-0", timeout=1)

        async def stopped() -> bool:
            return (await runtime.observe(web)).signals["container.running"] is False

        await eventually(stopped, what="the outside stop seen", deadline=10)
        assert "snapshot" in calls  # the stop's event made the snapshot stale
    finally:
        await runtime.close()
