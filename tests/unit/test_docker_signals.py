"""The pure parts behind the Docker runtime's signals and remedies: health, CPU from stats,
limit checks, and log lines written with Docker's times (and rotated). No engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftmend.drivers.docker.limits import check_limits, wanted_limits
from driftmend.drivers.docker.logs import LogFile, LogFollower
from driftmend.drivers.docker.observation import Readings, facts_of, signals_of
from driftmend.drivers.docker.probes import Probe, health
from driftmend.drivers.docker.replicas import DockerReplica, group
from driftmend.drivers.docker.state import DockerState
from driftmend.drivers.docker.stats import CpuReading, Sample, cpu_percent, parse_stats
from driftmend.errors import PermanentError
from driftmend.log_lines import render
from driftmend.logs import parse_line
from driftmend.spec import Container, HealthProbe


def docker(**spec: Any) -> Container:
    return Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": "web"},
            "spec": {"runtime": "docker", "docker": {"image": "img"}, **spec},
        }
    )


def replica(
    index: int = 0, health_status: str | None = None, streak: int = 0, **host: Any
) -> DockerReplica:
    state: dict[str, Any] = {"Status": "running"}
    if health_status is not None:
        state["Health"] = {"Status": health_status, "FailingStreak": streak}
    return DockerReplica.from_inspect(
        index, {"Id": f"c{index}", "State": state, "HostConfig": host, "Config": {}}
    )


# --- health ------------------------------------------------------------------------------

PROBE = HealthProbe.model_validate({"http": {"path": "/healthz"}, "failureThreshold": 2})


def probe(failures: int = 0, probed_ok: bool = True) -> Probe:
    return Probe(("c0", "t"), PROBE, 8000, started=0.0, failures=failures, probed_ok=probed_ok)


def test_health_from_our_probe() -> None:
    alive = {0: replica(0), 1: replica(1)}
    assert health(PROBE, {0: probe(), 1: probe(1)}, alive, True, False) == (True, 1)
    assert health(PROBE, {0: probe(), 1: probe(2)}, alive, True, False) == (False, 2)
    # Not known until every replica has passed a first probe.
    assert health(PROBE, {0: probe(), 1: probe(probed_ok=False)}, alive, True, False) == (None, 0)
    assert health(PROBE, {0: probe()}, alive, True, False) == (None, 0)
    assert health(PROBE, {0: probe(), 1: probe()}, alive, False, False) == (False, 0)


def test_health_from_dockers_healthcheck() -> None:
    def of(*states: str) -> dict[int, DockerReplica]:
        return {i: replica(i, s, 3 if s == "unhealthy" else 0) for i, s in enumerate(states)}

    assert health(None, {}, of("healthy", "healthy"), True, True) == (True, 0)
    assert health(None, {}, of("healthy", "unhealthy"), True, True) == (False, 3)
    assert health(None, {}, of("healthy", "starting"), True, True) == (None, 0)
    assert health(None, {}, of("healthy"), False, True) == (False, 0)
    assert health(None, {}, {0: replica(0)}, True, False) == (True, 0)  # nothing declared
    assert health(None, {}, {}, False, True) == (False, 0)  # declared, nothing running


def test_a_probe_turns_unhealthy_at_its_threshold_and_waits_out_startup() -> None:
    p = Probe(("c0", "t"), PROBE, 8000, started=100.0)
    # Within startupTimeout (30s by default), before a first pass: starting, not failing.
    assert not p.record(False, now=105.0) and p.failures == 0 and p.healthy
    assert p.record(True, now=106.0) and p.probed_ok  # the first pass is news: health known
    assert not p.record(True, now=106.5)  # a second pass is not
    assert not p.record(False, now=107.0) and p.failures == 1  # after a pass, failures count
    assert p.record(False, now=108.0) and not p.healthy  # the threshold: a transition
    assert not p.record(False, now=109.0)  # still unhealthy: no news
    assert p.record(True, now=110.0) and p.healthy and p.failures == 0
    late = Probe(("c0", "t"), PROBE, 8000, started=0.0)
    assert not late.record(False, now=31.0) and late.failures == 1  # start-up is over


# --- CPU and memory ----------------------------------------------------------------------


def test_stats_bodies_give_memory_without_the_page_cache() -> None:
    v2 = {
        "read": "2026-11-25T04:54:06.5Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 7_000_000}},
        "memory_stats": {"usage": 100 << 20, "stats": {"inactive_file": 30 << 20}},
    }
    assert parse_stats(v2) == Sample(1795582446.5, 7_000_000, 70 << 20)
    v1 = {**v2, "memory_stats": {"usage": 100 << 20, "stats": {"total_inactive_file": 10 << 20}}}
    assert parse_stats(v1) == Sample(1795582446.5, 7_000_000, 90 << 20)
    assert parse_stats({"memory_stats": {"usage": 0}}) is None  # a container that just stopped


def test_cpu_percent_between_two_readings() -> None:
    first, percent = cpu_percent(None, Sample(10.0, 1_000_000_000, 0))
    assert percent == 0.0 and first == CpuReading(10.0, 1_000_000_000)
    kept, percent = cpu_percent(first, Sample(10.2, 1_100_000_000, 0))
    assert kept is first and percent == 0.0  # too close: the last percent stands
    later, percent = cpu_percent(first, Sample(11.0, 1_500_000_000, 0))
    assert percent == pytest.approx(50.0) and later.percent == pytest.approx(50.0)
    restarted, percent = cpu_percent(later, Sample(12.0, 1_000, 0))  # the counter went back
    assert percent == 0.0 and restarted.total_ns == 1_000


# --- limits ------------------------------------------------------------------------------


def test_raising_needs_a_cap_and_stays_within_it() -> None:
    capless = docker(limits={"cpu": 0.5, "memory": "64Mi"})
    with pytest.raises(PermanentError, match=r"no spec\.limits\.memoryCap is declared"):
        check_limits(capless, [], None, 128 << 20, 0, cores=8)
    with pytest.raises(PermanentError, match=r"no spec\.limits\.cpuCap is declared"):
        check_limits(capless, [], 1.0, None, 0, cores=8)
    check_limits(capless, [], 0.5, 48 << 20, 0, cores=8)  # the same or lower: no cap needed
    capped = docker(limits={"cpu": 0.5, "cpuCap": 2, "memory": "64Mi", "memoryCap": "96Mi"})
    check_limits(capped, [], 2.0, 96 << 20, 0, cores=8)
    with pytest.raises(PermanentError, match=r"above spec\.limits\.memoryCap \(96Mi\)"):
        check_limits(capped, [], None, 97 << 20, 0, cores=8)
    with pytest.raises(PermanentError, match=r"above the 1 cores of this host"):
        check_limits(capped, [], 2.0, None, 0, cores=1)
    # Without a declared limit, raising is measured from the container's own (Compose's).
    undeclared = docker()
    composed = [replica(0, Memory=512 << 20, NanoCpus=1_000_000_000)]
    with pytest.raises(PermanentError, match=r"would raise the limit \(512Mi\)"):
        check_limits(undeclared, composed, None, 1 << 30, 0, cores=8)
    with pytest.raises(PermanentError, match=r"would raise the limit \(1 cores\)"):
        check_limits(undeclared, composed, 1.5, None, 0, cores=8)
    check_limits(undeclared, [], 4.0, 1 << 30, 0, cores=8)  # no limit anywhere: a first one


def test_lowering_stops_at_a_floor() -> None:
    web = docker(limits={"cpu": 1, "memory": "256Mi"})
    with pytest.raises(PermanentError, match=r"below the floor of 0\.1 cores"):
        check_limits(web, [], 0.05, None, 0, cores=8)
    with pytest.raises(PermanentError, match=r"below the floor of 6Mi"):
        check_limits(web, [], None, 4 << 20, 0, cores=8)
    # 100 MiB in use: lowering to 120 MiB would OOM-kill it at the next allocation.
    with pytest.raises(PermanentError, match=r"below the floor of 125Mi .*100Mi a replica uses"):
        check_limits(web, [], None, 120 << 20, 100 << 20, cores=8)
    check_limits(web, [], None, 125 << 20, 100 << 20, cores=8)


def test_an_override_holds_while_the_spec_keeps_its_limits() -> None:
    web = docker(limits={"cpu": 0.5, "memory": "64Mi"})
    state = DockerState("Container/web", cpu=1.0, memory=96 << 20, limits_base=[0.5, 64 << 20])
    assert wanted_limits(state, web) == (1.0, 96 << 20)
    edited = docker(limits={"cpu": 0.5, "memory": "80Mi"})
    assert wanted_limits(state, edited) == (0.5, 80 << 20)  # a newer wish than the remedy


# --- log lines ---------------------------------------------------------------------------

NS = 1795582446_598413247  # 2026-11-25T04:54:06.598413247Z


def test_a_line_without_a_time_gets_dockers() -> None:
    written, seen = render(NS, "ERROR payment failed", None)
    assert written == "2026-11-25T04:54:06.598413247Z ERROR - ERROR payment failed"
    parsed = parse_line(written, read_at=0.0)  # what the log accumulator will read
    assert (parsed.at, parsed.level, parsed.message) == (
        pytest.approx(NS / 1e9),
        "ERROR",
        "ERROR payment failed",
    )
    assert seen is not None and seen.level == "ERROR"


def test_lines_with_their_own_time_and_continuations_stay_as_they_are() -> None:
    app = "2026-11-25T04:54:06.100Z INFO shop started"
    pg = "2026-11-25 04:54:06.100 UTC [42] LOG:  database system is ready"
    assert render(NS, app, None)[0] == app
    assert render(NS, pg, None)[0] == pg
    head, previous = render(NS, "Traceback (most recent call last):", None)
    assert head.startswith("2026-11-25T04:54:06.598413247Z ERROR - Traceback")
    frame, previous = render(NS + 1, '  File "app.py", line 3, in <module>', previous)
    assert frame == '  File "app.py", line 3, in <module>'  # joins the event before it
    last, _ = render(NS + 2, "ValueError: boom", previous)
    assert last == "ValueError: boom"
    assert render(NS, "   ", previous)[0] == "   "  # blank: left for the accumulator to skip


def test_the_log_file_rotates_past_its_size(tmp_path: Path) -> None:
    path = tmp_path / "replica-0.log"
    out = LogFile(path, max_bytes=100)
    out.write_lines(["x" * 60])
    out.write_lines(["y" * 60])  # 122 bytes: rotated after this write
    out.write_lines(["z" * 10])
    out.close()
    assert (tmp_path / "replica-0.log.1").read_text() == f"{'x' * 60}\n{'y' * 60}\n"
    assert path.read_text() == f"{'z' * 10}\n"


def test_a_follower_writes_each_line_once(tmp_path: Path) -> None:
    follower = LogFollower(None, "c0", tmp_path / "r.log", since_ns=NS)
    out = LogFile(tmp_path / "r.log")
    rest = follower._write(
        out,
        b"2026-11-25T04:54:06.598413247Z already written\n"
        b"2026-11-25T04:54:07.000000000Z new line\n"
        b"2026-11-25T04:54:07.5",
    )
    out.close()
    assert rest == b"2026-11-25T04:54:07.5"  # an unfinished line waits for the next chunk
    assert (tmp_path / "r.log").read_text() == "2026-11-25T04:54:07.000000000Z INFO - new line\n"
    assert follower.last_ns == 1795582447_000000000


# --- signals and facts -------------------------------------------------------------------


def readings(**kw: Any) -> Readings:
    base: dict[str, Any] = {
        "desired": 2,
        "stopped": False,
        "restarts": 1,
        "cpu": {},
        "memory": {},
        "probes": {},
        "limits": (None, 64 << 20),
    }
    return Readings(**(base | kw))


def state_replica(index: int, status: str, **state: Any) -> DockerReplica:
    body = {
        "Id": f"c{index}",
        "Name": f"/web-{index}",
        "State": {"Status": status, "Pid": 40 + index, **state},
        "HostConfig": {},
        "Config": {},
    }
    return DockerReplica.from_inspect(index, body)


def test_a_replica_down_is_a_drift_with_its_exit() -> None:
    web = docker(port=8000, portEnv="PORT")
    up = state_replica(0, "running")
    oom = state_replica(
        1, "exited", OOMKilled=True, ExitCode=137, FinishedAt="2026-11-25T04:54:06Z"
    )
    snap = group([up, oom])
    r = readings(cpu={0: 12.5}, memory={0: 32 << 20})
    signals = signals_of(web, snap, r)
    assert signals["container.running"] is False
    assert (signals["container.replicas_running"], signals["container.replicas_desired"]) == (1, 2)
    assert (signals["container.exit_code"], signals["container.oom_killed"]) == (137, True)
    assert signals["container.memory_used_ratio"] == 0.5  # of the wanted 64 MiB
    assert "container.cpu_used_ratio" not in signals  # no CPU limit anywhere
    facts = facts_of(web, snap, r)
    assert (facts["containers"], facts["pids"], facts["ports"]) == ("web-0", "40", "8000")
    assert facts["last_exit_reason"] == "killed by the out-of-memory killer"
    assert facts["last_exit_at"] == "2026-11-25T04:54:06+00:00"


def test_a_replica_that_could_not_start_reports_why() -> None:
    broken = state_replica(0, "created", ExitCode=127, Error="exec: /app: not found")
    snap = group([broken])
    signals = signals_of(docker(), snap, readings(desired=1))
    assert (signals["container.running"], signals["container.exit_code"]) == (False, 127)
    facts = facts_of(docker(), snap, readings(desired=1))
    assert facts["last_exit_reason"] == "could not start: exec: /app: not found"
    assert "last_exit_at" not in facts  # it never ran, so it never ended


def test_a_stop_and_a_scale_down_are_ours() -> None:
    stopped = state_replica(0, "exited", ExitCode=143, FinishedAt="2026-11-25T04:54:06Z")
    snap = group([stopped])
    r = readings(desired=1, stopped=True)
    assert signals_of(docker(), snap, r)["container.running"] is False  # still a drift
    facts = facts_of(docker(), snap, r)
    assert facts["stopped"] == "true"
    assert facts["last_exit_reason"] == "stopped by driftmend by SIGTERM (code 143)"
    # Scaled to 0: none wanted, none running, in sync; the kept container was stopped by us.
    scaled = readings(desired=0)
    assert signals_of(docker(), snap, scaled)["container.running"] is True
    assert facts_of(docker(), snap, scaled)["last_exit_reason"].startswith("stopped by driftmend")


def test_missing_replicas_are_named_as_compose_would_name_them() -> None:
    web = Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": "web"},
            "spec": {"runtime": "docker", "docker": {"compose": {"service": "web"}}},
        }
    )
    facts = facts_of(web, group([], "shop"), readings(desired=1))
    assert facts["missing"] == "replica 0 (shop-web-1)"
    assert facts["compose_project"] == "shop"
