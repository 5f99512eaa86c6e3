"""A real Kubernetes API server (and etcd) on 127.0.0.1 for the tests, from ``../shared/k8s``.

That folder is beside the checkout on the development machines and in CI, and absent in a
fresh clone: ``k8s_dir`` finds it (``DRIFTMEND_K8S_DIR`` overrides), and the ``apiserver``
fixture skips with a reason that says so when it is missing. Every instance gets its own
state directory and free ports, so tests and helpers running at once never share one, and
nothing is written into the shared folder itself (its start script unpacks the binaries into
a cache under ``$TMPDIR``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port

REPO = Path(__file__).resolve().parents[1]

MISSING = (
    "needs the real Kubernetes API server of ../shared/k8s (beside the checkout on the "
    "development machines and in CI; absent in a fresh clone): set DRIFTMEND_K8S_DIR to a "
    "folder holding its start.sh to run these tests"
)


def k8s_dir() -> Path | None:
    """The folder holding ``start.sh`` and ``bin/``, or None when this machine has none."""
    override = os.environ.get("DRIFTMEND_K8S_DIR")
    candidates = [Path(override)] if override else [REPO.parent / "shared" / "k8s"]
    for candidate in candidates:
        if (candidate / "start.sh").is_file() and shutil.which("kubectl"):
            return candidate
    return None


@dataclass
class ApiServer:
    """One running API server: its kubeconfig and a ``kubectl`` bound to it."""

    kubeconfig: Path
    state_dir: Path
    port: int

    @property
    def url(self) -> str:
        """The API server's https address."""
        return f"https://127.0.0.1:{self.port}"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl`` against this server; ``check`` raises with its stderr on failure."""
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}"
            )
        return done

    def get_json(self, *args: str) -> Any:
        """``kubectl get ... -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, *paths: str | Path, extra: Sequence[str] = ()) -> str:
        """``kubectl apply -f`` each path; returns kubectl's output."""
        files = [a for p in paths for a in ("-f", str(p))]
        return self.kubectl("apply", *files, *extra).stdout


def _env(state: Path, apiserver: int, controller_manager: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        K8S_STATE_DIR=str(state),
        APISERVER_PORT=str(apiserver),
        ETCD_PORT=str(free_port()),
        ETCD_PEER_PORT=str(free_port()),
        K8S_CONTROLLER_MANAGER="1" if controller_manager else "0",
    )
    return env


@pytest.fixture(scope="session")
def apiserver() -> Iterator[ApiServer]:
    """A real kube-apiserver + etcd for the whole session; skips where ``../shared`` is absent."""
    yield from start_apiserver()


def start_apiserver(*, controller_manager: bool = False) -> Iterator[ApiServer]:
    """Start an API server in a fresh temporary state dir; stop it and clean up after."""
    folder = k8s_dir()
    if folder is None:
        pytest.skip(MISSING)
    state = Path(tempfile.mkdtemp(prefix="driftmend-k8s-"))
    port = free_port()
    env = _env(state, port, controller_manager)
    kubeconfig = state / "kubeconfig"
    started = subprocess.run(
        [str(folder / "start.sh"), str(kubeconfig)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    try:
        if started.returncode != 0:
            logs = "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                for p in sorted((state / "logs").glob("*.log"))
            )
            raise RuntimeError(f"the API server did not start:\n{started.stderr}\n{logs}")
        yield ApiServer(kubeconfig=kubeconfig, state_dir=state, port=port)
    finally:
        subprocess.run([str(folder / "start.sh"), "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)
