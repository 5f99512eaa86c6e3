"""When a quiet pass is written: on a change of what it says, else once per interval."""

from __future__ import annotations

from driftmend.pacing import Pacer, state_of


def test_a_pass_that_says_the_same_is_written_once_per_interval() -> None:
    pacer = Pacer(30.0)
    assert pacer.due("a", ("healthy",), 100.0)  # never written
    pacer.written("a", ("healthy",), 100.0)
    assert not pacer.due("a", ("healthy",), 101.0)
    assert not pacer.due("a", ("healthy",), 129.9)
    assert pacer.due("a", ("healthy",), 130.0)
    assert pacer.due("b", ("healthy",), 101.0)  # per key


def test_a_change_is_written_at_once_and_a_failed_write_is_tried_again() -> None:
    pacer = Pacer(30.0)
    pacer.written("a", ("healthy",), 100.0)
    assert pacer.due("a", ("drifting",), 100.5)
    # Not marked written (the store refused it): still due at the next pass.
    assert pacer.due("a", ("drifting",), 101.5)
    pacer.forget("a")
    assert pacer.due("a", ("healthy",), 102.0)


def test_state_signals_count_and_measurements_do_not() -> None:
    quiet = {"container.running": True, "container.restarts": 0, "container.cpu_percent": 1.5,
             "container.memory_bytes": 1000, "logs.errors_per_minute": 0.0}  # fmt: skip
    busier = quiet | {"container.cpu_percent": 40.0, "container.memory_bytes": 2000}
    assert state_of(quiet) == state_of(busier)
    assert state_of(quiet) != state_of(quiet | {"container.running": False})
    assert state_of(quiet) != state_of(quiet | {"container.restarts": 1})
    # A name the catalogue does not know is taken as state: one write too many at worst.
    assert state_of(quiet) != state_of(quiet | {"external.thing": 1.0})
