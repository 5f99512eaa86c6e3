"""The state directory's lock: one holder at a time, named by its pid; a stale file is no
obstacle. (The lock across processes: tests/integration/test_one_owner.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driftmend.ownership import LOCK_NAME, StateDirOwnedError, claim, stop_owner


def test_a_second_claim_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with claim(tmp_path / "state"):
        assert (tmp_path / "state" / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(StateDirOwnedError, match=f"owned by pid {os.getpid()}") as caught:
            claim(tmp_path / "state")
        assert caught.value.pid == os.getpid()
        assert "--state-dir" in str(caught.value) and "\n" not in str(caught.value)
    # Released: the next claim works, and finds an empty file.
    with claim(tmp_path / "state"):
        pass


def test_a_stale_lock_file_is_no_obstacle(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("999999999\n")
    with claim(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_down_does_not_signal_itself(tmp_path: Path) -> None:
    # The holder is this very process: stop_owner must refuse, not SIGTERM us.
    with claim(tmp_path), pytest.raises(StateDirOwnedError):
        stop_owner(tmp_path, timeout=0.1, say=lambda line: None)
