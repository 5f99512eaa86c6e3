"""The process runtime against real processes: start, exit events, adoption, scale, probes.

Every supervised command is a small Python program (an HTTP server on the replica's port,
via ``portEnv``) or a shell; every test stops what it started (``down``) in its fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import psutil
import psycopg
import pytest

from driftmend.drivers.process import ProcessRuntime
from driftmend.errors import DriverError, PermanentError
from driftmend.spec import Container
from tests.demo_stack import demo_stack
from tests.integration.harness import REPO
from tests.integration.harness import load as load_specs
from tests.services import free_port, poll_until

pytestmark = pytest.mark.integration

API = "driftmend.dev/v1alpha1"
DEADLINE = 10.0

# Answers 200 on every path, or 500 while the file `unhealthy` exists in its state dir.
SERVER = r"""
import http.server, os, pathlib, sys
port = int(os.environ["PORT"])
flag = pathlib.Path(os.environ["DRIFTMEND_STATE_DIR"]) / "unhealthy"
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 500 if flag.exists() else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(str(code).encode())
    def log_message(self, fmt, *args):
        print("GET", fmt % args, flush=True)
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print(f"listening on {port}", flush=True)
server.serve_forever()
"""
BUSY = "while True: pass"


def container(name: str, *, namespace: str = "default", **spec: Any) -> Container:
    """A process Container; ``spec`` overrides the defaults (an HTTP server on ``port``)."""
    body: dict[str, Any] = {
        "process": {"command": [sys.executable, "-u", "-c", SERVER], "stopTimeout": "3s"},
        "portEnv": "PORT",
        **spec,
    }
    metadata = {"name": name, "namespace": namespace}
    return Container.model_validate(
        {"apiVersion": API, "kind": "Container", "metadata": metadata, "spec": body}
    )


def free_ports(count: int) -> int:
    """A first port such that it and the ``count - 1`` after it are free on 127.0.0.1."""
    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports found")


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], what: str, deadline: float = DEADLINE
) -> None:
    """Poll ``check`` until it is true, or fail after ``deadline`` seconds saying ``what``."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > end:
            pytest.fail(f"after {deadline}s: {what}")
        await asyncio.sleep(0.05)


async def answers(port: int, expect: int = 200) -> bool:
    """True when GET http://127.0.0.1:port/ answers ``expect``."""
    try:
        async with httpx2.AsyncClient(timeout=1.0, trust_env=False) as client:
            return (await client.get(f"http://127.0.0.1:{port}/")).status_code == expect
    except httpx2.HTTPError:
        return False


def read(path: Path) -> str:
    """A file's text (a sync helper: tests read small local files between awaits)."""
    return path.read_text(errors="replace")


class Events:
    """The runtime's event sink: records (key, reason) and wakes waiters."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    def __call__(self, key: str, reason: str) -> None:
        self.seen.append((key, reason))
        self._changed.set()

    def count(self, key: str, reason: str) -> int:
        return self.seen.count((key, reason))

    async def wait_for(self, key: str, reason: str, *, more_than: int = 0) -> float:
        """Wait until (key, reason) was seen more than ``more_than`` times; seconds waited."""
        start = time.monotonic()
        async with asyncio.timeout(DEADLINE):
            while self.count(key, reason) <= more_than:
                self._changed.clear()
                await self._changed.wait()
        return time.monotonic() - start


class Harness:
    """Runtimes on one state directory, and every Container to bring down at the end."""

    def __init__(self, tmp_path: Path, work_root: Path) -> None:
        self.state_dir = tmp_path / "state"
        self.base_dir = tmp_path
        self.work_root = work_root
        self.events = Events()
        self.containers: dict[str, Container] = {}
        self.runtimes: list[ProcessRuntime] = []

    async def runtime(self, events: Events | None = None) -> ProcessRuntime:
        """A started runtime on the shared state directory."""
        rt = ProcessRuntime(
            self.state_dir, base_dir=self.base_dir, poll_interval=0.05, work_root=self.work_root
        )
        rt.set_event_sink(events if events is not None else self.events)
        await rt.start()
        self.runtimes.append(rt)
        return rt

    def track(self, c: Container) -> Container:
        self.containers[c.key] = c
        return c

    async def cleanup(self) -> None:
        for rt in self.runtimes:
            await rt.close()
        # A fresh runtime adopts whatever still runs, whichever runtime started it.
        final = ProcessRuntime(
            self.state_dir, base_dir=self.base_dir, poll_interval=0.05, work_root=self.work_root
        )
        await final.start()
        try:
            for c in self.containers.values():
                await final.down(c)
        finally:
            await final.close()


@pytest.fixture
async def harness(tmp_path: Path, work_root: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, work_root)
    try:
        yield h
    finally:
        await h.cleanup()


def pid_of(obs_facts: dict[str, str] | Any, replica: int = 0) -> int:
    return int(obs_facts["pids"].split(",")[replica])


# --- provisioning ------------------------------------------------------------------------


async def test_ensure_starts_once_and_is_idempotent(harness: Harness) -> None:
    rt = await harness.runtime()
    port = free_port()
    c = harness.track(container("shop", port=port))

    first = await rt.ensure(c)
    assert len(first) == 1
    assert first[0].startswith("started Container/shop replica 0 (pid ")
    assert await rt.ensure(c) == []

    await eventually(lambda: answers(port), f"the server answers on {port}")
    obs = await rt.observe(c)
    assert obs.key == "Container/shop"
    assert obs.get("container.running") is True
    assert obs.get("container.replicas_running") == 1
    assert obs.get("container.replicas_desired") == 1
    assert obs.get("container.restarts") == 0
    assert obs.get("container.exit_code") is None
    assert obs.get("container.healthy") is True
    assert obs.facts["ports"] == str(port)

    directory = harness.state_dir / "containers" / "default.shop"
    pid_file = json.loads((directory / "replica-0.pid").read_text())
    assert pid_file["pid"] == pid_of(obs.facts)
    assert pid_file["port"] == port
    assert abs(pid_file["create_time"] - psutil.Process(pid_file["pid"]).create_time()) < 0.5
    assert json.loads((directory / "state.json").read_text())["created"] == [0]
    # stdout and stderr go to the replica's log, and the process runs in its own session.
    logs = rt.log_files(c)
    assert logs == [str(directory / "replica-0.log")]
    await eventually(lambda: f"listening on {port}" in read(Path(logs[0])), "log line")
    assert os.getsid(pid_file["pid"]) == pid_file["pid"]


async def test_kill_9_is_an_exit_event_that_ensure_does_not_heal(harness: Harness) -> None:
    rt = await harness.runtime()
    c = harness.track(container("crashy", port=free_port()))
    await rt.ensure(c)
    pid = pid_of((await rt.observe(c)).facts)

    os.kill(pid, signal.SIGKILL)
    waited = await harness.events.wait_for("Container/crashy", "exit")
    assert waited < 2.0

    obs = await rt.observe(c)
    assert obs.get("container.running") is False
    assert obs.get("container.replicas_running") == 0
    assert obs.get("container.exit_code") in (-9, 137)
    assert obs.get("container.oom_killed") is False
    assert "SIGKILL" in obs.facts["last_exit_reason"]
    assert "last_exit_at" in obs.facts
    # A replica that was created and died is a drift for the policies, not for ensure.
    assert await rt.ensure(c) == []
    assert (await rt.observe(c)).get("container.running") is False

    # Restarting a dead replica just starts it.
    result = await rt.restart(c)
    assert result["replicas"] == [0]
    assert result["old_pids"] == [None]
    obs = await rt.observe(c)
    assert obs.get("container.running") is True
    assert obs.get("container.restarts") == 1
    assert obs.get("container.exit_code") is None
    assert pid_of(obs.facts) == result["new_pids"][0] != pid


async def test_restart_replaces_the_process_without_reporting_a_crash(harness: Harness) -> None:
    rt = await harness.runtime()
    port = free_port()
    c = harness.track(container("web", port=port))
    await rt.ensure(c)
    await eventually(lambda: answers(port), "first server answers")
    old = pid_of((await rt.observe(c)).facts)

    result = await rt.restart(c, 0)
    assert result == {
        "replicas": [0],
        "old_pids": [old],
        "new_pids": [result["new_pids"][0]],
        "alive": [True],
        "died": [],
    }
    new = result["new_pids"][0]
    assert new != old
    assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
    await eventually(lambda: answers(port), "restarted server answers")
    obs = await rt.observe(c)
    assert obs.get("container.running") is True
    assert obs.get("container.restarts") == 1
    assert pid_of(obs.facts) == new
    assert harness.events.count("Container/web", "exit") == 0

    with pytest.raises(PermanentError, match="no replica 5"):
        await rt.restart(c, 5)


async def test_stop_is_on_purpose_and_restart_brings_it_back(harness: Harness) -> None:
    rt = await harness.runtime()
    c = harness.track(container("paused", port=free_port()))
    await rt.ensure(c)
    pid = pid_of((await rt.observe(c)).facts)

    stopped = await rt.stop(c)
    assert stopped == {"stopped": [{"replica": 0, "pid": pid, "how": "stopped"}]}
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    obs = await rt.observe(c)
    assert obs.get("container.running") is False
    assert obs.facts["stopped"] == "true"
    assert harness.events.count("Container/paused", "exit") == 0
    assert await rt.ensure(c) == []

    await rt.restart(c)
    assert (await rt.observe(c)).get("container.running") is True


async def test_stop_escalates_to_sigkill_after_the_stop_timeout(harness: Harness) -> None:
    rt = await harness.runtime()
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"
    c = harness.track(
        container(
            "stubborn",
            portEnv=None,
            process={"command": [sys.executable, "-c", stubborn], "stopTimeout": "300ms"},
        )
    )
    await rt.ensure(c)
    # Wait until the SIGTERM handler is installed, or the test would pass for the wrong reason.
    pid = pid_of((await rt.observe(c)).facts)
    await eventually(lambda: _ignores_term(pid), "the replica ignores SIGTERM")
    result = await rt.stop(c)
    assert result["stopped"][0]["how"] == "killed"


async def test_a_stopped_replica_is_woken_and_stops_at_once(harness: Harness) -> None:
    """SIGSTOP holds a SIGTERM until SIGCONT: sent together, the stop takes no stopTimeout."""
    rt = await harness.runtime()
    spec = {"command": [sys.executable, "-u", "-c", SERVER], "stopTimeout": "10s"}
    c = harness.track(container("frozen", port=free_port(), process=spec))
    await rt.ensure(c)
    pid = pid_of((await rt.observe(c)).facts)
    os.kill(pid, signal.SIGSTOP)
    await eventually(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, "stopped")

    began = time.monotonic()
    result = await rt.stop(c)
    assert result["stopped"][0]["how"] == "stopped"  # it honoured SIGTERM, no SIGKILL
    assert time.monotonic() - began < 1.0
    assert not _runs(pid)


async def test_a_hung_replica_gets_the_hung_stop_timeout(harness: Harness) -> None:
    """A stopped replica that ignores SIGTERM is killed after hungStopTimeout, not stopTimeout."""
    rt = await harness.runtime()
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"
    spec = {"command": [sys.executable, "-c", stubborn], "stopTimeout": "10s",
            "hungStopTimeout": "500ms"}  # fmt: skip
    c = harness.track(container("hung", portEnv=None, process=spec))
    await rt.ensure(c)
    pid = pid_of((await rt.observe(c)).facts)
    await eventually(lambda: _ignores_term(pid), "the replica ignores SIGTERM")
    os.kill(pid, signal.SIGSTOP)
    await eventually(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, "stopped")

    began = time.monotonic()
    result = await rt.stop(c)
    took = time.monotonic() - began
    assert result["stopped"][0]["how"] == "killed"
    assert 0.5 <= took < 2.0, took
    assert not _runs(pid)


async def test_a_stop_leaves_nothing_of_the_process_tree(harness: Harness) -> None:
    """A descendant in a session of its own (as PostgreSQL's backends are) that ignores
    SIGTERM is killed and gone before stop (or restart) returns."""
    rt = await harness.runtime()
    child = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"
    parent = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], start_new_session=True)\n"
        "print('child', p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    spec = {"command": [sys.executable, "-c", parent], "stopTimeout": "1s"}
    c = harness.track(container("tree", portEnv=None, process=spec))
    await rt.ensure(c)
    log = Path(rt.log_files(c)[0])
    await eventually(lambda: "child " in read(log), "the child's pid in the log")
    kid = int(read(log).split("child ")[1].split()[0])
    await eventually(lambda: _ignores_term(kid), "the child ignores SIGTERM")
    assert os.getsid(kid) == kid != os.getsid(pid_of((await rt.observe(c)).facts))

    await rt.restart(c)
    assert not _runs(kid)
    await rt.stop(c)


async def test_a_stopped_postgres_starts_again_at_the_first_try() -> None:
    """The demo's PostgreSQL frozen whole (SIGSTOP to the postmaster and its backends, a
    client connected): the restart wakes it, it shuts down cleanly, no backend outlives it
    holding the shared memory, and the new postmaster starts at the first try. After a
    crash, the stale postmaster.pid does not block the next start either."""
    stack = demo_stack()
    result = load_specs(stack.specs)
    pg = next(r for r in result.resources if isinstance(r, Container) and r.name == "postgres")
    rt = ProcessRuntime(stack.state, base_dir=REPO, poll_interval=0.05)
    await rt.start()
    dsn = f"postgresql://postgres@127.0.0.1:{stack.pg_port}/postgres"
    try:
        await rt.ensure(pg)
        client = await asyncio.to_thread(
            poll_until, lambda: _connect(dsn), deadline_s=30, what="PostgreSQL answers"
        )
        pid = pid_of((await rt.observe(pg)).facts)
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        assert len(tree) > 3  # the postmaster, its auxiliary processes and our backend
        for p in tree:
            p.send_signal(signal.SIGSTOP)

        began = time.monotonic()
        restart = await rt.restart(pg)
        assert restart["alive"] == [True], restart
        assert time.monotonic() - began < 3.0  # hungStopTimeout (2 s) at most, not 10 s
        assert [p.pid for p in tree if _runs(p.pid)] == []
        await asyncio.to_thread(
            poll_until, lambda: _pg_answers(dsn), deadline_s=10, what="PostgreSQL answers again"
        )
        obs = await rt.observe(pg)
        assert obs.get("container.running") is True and obs.get("container.restarts") == 1
        assert pid_of(obs.facts) == restart["new_pids"][0]
        client.close()

        # A crash of the whole tree leaves postmaster.pid behind, naming a dead pid: the
        # next start is not blocked by it.
        pid = pid_of(obs.facts)
        for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            p.kill()
        await eventually(lambda: not _runs(pid), "the postmaster is gone")
        lock = stack.state / "containers" / "default.postgres" / "pgdata" / "postmaster.pid"
        assert int(lock.read_text().split()[0]) == pid
        restart = await rt.restart(pg)
        assert restart["alive"] == [True], restart
        await asyncio.to_thread(
            poll_until, lambda: _pg_answers(dsn), deadline_s=10, what="PostgreSQL after a crash"
        )
    finally:
        await rt.down(pg)
        await rt.close()
        stack.cleanup()


def _connect(dsn: str) -> psycopg.Connection[Any] | None:
    try:
        return psycopg.connect(dsn, connect_timeout=1)
    except psycopg.OperationalError:
        return None


def _pg_answers(dsn: str) -> bool:
    conn = _connect(dsn)
    if conn is None:
        return False
    conn.close()
    return True


def _runs(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has ended: it only waits for its parent)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ignores_term(pid: int) -> bool:
    """True once ``pid`` ignores SIGTERM (bit 15 of SigIgn in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


async def test_a_restart_that_dies_at_once_is_not_called_alive(harness: Harness) -> None:
    rt = await harness.runtime()
    c = harness.track(
        container("doomed", portEnv=None, process={"command": ["sh", "-c", "echo bad; exit 3"]})
    )
    await rt.ensure(c)
    await harness.events.wait_for(c.key, "exit")
    result = await rt.restart(c)
    assert result["alive"] == [False]
    # Why it died, in the result: its exit and the last words of its log.
    [death] = result["died"]
    assert death["replica"] == 0 and death["pid"] == result["new_pids"][0]
    assert death["reason"] == "exited with code 3"
    assert death["log_tail"][-1] == "bad"
    assert 0 <= death["lived_seconds"] < 0.3
    obs = await rt.observe(c)
    assert obs.get("container.running") is False
    assert obs.get("container.exit_code") == 3
    assert obs.get("container.restarts") == 1
    await harness.events.wait_for(c.key, "exit", more_than=1)  # its crash is still an event


async def test_down_stops_and_forgets(harness: Harness) -> None:
    rt = await harness.runtime()
    c = harness.track(container("gone", port=free_port()))
    await rt.ensure(c)
    pid = pid_of((await rt.observe(c)).facts)
    result = await rt.down(c)
    assert [s["pid"] for s in result["stopped"]] == [pid]
    directory = harness.state_dir / "containers" / "default.gone"
    assert not (directory / "state.json").exists()
    assert not list(directory.glob("*.pid"))
    assert (directory / "replica-0.log").exists()  # logs are kept
    # Forgotten: the next ensure provisions it afresh.
    assert len(await rt.ensure(c)) == 1


# --- adoption ----------------------------------------------------------------------------


async def test_a_second_runtime_adopts_running_replicas(harness: Harness) -> None:
    first = await harness.runtime()
    base = free_ports(2)
    c = harness.track(container("adopt", port=base, replicas=2))
    assert len(await first.ensure(c)) == 2
    pids = (await first.observe(c)).facts["pids"]
    await first.close()

    events = Events()
    second = await harness.runtime(events)
    assert await second.ensure(c) == []  # nothing started twice
    obs = await second.observe(c)
    assert obs.facts["pids"] == pids
    assert obs.get("container.running") is True
    assert obs.get("container.replicas_running") == 2
    assert (
        len([p for p in psutil.process_iter(["cmdline"]) if SERVER in (p.info["cmdline"] or [])])
        >= 2
    )

    # Exits of adopted processes are still detected (by polling: they are not its children).
    os.kill(int(pids.split(",")[1]), signal.SIGKILL)
    await events.wait_for("Container/adopt", "exit")
    obs = await second.observe(c)
    assert obs.get("container.running") is False
    assert obs.get("container.replicas_running") == 1
    assert obs.get("container.exit_code") is None  # unknown: not our child
    assert "unknown" in obs.facts["last_exit_reason"]

    # And it restarts them like its own.
    result = await second.restart(c, 1)
    assert result["old_pids"] == [None]
    await eventually(lambda: answers(base + 1), "replica 1 answers again")


async def test_resources_whose_directory_names_once_met_keep_apart(harness: Harness) -> None:
    # "{namespace}-{name}" gave both "shop-prod-db": one pid file, one state.json, one log.
    first = await harness.runtime()
    base = free_ports(2)
    a = harness.track(container("db", namespace="shop-prod", port=base))
    b = harness.track(container("prod-db", namespace="shop", port=base + 1))
    assert len(await first.ensure(a)) == 1
    assert len(await first.ensure(b)) == 1
    await eventually(lambda: answers(base), "shop-prod/db answers")
    await eventually(lambda: answers(base + 1), "shop/prod-db answers")
    assert Path(first.log_files(a)[0]).parent != Path(first.log_files(b)[0]).parent
    pids = {c.key: (await first.observe(c)).facts["pids"] for c in (a, b)}
    assert pids[a.key] != pids[b.key]
    await first.close()

    second = await harness.runtime(Events())
    for c in (a, b):
        assert await second.ensure(c) == []  # each adopted, neither started twice
        obs = await second.observe(c)
        assert obs.get("container.running") is True
        assert obs.facts["pids"] == pids[c.key]


async def test_replicas_in_a_legacy_directory_are_adopted_and_moved(harness: Harness) -> None:
    first = await harness.runtime()
    port = free_port()
    c = harness.track(container("old", port=port))
    await first.ensure(c)
    pid = pid_of((await first.observe(c)).facts)
    await first.close()
    # Where an older controller kept them.
    directory = harness.state_dir / "containers" / "default.old"
    legacy = harness.state_dir / "containers" / "default-old"
    directory.rename(legacy)

    second = await harness.runtime(Events())
    assert await second.ensure(c) == []
    obs = await second.observe(c)
    assert obs.get("container.running") is True
    assert pid_of(obs.facts) == pid
    assert directory.is_dir() and not directory.is_symlink()
    assert legacy.is_symlink() and legacy.resolve() == directory.resolve()
    assert second.log_files(c) == [str(directory / "replica-0.log")]
    await eventually(lambda: answers(port), "the adopted server answers")
    await eventually(lambda: "GET" in read(directory / "replica-0.log"), "it still logs there")


async def test_a_stale_pid_file_is_a_dead_replica(harness: Harness) -> None:
    rt = await harness.runtime()
    c = harness.track(container("stale", port=free_port()))
    await rt.ensure(c)
    await rt.stop(c)
    await rt.close()
    directory = harness.state_dir / "containers" / "default.stale"
    # A pid file whose pid now belongs to another process (ours), started at another time.
    me = psutil.Process()
    (directory / "replica-0.pid").write_text(
        json.dumps({"pid": me.pid, "create_time": me.create_time() - 100, "argv": [], "port": 1})
    )
    state = json.loads((directory / "state.json").read_text())
    state["stopped"] = False
    (directory / "state.json").write_text(json.dumps(state))

    events = Events()
    fresh = await harness.runtime(events)
    obs = await fresh.observe(c)
    assert obs.get("container.running") is False
    assert obs.get("container.replicas_running") == 0
    assert not (directory / "replica-0.pid").exists()
    assert events.count("Container/stale", "exit") == 1
    assert await fresh.ensure(c) == []  # created before: healing is for the policies


# --- scale -------------------------------------------------------------------------------


async def test_scale_up_on_consecutive_ports_then_down(harness: Harness) -> None:
    rt = await harness.runtime()
    base = free_ports(3)
    c = harness.track(container("scaled", port=base, maxReplicas=3))
    await rt.ensure(c)

    up = await rt.scale(c, 3)
    assert up == {"replicas": 3, "started": [1, 2], "stopped": []}
    for port in range(base, base + 3):
        await eventually(partial(answers, port), f"replica on {port} answers")
    obs = await rt.observe(c)
    assert obs.get("container.replicas_desired") == 3
    assert obs.get("container.replicas_running") == 3
    assert obs.get("container.running") is True
    assert obs.facts["ports"] == f"{base},{base + 1},{base + 2}"
    assert len(rt.log_files(c)) == 3

    down = await rt.scale(c, 1)
    assert [s["replica"] for s in down["stopped"]] == [2, 1]
    obs = await rt.observe(c)
    assert obs.get("container.replicas_desired") == 1
    assert obs.get("container.replicas_running") == 1
    assert obs.get("container.running") is True
    assert obs.get("container.exit_code") is None
    assert harness.events.count("Container/scaled", "exit") == 0
    assert not await answers(base + 2)

    # The override survives a controller restart.
    await rt.close()
    again = await harness.runtime()
    assert (await again.observe(c)).get("container.replicas_desired") == 1

    with pytest.raises(PermanentError, match=r"allowed 0\.\.3"):
        await again.scale(c, 4)
    with pytest.raises(PermanentError):
        await again.scale(c, -1)


# --- health ------------------------------------------------------------------------------


async def test_health_probe_turns_unhealthy_and_recovers(harness: Harness) -> None:
    rt = await harness.runtime()
    port = free_port()
    health = {"http": {"path": "/healthz"}, "interval": "100ms", "timeout": "300ms",
              "failureThreshold": 2}  # fmt: skip
    c = harness.track(container("probed", port=port, health=health))
    key = c.key
    await rt.ensure(c)
    await eventually(lambda: answers(port), "server answers")

    async def healthy() -> bool:
        return (await rt.observe(c)).get("container.healthy") is True

    # Healthy only once a probe has passed since the start, not as soon as the pid exists.
    await eventually(healthy, "first probe passed")
    # The first pass is a health event too (from "not known yet" to healthy): a restart's
    # verification waiting on it looks again at once.
    assert harness.events.count(key, "health") == 1

    # The server answers 500.
    flag = harness.state_dir / "containers" / "default.probed" / "unhealthy"
    flag.touch()
    await harness.events.wait_for(key, "health", more_than=1)
    obs = await rt.observe(c)
    assert obs.get("container.healthy") is False
    health_failures = obs.get("container.health_failures")
    assert isinstance(health_failures, int) and health_failures >= 2
    assert obs.get("container.running") is True

    flag.unlink()
    await harness.events.wait_for(key, "health", more_than=2)
    assert (await rt.observe(c)).get("container.healthy") is True

    # The server stops answering (SIGSTOP: connections hang until the probe's timeout).
    pid = pid_of(obs.facts)
    os.kill(pid, signal.SIGSTOP)
    try:
        await harness.events.wait_for(key, "health", more_than=3)
        assert (await rt.observe(c)).get("container.healthy") is False
    finally:
        os.kill(pid, signal.SIGCONT)
    await harness.events.wait_for(key, "health", more_than=4)
    assert (await rt.observe(c)).get("container.healthy") is True
    assert harness.events.count(key, "exit") == 0


async def test_probes_stop_when_the_spec_drops_them(harness: Harness) -> None:
    rt = await harness.runtime()
    port = free_port()
    health = {"http": {"path": "/"}, "interval": "100ms", "failureThreshold": 1}
    c = harness.track(container("toggle", port=port, health=health))
    await rt.ensure(c)
    await eventually(lambda: answers(port), "server answers")
    # Past its start-up: failures count from its first passed probe on.
    await eventually(lambda: _is_true(rt, c), "first probe passed")
    (harness.state_dir / "containers" / "default.toggle" / "unhealthy").touch()
    await harness.events.wait_for(c.key, "health")
    without = container("toggle", port=port)
    obs = await rt.observe(without)
    assert obs.get("container.healthy") is True
    assert obs.get("container.health_failures") == 0


# --- usage -------------------------------------------------------------------------------


async def test_cpu_and_memory_signals_are_numbers(harness: Harness) -> None:
    rt = await harness.runtime()
    c = harness.track(
        container(
            "busy",
            portEnv=None,
            process={"command": [sys.executable, "-c", BUSY]},
            limits={"cpu": 0.5, "memory": "1Gi"},
        )
    )
    await rt.ensure(c)
    first = await rt.observe(c)
    assert isinstance(first.get("container.cpu_percent"), float)

    async def busy() -> bool:
        obs = await rt.observe(c)
        cpu = obs.get("container.cpu_percent")
        return isinstance(cpu, float) and cpu > 20.0

    await eventually(busy, "cpu_percent of a busy loop goes above 20%")
    obs = await rt.observe(c)
    memory = obs.get("container.memory_bytes")
    assert isinstance(memory, int) and memory > 1_000_000
    cpu_ratio = obs.get("container.cpu_used_ratio")
    mem_ratio = obs.get("container.memory_used_ratio")
    assert isinstance(cpu_ratio, float) and cpu_ratio > 0
    assert isinstance(mem_ratio, float) and 0 < mem_ratio < 1

    stats = await rt.stats(c)
    row = stats["replicas"][0]
    assert row["running"] is True
    assert row["memory_bytes"] > 0
    assert isinstance(row["cpu_percent"], float)


async def test_without_limits_there_are_no_ratios(harness: Harness) -> None:
    rt = await harness.runtime()
    c = harness.track(container("plain", port=free_port()))
    await rt.ensure(c)
    obs = await rt.observe(c)
    assert "container.cpu_used_ratio" not in obs.signals
    assert "container.memory_used_ratio" not in obs.signals


# --- errors ------------------------------------------------------------------------------


async def test_a_missing_command_is_a_start_error(harness: Harness) -> None:
    # ensure provisions: a replica it cannot start is no error of the pass but the
    # observation's (it says why); an action that starts one (restart) fails with the why.
    rt = await harness.runtime()
    c = harness.track(container("typo", process={"command": ["driftmend-no-such-cmd"]}))
    assert await rt.ensure(c) == []
    obs = await rt.observe(c)
    assert obs.get("container.running") is False
    assert obs.error is not None
    assert "command 'driftmend-no-such-cmd' not found on PATH" in obs.error
    assert obs.facts["start_error_reason"] == "not-found"
    with pytest.raises(
        DriverError, match=r"Container/typo: command 'driftmend-no-such-cmd' not found on PATH"
    ):
        await rt.restart(c)
    rel = harness.track(container("rel", process={"command": ["bin/missing"]}))
    with pytest.raises(DriverError, match=r"not found.*relative paths resolve against"):
        await rt.restart(rel)
    wd = harness.track(container("wd", process={"command": ["true"], "workingDir": "nowhere"}))
    await rt.ensure(wd)
    assert re.search(r"working directory .* does not exist", (await rt.observe(wd)).error or "")


async def test_relative_command_and_working_dir_resolve_against_base_dir(harness: Harness) -> None:
    rt = await harness.runtime()
    (harness.base_dir / "bin").mkdir()
    (harness.base_dir / "work").mkdir()
    script = harness.base_dir / "bin" / "run.sh"
    script.write_text('#!/bin/sh\npwd\necho "state=$DRIFTMEND_STATE_DIR"\nexec sleep 600\n')
    script.chmod(0o755)
    c = harness.track(
        container("rel", portEnv=None, process={"command": ["bin/run.sh"], "workingDir": "work"})
    )
    await rt.ensure(c)
    log = Path(rt.log_files(c)[0])
    await eventually(lambda: "state=" in read(log), "the script wrote its lines")
    text = read(log)
    assert f"{harness.base_dir / 'work'}\n" in text
    assert f"state={harness.state_dir / 'containers' / 'default.rel'}" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_user_runs_the_process_as_that_user(harness: Harness) -> None:
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user on this machine")
    rt = await harness.runtime()
    c = harness.track(
        container(
            "pg",
            portEnv=None,
            process={
                "command": ["sh", "-c", "id -u; exec sleep 600"],
                "user": "postgres",
                "workingDir": "/",
            },
        )
    )
    await rt.ensure(c)
    pid = pid_of((await rt.observe(c)).facts)
    proc = psutil.Process(pid)
    assert proc.uids().real == pw.pw_uid
    assert proc.gids().real == pw.pw_gid
    log = Path(rt.log_files(c)[0])
    await eventually(lambda: read(log).strip() == str(pw.pw_uid), "id -u in the log")
    assert os.stat(log).st_uid == pw.pw_uid
    # Its own directory is its own (under the work root: pytest's tmp_path is root's, 0700).
    own = Path(psutil.Process(pid).environ()["DRIFTMEND_STATE_DIR"])
    assert os.stat(own).st_uid == pw.pw_uid
    status = read(Path(f"/proc/{pid}/status"))
    groups = next(line for line in status.splitlines() if line.startswith("Groups:"))
    assert "0" not in groups.split()[1:]  # root's supplementary groups were dropped


async def test_a_process_inherits_no_secret_of_the_controller(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The controller's own secrets stay with it; a process gets PATH and the like, plus the
    # `env` of its spec.
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-never-shared")
    monkeypatch.setenv("DRIFTMEND_DASHBOARD_TOKEN", "dashboard-token-never-shared")
    rt = await harness.runtime()
    dump = harness.base_dir / "env.json"
    code = (
        "import json, os, pathlib; "
        f"pathlib.Path({str(dump)!r}).write_text(json.dumps(dict(os.environ))); input()"
    )
    c = harness.track(
        container("envdump", process={"command": [sys.executable, "-c", code],
                                      "env": {"SHOP_MODE": "demo"}})
    )  # fmt: skip
    await rt.ensure(c)
    await eventually(lambda: dump.exists() and dump.stat().st_size > 0, "the env dumped")
    env = json.loads(read(dump))
    assert "GEMINI_API_KEY" not in env and "DRIFTMEND_DASHBOARD_TOKEN" not in env
    assert env["SHOP_MODE"] == "demo" and env["PATH"] == os.environ["PATH"]
    assert env["DRIFTMEND_STATE_DIR"]  # where the runtime keeps this container's state


async def test_a_slow_start_is_not_ill_health(harness: Harness) -> None:
    # The app needs a second before it listens; probes fail meanwhile. Within its start-up
    # window that is "not known yet", never "unhealthy" (which would page an operator).
    rt = await harness.runtime()
    port = free_port()
    slow = f"import time; time.sleep(1.0)\n{SERVER}"
    health = {"http": {"path": "/"}, "interval": "100ms", "timeout": "200ms",
              "failureThreshold": 1, "startupTimeout": "10s"}  # fmt: skip
    c = harness.track(
        container("slow", port=port, health=health,
                  process={"command": [sys.executable, "-u", "-c", slow]})
    )  # fmt: skip
    await rt.ensure(c)
    seen: list[object] = []

    async def healthy() -> bool:
        seen.append((await rt.observe(c)).get("container.healthy"))
        return seen[-1] is True

    await eventually(healthy, "the slow starter healthy")
    assert False not in seen and None in seen, seen

    # One that never answers is unhealthy once its start-up window has passed.
    never = harness.track(
        container("never", port=free_port(), health={**health, "startupTimeout": "300ms"},
                  process={"command": [sys.executable, "-c", "input()"]})
    )  # fmt: skip
    await rt.ensure(never)
    await eventually(
        lambda: _is_false(rt, never), "unhealthy after the start-up window", deadline=5
    )


async def _is_false(rt: ProcessRuntime, c: Container) -> bool:
    return (await rt.observe(c)).get("container.healthy") is False


async def _is_true(rt: ProcessRuntime, c: Container) -> bool:
    return (await rt.observe(c)).get("container.healthy") is True
