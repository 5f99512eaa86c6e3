"""The state directory's permissions (``state_dir.py``): 0711, and the controller's files 0600."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from driftmend.errors import ConfigurationError
from driftmend.state_dir import prepare_state_dir


def _mode(path: Path) -> int:
    return path.lstat().st_mode & 0o777


def test_a_new_state_directory_is_0711(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    prepare_state_dir(state)
    assert _mode(state) == 0o711


def test_what_an_older_driftmend_left_open_is_closed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "containers" / "default.shop").mkdir(parents=True)
    for d in (state, state / "containers", state / "containers" / "default.shop"):
        os.chmod(d, 0o755)
    files = [state / "driftmend.db", state / "containers" / "default.shop" / "replica-0.log"]
    for f in files:
        f.write_text("x")
        os.chmod(f, 0o644)
    script = state / "run.sh"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o755)
    prepare_state_dir(state)
    assert [_mode(d) for d in (state, state / "containers")] == [0o711, 0o711]
    assert [_mode(f) for f in files] == [0o600, 0o600]
    assert _mode(script) == 0o700  # the owner keeps what it had


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to give a directory to another user")
def test_a_replica_users_own_directory_is_left_as_that_user_keeps_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    own = state / "containers" / "default.db" / "data"
    own.mkdir(parents=True)
    inside = own / "postgresql.conf"
    inside.write_text("x")
    os.chmod(own, 0o750)
    os.chmod(inside, 0o640)
    os.chown(own, 65534, 65534)
    os.chown(inside, 65534, 65534)
    prepare_state_dir(state)
    assert (_mode(own), _mode(inside)) == (0o750, 0o640)


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.chmod(outside, 0o644)
    state = tmp_path / "state"
    state.mkdir()
    (state / "link").symlink_to(outside)
    prepare_state_dir(state)
    assert _mode(outside) == 0o644


def test_a_state_directory_that_cannot_be_made_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match="DRIFTMEND_STATE_DIR"):
        prepare_state_dir(blocker / "state")


def test_the_private_umask_covers_new_files_and_spares_the_replicas(tmp_path: Path) -> None:
    # In a child process: the umask is the whole process's, and pytest's must stay as it is.
    code = (
        "import os, sys, subprocess\n"
        "from driftmend.state_dir import private_umask, replica_umask\n"
        "os.umask(0o022)\n"
        "private_umask()\n"
        "d = sys.argv[1]\n"
        "open(os.path.join(d, 'f'), 'w').close()\n"
        "os.mkdir(os.path.join(d, 'sub'))\n"
        "r = subprocess.run(['sh', '-c', 'umask'], capture_output=True, text=True,\n"
        "                   umask=replica_umask())\n"
        "print(r.stdout.strip())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert (_mode(tmp_path / "f"), _mode(tmp_path / "sub")) == (0o600, 0o711)
    assert out.stdout.strip() == "0022"
