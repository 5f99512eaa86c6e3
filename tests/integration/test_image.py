"""The controller's image: the Dockerfile built for real, then run.

The base is the one ``scripts/base-image.sh`` makes from Debian's packages (debootstrap and
``docker import``; cached by a tag derived from its inputs), since this machine reaches no
image registry; ``docker build --network host`` then installs from PyPI. The image is built
once per module (a rerun reuses every layer) and kept as ``local/driftmend:test``; the image
it replaces is removed when nothing else uses it.

Creating a container of it takes about 20 s on the vfs storage driver (each container gets
a full copy of the root filesystem), so the module creates two: one ``docker run IMAGE
--version`` (the entrypoint as a user runs it), and one long-lived sandbox started the way
a Deployment runs it (read-only root, tmpfs at /tmp and the state dir, specs mounted
read-only) that the other tests ``docker exec`` into and ``docker export``.

Skips, saying why, when there is no Docker engine (docker_harness starts one as root) or the
base image cannot be made here (not root, no debootstrap: the script's exit status 3).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftmend import __version__
from tests.integration.docker_harness import engine_or_skip
from tests.integration.harness import REPO

# Cold, the base image and every layer are built (minutes); warm, the test takes seconds.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

TAG = "local/driftmend:test"
BASE_SCRIPT = REPO / "scripts" / "base-image.sh"
EXAMPLES = REPO / "manifests" / "examples" / "local"
STATE_DIR = "/var/lib/driftmend"
UID = "10001"
# Compilers, linkers and make, under any version suffix (gcc-12, x86_64-linux-gnu-gcc-12).
BUILD_TOOL = re.compile(r"^(?:.*-)?(?:gcc|g\+\+|cc|c\+\+|clang|ld|as|make)(?:-[0-9.]+)?$")
BIN_DIRS = ("bin/", "sbin/", "usr/bin/", "usr/sbin/", "usr/local/bin/", "opt/driftmend/bin/")


@dataclass(frozen=True)
class Built:
    """The image under test, its base, and how long the build took."""

    docker: str
    tag: str
    base: str
    build_seconds: float


def _docker_cli() -> str:
    # The engine's own CLI when both are installed, as scripts/docker-engine.sh does: a newer
    # client in /usr/local/bin may lack the buildx plugin its default builder needs.
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if found is None:
        pytest.skip("no docker CLI on PATH")
    return found


def _run(cmd: list[str], *, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def _build_env(docker: str) -> dict[str, str]:
    """The environment for ``docker build``: BuildKit wherever the CLI can use it.

    Here BuildKit builds the image cold in under a minute and warm in under a second; the
    classic builder takes minutes on the vfs storage driver. A CLI older than 23 has BuildKit
    built in but off by default; a newer one needs its buildx plugin, else only the classic
    builder works. ``DOCKER_BUILDKIT`` set by the caller wins.
    """
    env = dict(os.environ)
    if "DOCKER_BUILDKIT" not in env:
        version = _run([docker, "version", "-f", "{{.Client.Version}}"]).stdout
        major = re.match(r"\s*(\d+)", version)
        if major is not None and int(major.group(1)) < 23:
            env["DOCKER_BUILDKIT"] = "1"
        elif _run([docker, "buildx", "version"]).returncode != 0:
            env["DOCKER_BUILDKIT"] = "0"
    return env


def _image_id(docker: str, ref: str) -> str | None:
    found = _run([docker, "image", "inspect", "-f", "{{.Id}}", ref])
    return found.stdout.strip() if found.returncode == 0 else None


@pytest.fixture(scope="module")
def image() -> Iterator[Built]:
    """``local/driftmend:test``, built from the repository on the local base image."""
    engine = engine_or_skip()
    engine.api.close()
    docker = _docker_cli()
    made = _run(["bash", str(BASE_SCRIPT)], timeout=1200)
    if made.returncode == 3:
        pytest.skip(f"no base image: {made.stderr.strip()} (scripts/base-image.sh)")
    assert made.returncode == 0, f"scripts/base-image.sh failed:\n{made.stderr}"
    base = made.stdout.strip().splitlines()[-1]
    before = _image_id(docker, TAG)
    started = time.monotonic()
    built = _run(
        [docker, "build", "--network", "host", "--build-arg", f"BASE={base}", "-t", TAG, str(REPO)],
        timeout=1500,
        env=_build_env(docker),
    )
    took = time.monotonic() - started
    assert built.returncode == 0, (
        f"docker build failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    )
    after = _image_id(docker, TAG)
    if before is not None and before != after:
        # Only the image this test tagged before; refused (and left) when something uses it.
        _run([docker, "rmi", before])
    print(f"\nimage {TAG} built on {base} in {took:.1f}s")
    yield Built(docker, TAG, base, took)


def _readable_copy(src: Path, dest: Path) -> Path:
    """``src``'s files in ``dest``, readable by the image's user (pytest's tmp dirs are 0700)."""
    shutil.copytree(src, dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


@dataclass(frozen=True)
class Sandbox:
    """A running container of the image: read-only root, specs under /specs."""

    built: Built
    container: str

    def exec(
        self, *cmd: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker exec`` ``cmd`` in it, as the image's user, in its working directory."""
        flags = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
        return _run([self.built.docker, "exec", *flags, self.container, *cmd])


@pytest.fixture(scope="module")
def sandbox(image: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The image running as a Deployment runs it, with three spec sets mounted read-only:
    /specs/local (the examples), /specs/broken (a misspelt kind) and /specs/policies (the
    examples' policies alone: nothing to start, so ``run --once`` only makes its store)."""
    specs = tmp_path_factory.mktemp("image-specs")
    broken = _readable_copy(EXAMPLES, specs / "broken")
    stack = broken / "stack.yaml"
    text = stack.read_text(encoding="utf-8")
    stack.write_text(text.replace("kind: Container", "kind: Contaner", 1), encoding="utf-8")
    policies = _readable_copy(EXAMPLES, specs / "policies")
    (policies / "stack.yaml").unlink()
    name = f"driftmend-image-test-{os.getpid()}"
    started = _run(
        [
            image.docker, "run", "-d", "--name", name, "--network", "host",
            "--read-only", "--tmpfs", "/tmp", "--tmpfs", f"{STATE_DIR}:uid={UID},gid={UID}",
            "-v", f"{EXAMPLES}:/specs/local:ro", "-v", f"{broken}:/specs/broken:ro",
            "-v", f"{policies}:/specs/policies:ro",
            # Its own long-lived command: the image's default needs an API server.
            "--entrypoint", "sleep", image.tag, "infinity",
        ],
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        yield Sandbox(image, started.stdout.strip())
    finally:
        _run([image.docker, "rm", "-f", name])


def test_version_is_the_projects(image: Built) -> None:
    """``docker run IMAGE --version``: the entrypoint is driftmend, at this checkout's version,
    and the default command is the operator, run from the state dir."""
    ran = _run([image.docker, "run", "--rm", "--network", "host", image.tag, "--version"])
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"driftmend {__version__}"
    config = json.loads(_run([image.docker, "image", "inspect", image.tag]).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["driftmend"]
    assert config["Cmd"] == ["operator", "--all-namespaces"]
    assert config["WorkingDir"] == STATE_DIR


def test_validate_examples_read_only_mount(sandbox: Sandbox) -> None:
    """``validate`` of the local examples (mounted read-only) passes; a broken copy fails as
    ``driftmend validate`` does outside the image: exit 1, the culprit and the closest match."""
    ok = sandbox.exec("driftmend", "validate", "/specs/local")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"ok: \d+ document\(s\) valid", ok.stdout), ok.stdout

    refused = sandbox.exec("driftmend", "validate", "/specs/broken")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "/specs/broken/stack.yaml" in said
    assert "unknown kind 'Contaner'" in said
    assert "did you mean Container?" in said


def test_runs_as_non_root(image: Built, sandbox: Sandbox) -> None:
    """The image's user is numeric and not root (Kubernetes' runAsNonRoot can check it), and
    a process in it runs as that uid."""
    user = _run([image.docker, "image", "inspect", "-f", "{{.Config.User}}", image.tag]).stdout
    assert user.strip() == f"{UID}:{UID}"
    ran = sandbox.exec("id", "-u")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == UID


def _filesystem(sandbox: Sandbox) -> list[str]:
    """Every path in the image's root filesystem (``docker export`` of the sandbox: its
    mounts are not part of it, and the read-only root holds nothing the container wrote)."""
    export = [sandbox.built.docker, "export", sandbox.container]
    with subprocess.Popen(export, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            names = [m.name.removeprefix("./") for m in tar]
    assert proc.returncode == 0
    return names


def test_no_build_tools_or_pip_cache(sandbox: Sandbox) -> None:
    """The final image holds the venv and Python, and no compiler, linker, installer or cache."""
    names = _filesystem(sandbox)
    assert "opt/driftmend/bin/driftmend" in names  # the listing is the image's, not empty
    assert any(n.startswith("opt/driftmend/lib/python3") for n in names)
    tools = [n for n in names if n.startswith(BIN_DIRS) and BUILD_TOOL.match(n.rsplit("/", 1)[-1])]
    assert tools == []
    pip = [
        n for n in names if re.search(r"(^|/)(\.cache/pip|site-packages/pip|bin/pip[0-9.]*$)", n)
    ]
    assert pip == []
    # Nothing of the builder stage's work tree: sources, wheels, egg-info.
    assert not [n for n in names if n.startswith(("src/", "tmp/wheels"))]


def test_read_only_root_filesystem(sandbox: Sandbox) -> None:
    """On a read-only root, the controller makes its store in the state dir (a tmpfs, as an
    emptyDir is in a pod); pointed anywhere else it cannot: the root really is read-only."""
    ran = sandbox.exec(
        "driftmend", "run", "-f", "/specs/policies", "--once", env={"DRIFTMEND_HTTP_PORT": "0"}
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert sandbox.exec("test", "-s", f"{STATE_DIR}/driftmend.db").returncode == 0

    elsewhere = {"DRIFTMEND_HTTP_PORT": "0", "DRIFTMEND_STATE_DIR": "/opt/driftmend/state"}
    refused = sandbox.exec("driftmend", "run", "-f", "/specs/policies", "--once", env=elsewhere)
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stdout + refused.stderr
    assert sandbox.exec("touch", "/opt/driftmend/written").returncode != 0
