"""A real Docker engine for the Docker tests, and a controller wired with the runtime router.

Nothing is faked: the engine is Debian's dockerd (``scripts/docker-engine.sh`` installs and
starts it as root), the image is ``local/hostbase`` (an empty root filesystem; containers
mount the host's own /usr, /lib, /bin and /etc read-only), and containers use host
networking, so tests talk to 127.0.0.1 only. Every container a test creates carries the label
``driftmend.test=1`` and is removed when the test ends.

Where no engine can be had (not root and none running), the tests skip and say why: the
reason the script wrote to ``REASON_FILE`` when it gave up.

Compose services are faked at the engine: ``compose_container`` creates a container with the
labels Compose gives its own (project, service, container number, one-off), so tests can
set up two projects running one service without a Compose binary.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from prometheus_client import CollectorRegistry

from driftmend.controller import Controller
from driftmend.drivers.docker import DockerRuntime
from driftmend.drivers.postgres import PsycopgDriver
from driftmend.drivers.process import ProcessRuntime
from driftmend.drivers.redis import RedisPyDriver
from driftmend.drivers.runtimes import RuntimeRouter
from driftmend.logs import LogAccumulator
from driftmend.metrics import Metrics
from driftmend.settings import Settings
from driftmend.spec import LoadResult
from driftmend.store import Store
from driftmend.tools.catalogue import default_catalogue
from tests.integration.harness import REPO
from tests.services import poll_until

API = "driftmend.dev/v1alpha1"
IMAGE = "local/hostbase"
TEST_LABEL = "driftmend.test"
HOST_MOUNTS = ["/usr:/usr:ro", "/lib:/lib:ro", "/lib64:/lib64:ro", "/bin:/bin:ro", "/etc:/etc:ro"]
PIDFILE = Path(os.environ.get("DRIFTMEND_DOCKERD_PIDFILE", "/var/run/driftmend-dockerd.pid"))
REASON_FILE = Path(
    os.environ.get("DRIFTMEND_DOCKER_REASON_FILE", "/tmp/driftmend-docker-engine.reason")
)
SCRIPT = REPO / "scripts" / "docker-engine.sh"

# A tiny web app: every path answers 200; one INFO line per request on stdout.
WEB = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): print('INFO request', self.path, flush=True)\n"
    "print('INFO web starting on', os.environ['PORT'], flush=True)\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
)


@dataclass(frozen=True)
class Engine:
    """A Docker engine that answers, with ``local/hostbase`` on it."""

    api: Any  # docker.APIClient
    version: str


def engine_or_skip() -> Engine:
    """The engine, started by ``scripts/docker-engine.sh`` when needed; else skip, saying why."""
    api = _ping()
    if api is None and os.geteuid() == 0 and SCRIPT.exists():
        # Outside `make test` (a bare pytest run): the same script installs and starts it.
        subprocess.run(["bash", str(SCRIPT)], check=False, timeout=600)
        api = _ping()
    if api is None:
        pytest.skip(f"no Docker engine: {_script_reason()}")
    try:
        api.inspect_image(IMAGE)
    except docker.errors.ImageNotFound:
        api.close()  # a skip must not leave the client's socket to the garbage collector
        pytest.skip(f"the engine has no {IMAGE} image: run scripts/docker-engine.sh")
    return Engine(api, api.version()["Version"])


def _script_reason() -> str:
    """Why scripts/docker-engine.sh could not provide an engine, in its own words."""
    try:
        reason = REASON_FILE.read_text(encoding="utf-8").strip()
    except OSError:
        reason = ""
    if reason:
        return f"{reason} (scripts/docker-engine.sh)"
    if os.geteuid() != 0:
        return "none answers, and only root can install and start dockerd"
    return "none answers, and scripts/docker-engine.sh gave no reason (run it to see its output)"


def _ping() -> Any:
    api = None
    try:
        api = docker.APIClient(version="auto", timeout=10)
        api.ping()
        return api
    except Exception:  # any failure to reach the engine means "no engine here"
        if api is not None:
            api.close()
        return None


def remove_test_containers(api: Any) -> None:
    """Remove every container a test created (they all carry ``driftmend.test=1``)."""
    for c in api.containers(all=True, filters={"label": [f"{TEST_LABEL}=1"]}):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(c["Id"], force=True)


def compose_container(
    api: Any,
    project: str,
    service: str,
    number: int,
    *,
    command: list[str],
    env: dict[str, str] | None = None,
    oneoff: bool = False,
    **host: Any,
) -> str:
    """Create and start a container as Compose would for ``project``'s ``service``; its id.

    Named ``<project>-<service>-<number>`` (a one-off gets ``-run-<number>``), with Compose's
    labels and the test label; ``host`` goes to ``create_host_config`` (``nano_cpus``, ...).
    """
    labels = {
        "com.docker.compose.project": project,
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": str(number),
        "com.docker.compose.oneoff": "True" if oneoff else "False",
        TEST_LABEL: "1",
    }
    name = f"{project}-{service}-{'run-' if oneoff else ''}{number}"
    created = api.create_container(
        IMAGE,
        command,
        name=name,
        labels=labels,
        environment=env or {},
        host_config=api.create_host_config(
            network_mode="host", binds=HOST_MOUNTS, init=True, **host
        ),
    )
    api.start(created["Id"])
    return str(created["Id"])


def foreign_running_containers(api: Any) -> list[str]:
    """Names of running containers that no test made (they lack ``driftmend.test=1``)."""
    return sorted(
        c["Names"][0].lstrip("/")
        for c in api.containers()
        if (c.get("Labels") or {}).get(TEST_LABEL) != "1"
    )


def docker_container(
    name: str,
    *,
    command: list[str],
    port: int | None = None,
    health: dict[str, Any] | None = None,
    docker_extra: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A ``runtime: docker`` Container document running ``command`` on local/hostbase."""
    body: dict[str, Any] = {
        "runtime": "docker",
        "docker": {
            "image": IMAGE,
            "command": command,
            "volumes": list(HOST_MOUNTS),
            "labels": {TEST_LABEL: "1"},
            "init": True,  # PID 1 forwards SIGTERM: a restart need not wait for SIGKILL
            **(docker_extra or {}),
        },
        **spec,
    }
    if port is not None:
        body |= {"port": port, "portEnv": "PORT"}
    if health is not None:
        body["health"] = health
    return {
        "apiVersion": API,
        "kind": "Container",
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": body,
    }


def policy(name: str, rules: list[dict[str, Any]], app: str = "web") -> dict[str, Any]:
    """A HealingPolicy over Containers labelled ``app``."""
    return {
        "apiVersion": API,
        "kind": "HealingPolicy",
        "metadata": {"name": name},
        "spec": {"selector": {"kind": "Container", "matchLabels": {"app": app}}, "rules": rules},
    }


def router(state_dir: Path) -> RuntimeRouter:
    """Both runtimes under ``state_dir``."""
    return RuntimeRouter(ProcessRuntime(state_dir, base_dir=REPO), lambda: DockerRuntime(state_dir))


def build(state_dir: Path, **settings: Any) -> Controller:
    """A controller with the runtime router and every real driver."""
    s = Settings(state_dir=state_dir, resync_period=settings.pop("resync_period", 2.0), **settings)
    return Controller(
        settings=s,
        runtime=router(state_dir),
        postgres=PsycopgDriver(),
        redis=RedisPyDriver(),
        logs=LogAccumulator(),
        store=Store(s.store_path),
        metrics=Metrics(CollectorRegistry()),
        catalogue=default_catalogue(),
    )


@contextlib.asynccontextmanager
async def running(
    state_dir: Path, result: LoadResult, **settings: Any
) -> AsyncIterator[Controller]:
    """A started controller; stopped (its containers left running) on exit."""
    controller = build(state_dir, **settings)
    controller.apply(result)
    await controller.start()
    try:
        yield controller
    finally:
        await controller.stop()
        controller.store.close()


def docker_runtime(controller: Controller) -> DockerRuntime:
    """The Docker runtime behind a controller built by ``build``."""
    assert isinstance(controller.runtime, RuntimeRouter)
    return controller.runtime.docker


def record_events(controller: Controller) -> list[tuple[str, str]]:
    """The (key, reason) events the Docker runtime reports from now on, still delivered.

    A spy, not a fake: the events go on to ``driftmend.on_event`` as before; the list lets
    a test say that an engine event, not a resync, put the resource on the queue.
    """
    seen: list[tuple[str, str]] = []

    def sink(key: str, reason: str) -> None:
        seen.append((key, reason))
        controller.on_event(key, reason)

    docker_runtime(controller).set_event_sink(sink)
    return seen


# --- restarting the engine ---------------------------------------------------------------


def own_dockerd_pid() -> int | None:
    """The pid of the dockerd that scripts/docker-engine.sh started, if it still runs."""
    try:
        pid = int(PIDFILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if cmdline and cmdline[0].endswith(b"dockerd") else None


def restart_dockerd(pid: int, deadline: float = 60.0) -> int:
    """Stop the engine ``pid`` (SIGTERM) and start it again with the same command line.

    Only ever called on the engine our script started (``own_dockerd_pid``). Returns the new
    pid once the engine answers; fails the test after ``deadline`` seconds.
    """
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    os.kill(pid, 15)
    started = time.monotonic()
    poll_until(lambda: _gone(pid), deadline_s=deadline, what=f"dockerd (pid {pid}) stopped")
    with open("/var/log/driftmend-dockerd.log", "ab") as log:
        # `setsid -f` forks the engine off and returns at once: it outlives this test run
        # (as the one the script started would), and there is no child left to reap.
        subprocess.run(
            ["setsid", "-f", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            check=True,
            timeout=10,
        )
    left = max(0.0, deadline - (time.monotonic() - started))
    api = poll_until(_ping, deadline_s=left, what="dockerd answering after its restart")
    api.close()
    new = own_dockerd_pid()
    assert new is not None and new != pid, "the restarted dockerd wrote no pid file"
    return new


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited; a zombie is gone for our purpose (its socket is closed)."""
    with contextlib.suppress(OSError):
        return "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    return True


@contextlib.contextmanager
def engine_session() -> Iterator[Engine]:
    """The engine for a module's tests (or a skip); its test containers removed around them."""
    engine = engine_or_skip()
    remove_test_containers(engine.api)
    try:
        yield engine
    finally:
        remove_test_containers(engine.api)
        engine.api.close()
