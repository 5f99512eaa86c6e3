"""A replica that cannot start says why, with real processes: in the observation, in the log,
in the metric, in ``driftmend get``; and a replica running as another user starts from a
checkout only root can enter.

Every test stops what it started (``down``), and polls with a deadline, never sleeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client import CollectorRegistry

from driftmend.drivers.process import ProcessRuntime
from driftmend.errors import DriverError
from driftmend.metrics import Metrics
from driftmend.model import Observation
from driftmend.spec import Container
from tests.integration.harness import REPO, eventually, load, running, write_specs
from tests.services import free_port

pytestmark = pytest.mark.integration

API = "driftmend.dev/v1alpha1"
# Binds its port, then serves; exits at once (Address already in use) when the port is taken.
SERVER = r"""
import http.server, os
port = int(os.environ["PORT"])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, fmt, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print(f"listening on {port}", flush=True)
server.serve_forever()
"""


def container(name: str, port: int | None = None, **process: Any) -> Container:
    """A process Container; ``process`` overrides the HTTP server on ``port``."""
    spec: dict[str, Any] = {
        "process": {"command": [sys.executable, "-u", "-c", SERVER], "stopTimeout": "3s"} | process
    }
    if port is not None:
        spec |= {
            "port": port,
            "portEnv": "PORT",
            "health": {"http": {"path": "/"}, "interval": "100ms", "timeout": "1s"},
        }
    return Container.model_validate(
        {"apiVersion": API, "kind": "Container", "metadata": {"name": name}, "spec": spec}
    )


class Runtime:
    """A started runtime whose start failures count on a fresh registry; downs what it ran."""

    def __init__(self, state_dir: Path, base_dir: Path, work_root: Path) -> None:
        self.registry = CollectorRegistry()
        self.rt = ProcessRuntime(
            state_dir, base_dir=base_dir, poll_interval=0.05, work_root=work_root
        )
        self.rt.set_start_failure_sink(Metrics(self.registry).replica_start_failed)
        self.containers: list[Container] = []

    def track(self, c: Container) -> Container:
        self.containers.append(c)
        return c

    def failures(self, reason: str) -> float:
        """``driftmend_replica_start_failures_total{kind="Container",reason=...}``."""
        value = self.registry.get_sample_value(
            "driftmend_replica_start_failures_total", {"kind": "Container", "reason": reason}
        )
        return value or 0.0

    async def down(self) -> None:
        for c in self.containers:
            await self.rt.down(c)
        await self.rt.close()


@pytest.fixture
async def runtime(tmp_path: Path, work_root: Path) -> AsyncIterator[Runtime]:
    r = Runtime(tmp_path / "state", tmp_path, work_root)
    await r.rt.start()
    try:
        yield r
    finally:
        await r.down()


async def start_error(r: Runtime, c: Container) -> Observation:
    """The first observation of ``c`` that carries a start error."""

    async def seen() -> Observation | None:
        obs = await r.rt.observe(c)
        return obs if "start_error" in obs.facts else None

    return await eventually(seen, deadline=10, what=f"a start error of {c.key}")


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    """uid, gid and permission bits of ``path`` (a sync helper, as the tests' reads are)."""
    st = os.stat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def copies(root: Path, name: str) -> list[Path]:
    """Files called ``name`` anywhere under ``root`` (a sync helper)."""
    return list(root.rglob(name))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "driftmend.drivers.process" and r.levelno == logging.WARNING
    ]


# --- the three OS errors -----------------------------------------------------------------


async def test_a_command_that_does_not_exist(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    c = runtime.track(container("typo", command=["driftmend-no-such-command"]))
    assert await runtime.rt.ensure(c) == []  # not an error of the pass: the observation's
    obs = await runtime.rt.observe(c)
    assert obs.get("container.running") is False
    assert obs.facts["start_error_reason"] == "not-found"
    assert obs.error == (
        "cannot start: replica 0: command 'driftmend-no-such-command' not found on PATH; "
        "install it or give its full path in spec.process.command[0]"
    )
    assert runtime.failures("not-found") == 1
    # One warning line: the resource, the command, the user, the error.
    (line,) = warnings(caplog)
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert line.startswith(
        f"Container/typo: replica 0 did not start (command driftmend-no-such-command, user {me}):"
    )
    assert "not found on PATH" in line
    # ensure tries again, but not at every pass: a growing delay holds it off.
    assert await runtime.rt.ensure(c) == []
    assert runtime.failures("not-found") == 1
    # An action that starts it (the restart tool) fails with the why, and counts too.
    with pytest.raises(DriverError, match="not found on PATH"):
        await runtime.rt.restart(c)
    assert runtime.failures("not-found") == 2


async def test_a_command_that_is_not_executable(runtime: Runtime, tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\nexec sleep 600\n")
    script.chmod(0o644)
    c = runtime.track(container("noexec", command=[f"./{script.name}"]))
    await runtime.rt.ensure(c)
    obs = await runtime.rt.observe(c)
    assert obs.facts["start_error_reason"] == "permission-denied"
    assert f"command {script} is not executable" in (obs.error or "")
    assert runtime.failures("permission-denied") == 1


async def test_a_port_taken_is_an_early_exit_that_quotes_the_replica(runtime: Runtime) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        c = runtime.track(container("web", port=port))
        started = await runtime.rt.ensure(c)
        assert len(started) == 1  # the process was created: it dies of the port on its own
        obs = await start_error(runtime, c)
    assert obs.facts["start_error_reason"] == "address-in-use"
    assert obs.get("container.running") is False
    assert obs.error is not None and obs.error.startswith("cannot start: replica 0 exited")
    assert "Address already in use" in obs.error  # its own last words, from its output
    assert runtime.failures("address-in-use") == 1
    stats = await runtime.rt.stats(c)
    assert stats["replicas"][0]["start_error"]["reason"] == "address-in-use"

    # The port is free again: a start that succeeds (its first probe passed) clears it.
    await runtime.rt.restart(c)

    async def cleared() -> bool:
        obs = await runtime.rt.observe(c)
        return obs.get("container.healthy") is True and "start_error" not in obs.facts

    await eventually(cleared, deadline=10, what="the start error cleared by a good start")
    assert (await runtime.rt.observe(c)).error is None
    state = Path(runtime.rt.log_files(c)[0]).parent / "state.json"
    assert json.loads(state.read_text())["start_errors"] == {}  # cleared on disk too
    assert runtime.failures("address-in-use") == 1


# --- driftmend get, through a controller ---------------------------------------------------


async def test_driftmend_get_shows_why_a_container_cannot_start(tmp_path: Path) -> None:
    specs = write_specs(
        tmp_path / "specs.yaml",
        [
            {
                "apiVersion": API,
                "kind": "Container",
                "metadata": {"name": "ghost"},
                "spec": {"runtime": "process", "process": {"command": ["bin/no-such-server"]}},
            }
        ],
    )
    state = tmp_path / "state"
    async with running(state, load(specs), resync_period=0.5) as controller:

        def row_says_why() -> dict[str, Any] | None:
            row = controller.store.resource_records.resource("Container/ghost")
            return row if row and "no-such-server" in row["message"] else None

        row = await eventually(row_says_why, deadline=15, what="the row names the start error")
        assert "cannot start: replica 0: command 'bin/no-such-server' not found" in row["message"]
        assert row["health"] != "healthy"
        counted = controller.metrics.registry.get_sample_value(
            "driftmend_replica_start_failures_total", {"kind": "Container", "reason": "not-found"}
        )
        assert counted is not None and counted >= 1
        proc = await asyncio.create_subprocess_exec(
            str(REPO / ".venv" / "bin" / "driftmend"), "get", "--state-dir", str(state),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    ghost = text[text.index("ghost") :]
    assert "cannot start: replica 0: command 'bin/no-such-server' not found" in ghost


# --- a checkout only root can enter -------------------------------------------------------


@pytest.fixture
def root_only_checkout() -> Iterator[Path]:
    """``<dir, root's, 0700>/checkout`` with the demo's PostgreSQL launcher, as in /root."""
    if os.geteuid() != 0:
        pytest.skip("running a replica as another user needs root (only root switches users)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user on this machine (apt-get install postgresql)")
    private = Path(tempfile.mkdtemp(prefix="driftmend-rootonly-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    checkout = private / "checkout"
    (checkout / "stack").mkdir(parents=True)
    os.chmod(checkout, 0o755)
    os.chmod(checkout / "stack", 0o755)
    shutil.copy2(REPO / "sample-app" / "stack" / "postgres.sh", checkout / "stack" / "postgres.sh")
    try:
        yield checkout
    finally:
        shutil.rmtree(private, ignore_errors=True)


async def test_postgres_starts_from_a_checkout_only_root_can_enter(
    root_only_checkout: Path, work_root: Path
) -> None:
    pw = pwd.getpwnam("postgres")
    port = free_port()
    r = Runtime(root_only_checkout / ".driftmend", root_only_checkout, work_root)
    await r.rt.start()
    c = r.track(
        Container.model_validate(
            {
                "apiVersion": API,
                "kind": "Container",
                "metadata": {"name": "postgres"},
                "spec": {
                    "process": {
                        "command": ["stack/postgres.sh"],
                        "user": "postgres",
                        "stopSignal": "SIGINT",
                        "env": {"PGPORT": str(port)},
                    },
                    "port": port,
                },
            }
        )
    )
    try:
        await r.rt.ensure(c)

        async def accepts() -> bool:
            with socket.socket() as s:
                s.settimeout(0.2)
                return s.connect_ex(("127.0.0.1", port)) == 0

        await eventually(accepts, deadline=60, what="PostgreSQL listening, started as postgres")
        obs = await r.rt.observe(c)
        assert obs.get("container.running") is True and obs.error is None
        assert "start_error" not in obs.facts
        pid = int(obs.facts["pids"])
        assert psutil.Process(pid).uids().real == pw.pw_uid
        # Its data lives in a directory of its own, which it owns alone, under the work root.
        own = Path(psutil.Process(pid).environ()["DRIFTMEND_STATE_DIR"])
        assert own.is_relative_to(work_root)
        assert (own / "pgdata" / "PG_VERSION").is_file()
        assert owner_and_mode(own) == (pw.pw_uid, pw.pw_gid, 0o700)
        # Every directory it passes through is root's and 0711: enter, not list.
        for d in own.parents:
            if d == work_root.parent:
                break
            assert owner_and_mode(d)[::2] == (0, 0o711), d
        # It runs a copy of its command that it can read and run, and no one else can change.
        copy = Path(obs.facts["work_dir"]) / "bin" / "postgres.sh"
        assert owner_and_mode(copy) == (0, pw.pw_gid, 0o550)
        assert copy.read_bytes() == (root_only_checkout / "stack" / "postgres.sh").read_bytes()
        # Its log stays in the state directory, not world-readable.
        log = Path(r.rt.log_files(c)[0])
        assert owner_and_mode(log)[2] & 0o007 == 0
    finally:
        await r.down()
    assert not (Path(obs.facts["work_dir"]) / "bin").exists()  # down removes the copy


async def test_what_stays_out_of_reach_is_named_with_its_user(
    root_only_checkout: Path, work_root: Path
) -> None:
    # A script whose interpreter sits in the private checkout: no copy of the script mends
    # that, so the start error names the interpreter, the path that blocks it and the user.
    interp = root_only_checkout / "tools" / "sh"
    interp.parent.mkdir()
    shutil.copy2("/bin/sh", interp)
    script = root_only_checkout / "stack" / "run.sh"
    script.write_text(f"#!{interp}\nexec sleep 600\n")
    script.chmod(0o755)
    r = Runtime(root_only_checkout / ".driftmend", root_only_checkout, work_root)
    await r.rt.start()
    c = r.track(container("private", command=["stack/run.sh"], user="nobody"))
    try:
        await r.rt.ensure(c)
        obs = await r.rt.observe(c)
    finally:
        await r.down()
    assert obs.facts["start_error_reason"] == "permission-denied"
    assert obs.facts["start_error_user"] == "nobody"
    private = root_only_checkout.parent
    assert obs.error is not None
    assert f"interpreter {interp} cannot be run as user nobody" in obs.error
    assert f"{private} (mode 0700, owner root) does not let user nobody pass through it" in (
        obs.error
    )
    assert r.failures("permission-denied") == 1


async def test_a_program_out_of_reach_is_named_not_copied(
    root_only_checkout: Path, work_root: Path
) -> None:
    # A program (no #!) finds its libraries beside itself: a copy would fail in its own
    # confusing way, so the start error names what blocks the original, and the user.
    program = root_only_checkout / "tools" / "sleep"
    program.parent.mkdir()
    shutil.copy2("/bin/sleep", program)
    r = Runtime(root_only_checkout / ".driftmend", root_only_checkout, work_root)
    await r.rt.start()
    c = r.track(container("prog", command=["tools/sleep", "600"], user="nobody"))
    try:
        await r.rt.ensure(c)
        obs = await r.rt.observe(c)
    finally:
        await r.down()
    assert obs.get("container.running") is False
    assert obs.facts["start_error_reason"] == "permission-denied"
    assert obs.error is not None
    assert f"{program} cannot be run as user nobody: {root_only_checkout.parent} (mode 0700" in (
        obs.error
    )
    assert not copies(work_root, "sleep")  # nothing copied
