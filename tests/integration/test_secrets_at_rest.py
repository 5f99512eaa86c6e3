"""A secret put in a spec reaches the replica and nothing else; the state directory is the
controller's alone. A real ``driftmend run`` subprocess, a real replica, real HTTP reads,
and a real other user (``nobody``) trying to read what the controller left on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.controllers import API, Stack, make_stack, restart_on_exit
from tests.services import poll_until

pytestmark = pytest.mark.integration

LITERAL = "literal-token-8d1f0a"  # written in the spec, under a name that says secret
URL_PASSWORD = "upstream-pw-3c9e"  # written in the spec, inside a DSN, under a plain name
FROM_ENV = "env-secret-51b7e2"  # valueFrom: {env: SHOP_DSN}
FROM_FILE = "file-secret-a04c99"  # valueFrom: {file: ...}
SECRETS = (LITERAL, URL_PASSWORD, FROM_ENV, FROM_FILE)
NOBODY = 65534

# The replica proves it was given every secret (in a file outside the state directory), and
# then prints them, as a careless app would: the dashboard must still not show them.
SCRIPT = (
    'printf "%s\\n" "$API_TOKEN" "$UPSTREAM" "$DSN" "$FILE_TOKEN" > "$SEEN"; '
    'echo "ERROR starting with token $API_TOKEN upstream $UPSTREAM dsn $DSN file $FILE_TOKEN"; '
    "exec sleep 3600"
)


def _shop(root: Path) -> dict[str, Any]:
    secret_file = root / "token"
    secret_file.write_text(FROM_FILE + "\n")
    return {
        "apiVersion": API,
        "kind": "Container",
        "metadata": {"name": "shop", "labels": {"app": "sleepers"}},
        "spec": {
            "process": {
                "command": ["sh", "-c", SCRIPT],
                "stopTimeout": "2s",
                "env": {
                    "SEEN": str(root / "seen"),
                    "API_TOKEN": LITERAL,
                    "UPSTREAM": f"postgresql://shop:{URL_PASSWORD}@127.0.0.1/shop",
                    "DSN": {"valueFrom": {"env": "SHOP_DSN"}},
                    "FILE_TOKEN": {"valueFrom": {"file": str(secret_file)}},
                },
            }
        },
    }


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # Not under pytest's tmp_path: that is 0700, and would hide the state directory from
    # another user whatever driftmend did. This root is 0755, like a checkout.
    root = Path(tempfile.mkdtemp(prefix="driftmend-secrets-"))
    os.chmod(root, 0o755)
    monkeypatch.setenv("SHOP_DSN", FROM_ENV)  # the controller's environment
    try:
        yield from make_stack(root, [_shop(root), restart_on_exit()])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return str(answer.read().decode())


def _listening(port: int) -> bool:
    """Whether the controller's HTTP server answers yet (it starts after the replicas may)."""
    try:
        return _get(port, "/healthz") != ""
    except OSError:  # URLError, ConnectionRefusedError
        return False


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to read as another user (nobody)")
def test_a_secret_in_a_spec_reaches_the_replica_and_no_answer_page_store_or_log(
    stack: Stack,
) -> None:
    controller = stack.start()
    poll_until(lambda: _listening(controller.port), deadline_s=30, what="the HTTP server up")
    seen = stack.root / "seen"
    poll_until(lambda: seen.is_file() and seen.read_text().count("\n") == 4, deadline_s=30,
               what="the replica wrote what it was given")  # fmt: skip
    assert seen.read_text().split() == [
        LITERAL, f"postgresql://shop:{URL_PASSWORD}@127.0.0.1/shop", FROM_ENV, FROM_FILE,
    ]  # fmt: skip

    # A fix, so the store holds a fix record (and its signals) as well as the resource row.
    pid = poll_until(lambda: stack.replica_pid("shop"), deadline_s=30, what="a replica pid")
    os.kill(pid, signal.SIGKILL)
    fixes = poll_until(
        lambda: [f for f in json.loads(_get(controller.port, "/api/fixes")) if f.get("outcome")],
        deadline_s=30,
        what="the restart recorded as a fix",
    )
    logs = poll_until(
        lambda: "starting with token" in (text := _get(controller.port, "/api/logs")) and text,
        deadline_s=30,
        what="the replica's line in the dashboard's logs",
    )
    assert "[REDACTED]" in logs
    shown = {
        path: _get(controller.port, path)
        for path in (
            "/api/resources",
            "/api/resources/Container.shop",
            "/resources/Container.shop",
            "/resources",
            "/logs",
            f"/api/fixes/{fixes[0]['id']}",
            f"/fixes/{fixes[0]['id']}",
            "/metrics",
        )
    }
    shown["/api/logs"] = logs
    assert "[REDACTED]" in shown["/api/resources/Container.shop"]  # the env is there, hidden
    assert "SHOP_DSN" in shown["/api/resources/Container.shop"]  # and so is the reference
    assert controller.stop() == 0
    shown["the controller's output"] = controller.output()

    # Every file the controller wrote: the store (with its WAL), state files, the lock. The
    # replica's own log is the app's output, byte for byte; it is tested for access below.
    written = [p for p in stack.state.rglob("*") if p.is_file()]
    assert any(p.name == "driftmend.db" for p in written)
    for path in written:
        if not path.name.startswith("replica-") or path.suffix != ".log":
            shown[str(path)] = path.read_bytes().decode(errors="replace")
    leaks = [(where, s) for where, text in shown.items() for s in SECRETS if s in text]
    assert leaks == [], "\n".join(f"{w}: {s}" for w, s in leaks)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to read as another user (nobody)")
def test_another_local_user_cannot_list_or_read_the_state_directory(stack: Stack) -> None:
    controller = stack.start()
    store = stack.state / "driftmend.db"
    log = poll_until(
        lambda: next(iter(stack.state.rglob("replica-0.log")), None),
        deadline_s=30,
        what="the replica's log",
    )
    poll_until(lambda: (stack.root / "seen").is_file(), deadline_s=30, what="the replica up")
    poll_until(lambda: Path(f"{store}-wal").exists(), deadline_s=30, what="the store's WAL")

    # The test can fail: nobody can list the directory above, so a readable state directory
    # would show here.
    assert _as_nobody("ls", str(stack.root)).returncode == 0
    listing = _as_nobody("ls", str(stack.state))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr
    files = [p for p in stack.state.rglob("*") if p.is_file()]
    for path in (store, Path(f"{store}-wal"), log, *files):
        read = _as_nobody("cat", str(path))
        assert read.returncode != 0 and "Permission denied" in read.stderr, path
    assert oct(stack.state.stat().st_mode & 0o777) == oct(0o711)
    loose = {str(p): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}
    assert controller.stop() == 0


def test_a_state_directory_an_older_driftmend_left_open_is_closed_at_start(
    stack: Stack,
) -> None:
    stack.state.mkdir(mode=0o755)
    os.chmod(stack.state, 0o755)
    old = stack.state / "driftmend.db"
    stale = stack.state / "containers" / "default.gone"
    stale.mkdir(parents=True)
    os.chmod(stale, 0o755)
    (stale / "state.json").write_text("{}")
    os.chmod(stale / "state.json", 0o644)
    controller = stack.start()
    poll_until(lambda: old.is_file() and (stack.root / "seen").is_file(), deadline_s=30,
               what="the controller up on the old state directory")  # fmt: skip
    assert stack.state.stat().st_mode & 0o777 == 0o711
    assert stale.stat().st_mode & 0o777 == 0o711
    assert (stale / "state.json").stat().st_mode & 0o777 == 0o600
    assert old.stat().st_mode & 0o777 == 0o600
    assert controller.stop() == 0
