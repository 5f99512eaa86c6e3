"""Start errors without processes: reachability by mode bits, the state kept, the words
read from a replica's output, the metric, and the resource row's message."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftmend.drivers.process.access import RunAs, blocker, interpreter, work_dir
from driftmend.drivers.process.starts import _classify, _tail
from driftmend.drivers.process.state import ProcessState, StartError
from driftmend.metrics import Metrics
from driftmend.model import Observation, Outcome
from driftmend.reconciler import _Ended, _row_message

# A user that owns nothing here and is in no group of ours: what "others" may do applies.
STRANGER = RunAs("stranger", 64000, 64000, frozenset({64000}), "/nonexistent")


def as_owner(path: Path) -> RunAs:
    """A user who owns ``path`` (its uid and gid), whoever runs the test."""
    st = os.stat(path)
    return RunAs("owner", st.st_uid, st.st_gid, frozenset({st.st_gid}), "/")


# ``work_root`` (tests/conftest.py): a directory under /tmp anyone may pass through, which
# pytest's own tmp_path (0700) is not.


def test_a_directory_without_x_for_others_blocks_a_stranger(work_root: Path) -> None:
    tmp_path = work_root
    private = tmp_path / "private"
    (private / "checkout").mkdir(parents=True)
    target = private / "checkout" / "run.sh"
    target.write_text("#!/bin/sh\n")
    os.chmod(private / "checkout", 0o755)
    target.chmod(0o755)
    private.chmod(0o700)
    why = blocker(target, STRANGER, os.R_OK | os.X_OK)
    assert why is not None
    assert why.startswith(f"{private} (mode 0700, owner ")
    assert why.endswith("does not let user stranger pass through it")
    private.chmod(0o711)  # enter, not list: enough to reach a file by its name
    assert blocker(target, STRANGER, os.R_OK | os.X_OK) is None
    target.chmod(0o700)
    assert blocker(target, STRANGER, os.X_OK) == (
        f"{target} (mode 0700, owner {_name(target)}) does not let user stranger use it"
    )


def test_the_owners_bits_apply_to_the_owner_even_when_others_may_more(work_root: Path) -> None:
    tmp_path = work_root
    d = tmp_path / "d"
    d.mkdir()
    d.chmod(0o077)
    assert blocker(d, as_owner(d)) is not None
    assert blocker(d, STRANGER) is None
    d.chmod(0o700)


def test_a_missing_path_is_named(work_root: Path) -> None:
    missing = work_root / "nope"
    assert blocker(missing, STRANGER) == f"{missing}: No such file or directory"


def test_interpreter_is_read_from_the_shebang(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_text("#!/usr/bin/env bash\necho\n")
    assert interpreter(script) == Path("/usr/bin/env")
    script.write_bytes(b"\x7fELF...")
    assert interpreter(script) is None


def test_each_state_dir_gets_its_own_work_dir() -> None:
    root = Path("/var/lib/driftmend/replicas")
    a = work_dir(root, Path("/root/a/dm/.driftmend"), "default.postgres")
    b = work_dir(root, Path("/root/b/dm/.driftmend"), "default.postgres")
    assert a != b and a.parent.parent == root and a.name == "default.postgres"
    assert a.parent.name.startswith("dm-")  # whose it is, readable
    assert a == work_dir(root, Path("/root/a/dm/.driftmend"), "default.postgres")


def test_start_errors_survive_state_json_and_junk_is_dropped() -> None:
    state = ProcessState("Container/x")
    state.start_errors[0] = StartError("not-found", "command 'x' not found", 5.0, "x", "postgres")
    again = ProcessState.from_json("Container/x", state.to_json())
    assert again.start_errors == state.start_errors
    raw = state.to_json() | {"start_errors": {"0": {"reason": "made-up"}, "a": {}, "1": 3}}
    read = ProcessState.from_json("Container/x", raw)
    assert list(read.start_errors) == [0]
    assert read.start_errors[0].reason == "other"  # a bounded word, never free text


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        ("OSError: [Errno 98] Address already in use", "address-in-use"),
        ('FATAL:  could not bind IPv4 address "127.0.0.1"', "address-in-use"),
        ("mkdir: cannot create directory '/x': Permission denied", "permission-denied"),
        (
            "python: can't open file '/app/main.py': [Errno 2] No such file or directory",
            "not-found",
        ),
        ("KeyError: 'SHOP_DATABASE_URL'", "exited-early"),
    ],
)
def test_an_early_exit_is_classified_by_its_last_words(tail: str, reason: str) -> None:
    assert _classify(tail) == reason


def test_the_tail_is_what_this_process_wrote(tmp_path: Path) -> None:
    log = tmp_path / "replica-0.log"
    log.write_text("old run: fine\n")
    offset = log.stat().st_size
    with log.open("a") as f:
        f.write("starting\n\n  Traceback\nOSError: Address already in use  \n")
    assert _tail(log, offset) == "Traceback | OSError: Address already in use"
    assert _tail(log, log.stat().st_size) == ""
    assert _tail(tmp_path / "missing.log", 0) == ""


def test_start_failures_are_counted_by_kind_and_reason() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.replica_start_failed("Container", "not-found")
    metrics.replica_start_failed("Container", "not-found")
    metrics.replica_start_failed("Container", "address-in-use")
    sample = registry.get_sample_value
    name = "driftmend_replica_start_failures_total"
    assert sample(name, {"kind": "Container", "reason": "not-found"}) == 2
    assert sample(name, {"kind": "Container", "reason": "address-in-use"}) == 1


def test_the_row_message_says_why_unless_all_is_well() -> None:
    obs = Observation("Container/x", 1.0, {}, error="cannot start: replica 0: not found")
    waiting = _Ended(Outcome.WAITING, "container.running is false")
    assert _row_message(waiting, obs) == (
        "container.running is false; cannot start: replica 0: not found"
    )
    assert _row_message(_Ended(Outcome.IN_SYNC, "in sync"), obs) == "in sync"
    said = _Ended(Outcome.FAILED, "container_restart error: cannot start: replica 0: not found")
    assert _row_message(said, obs) == said.message  # not twice
    quiet = Observation("Container/x", 1.0, {})
    assert _row_message(waiting, quiet) == "container.running is false"


def _name(path: Path) -> str:
    return pwd.getpwuid(os.stat(path).st_uid).pw_name
