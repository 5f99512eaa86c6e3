"""Leader election against the real API server (../shared/k8s): one leader among candidates,
failover after an abrupt death and after a release, a leader that loses the API stopping, a
409 race of five, and two OS processes with kill -9 of the leader.

Figures (failover seconds) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import kopf
import pytest

from driftmend.kube.client import KubeClient
from driftmend.kube.kubeconfig import connection_from_kubeconfig, login
from driftmend.leader import HttpLeaseApi, LeaderElector, LeaseConflict, LeaseError
from driftmend.lease import LeaseRecord
from tests.integration.harness import eventually
from tests.k8s import REPO, ApiServer
from tests.services import free_port, poll_until

pytestmark = pytest.mark.integration

LEASE, RENEW, RETRY = 4.0, 3.0, 1.0  # the defaults (Settings.leader_*)
MARGIN = 1.0


def lease_name() -> str:
    return f"leader-{uuid.uuid4().hex[:8]}"


def holder(apiserver: ApiServer, name: str) -> str | None:
    lease = apiserver.get_json("lease", name, "-n", "default")
    return lease["spec"].get("holderIdentity")


async def forever() -> None:
    await asyncio.Event().wait()


def noting(events: list[tuple[str, float]], what: str) -> Callable[[], Awaitable[None]]:
    async def note() -> None:
        events.append((what, time.monotonic()))

    return note


class CountingLeases(HttpLeaseApi):
    """The real LeaseApi, counting the writes the API server refused with 409."""

    conflicts = 0

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        try:
            return await super().create(namespace, name, record)
        except LeaseConflict:
            CountingLeases.conflicts += 1
            raise

    async def replace(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        try:
            return await super().replace(namespace, name, record)
        except LeaseConflict:
            CountingLeases.conflicts += 1
            raise


def leading_noted(events: list[tuple[str, float]]) -> Callable[[], Awaitable[None]]:
    async def lead() -> None:
        events.append(("started", time.monotonic()))
        await forever()

    return lead


class Candidates:
    """Electors on one lease, each with its own client and ``run`` task."""

    def __init__(self, apiserver: ApiServer, stack: AsyncExitStack, name: str) -> None:
        self.apiserver = apiserver
        self.stack = stack
        self.name = name
        self.electors: dict[str, LeaderElector] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.events: dict[str, list[tuple[str, float]]] = {}

    async def start(
        self, identity: str, context: str | None = None, clock: Callable[[], float] = time.time
    ) -> LeaderElector:
        info = connection_from_kubeconfig(self.apiserver.kubeconfig, context)
        client = KubeClient(info)
        self.stack.push_async_callback(client.close)
        elector = LeaderElector(
            CountingLeases(client),
            name=self.name,
            namespace="default",
            identity=identity,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
            clock=clock,
        )
        events: list[tuple[str, float]] = []
        self.electors[identity] = elector
        self.events[identity] = events
        self.tasks[identity] = asyncio.create_task(
            elector.run(leading_noted(events), noting(events, "stopped"))
        )
        return elector

    def leaders(self) -> list[str]:
        return [i for i, e in self.electors.items() if e.is_leader]

    async def one_leader(self, deadline: float = 10.0) -> str:
        found = await eventually(
            lambda: self.leaders(), deadline=deadline, what="one candidate leads"
        )
        assert len(found) == 1, found
        return found[0]

    async def kill(self, identity: str) -> None:
        """As a kill -9 would leave it: the lease untouched, no release."""
        task = self.tasks[identity]
        task.cancel()
        await asyncio.wait([task])

    async def close(self) -> None:
        for elector in self.electors.values():
            await elector.release()
        await asyncio.wait(list(self.tasks.values()), timeout=5)


@pytest.fixture
async def candidates(apiserver: ApiServer) -> AsyncIterator[Candidates]:
    async with AsyncExitStack() as stack:
        group = Candidates(apiserver, stack, lease_name())
        try:
            yield group
        finally:
            await group.close()


async def renewals_seen(apiserver: ApiServer, name: str, count: int) -> None:
    """Wait until the lease's renewTime moved ``count`` times (the others tried meanwhile)."""
    times: set[str] = set()

    def moved() -> bool:
        times.add(apiserver.get_json("lease", name, "-n", "default")["spec"]["renewTime"])
        return len(times) > count

    await eventually(moved, deadline=count * RETRY + 5, interval=0.2, what="renewals")


async def test_two_candidates_exactly_one_leads(
    apiserver: ApiServer, candidates: Candidates
) -> None:
    await candidates.start("alpha")
    await candidates.start("beta", context="local-token")  # a bearer token works too
    leader = await candidates.one_leader()
    assert holder(apiserver, candidates.name) == leader
    await renewals_seen(apiserver, candidates.name, 3)
    assert candidates.leaders() == [leader]
    lease = apiserver.get_json("lease", candidates.name, "-n", "default")
    assert lease["spec"]["holderIdentity"] == leader
    assert lease["spec"]["leaseDurationSeconds"] == 4
    assert lease["spec"]["leaseTransitions"] == 0
    # MicroTime: RFC 3339, UTC, microseconds.
    assert lease["spec"]["renewTime"].endswith("Z") and len(lease["spec"]["renewTime"]) == 27


async def test_clock_skew_between_replicas_makes_no_second_leader(
    apiserver: ApiServer, candidates: Candidates
) -> None:
    # The leader's clock runs an hour behind: its renewTime looks an hour old to the standby,
    # which must still not take over while the lease is being renewed.
    await candidates.start("slow-clock", clock=lambda: time.time() - 3600)
    assert await candidates.one_leader() == "slow-clock"
    await candidates.start("true-clock")
    await renewals_seen(apiserver, candidates.name, int(LEASE) + 3)
    assert candidates.leaders() == ["slow-clock"]
    assert holder(apiserver, candidates.name) == "slow-clock"
    assert not any(w == "started" for w, _ in candidates.events["true-clock"])


async def test_abrupt_death_the_standby_leads_within_lease_duration(
    apiserver: ApiServer, candidates: Candidates
) -> None:
    await candidates.start("alpha")
    await candidates.start("beta")
    leader = await candidates.one_leader()
    standby = "beta" if leader == "alpha" else "alpha"
    await candidates.kill(leader)
    died = time.monotonic()
    await eventually(
        lambda: candidates.electors[standby].is_leader,
        deadline=LEASE + RETRY + MARGIN + 2,
        interval=0.01,
        what="the standby leads",
    )
    failover = time.monotonic() - died
    print(f"\nfailover after an abrupt death (in process): {failover:.2f}s")
    assert failover <= LEASE + RETRY + MARGIN
    # Not before the dead leader's lease could have expired on the standby's clock.
    assert failover >= LEASE - RETRY - 0.1
    lease = apiserver.get_json("lease", candidates.name, "-n", "default")
    assert lease["spec"]["holderIdentity"] == standby
    assert lease["spec"]["leaseTransitions"] == 1


async def test_release_the_standby_leads_within_retry_period(
    apiserver: ApiServer, candidates: Candidates
) -> None:
    await candidates.start("alpha")
    await candidates.start("beta")
    leader = await candidates.one_leader()
    standby = "beta" if leader == "alpha" else "alpha"
    released = time.monotonic()
    await candidates.electors[leader].release()
    await eventually(
        lambda: candidates.electors[standby].is_leader,
        deadline=RETRY + MARGIN,
        interval=0.01,
        what="the standby leads after the release",
    )
    handover = time.monotonic() - released
    print(f"\nhandover after release(): {handover:.2f}s")
    assert holder(apiserver, candidates.name) == standby
    await asyncio.wait_for(candidates.tasks[leader], 5)
    assert [what for what, _ in candidates.events[leader]] == ["started", "stopped"]


async def test_a_leader_that_loses_the_api_stops_after_renew_deadline(
    apiserver: ApiServer, candidates: Candidates
) -> None:
    elector = await candidates.start("alpha")
    await candidates.one_leader()
    api = elector.api
    assert isinstance(api, HttpLeaseApi)
    # Mid-run, its API server calls go to a closed port.
    closed = dataclasses.replace(
        connection_from_kubeconfig(apiserver.kubeconfig), server=f"https://127.0.0.1:{free_port()}"
    )
    live, dead = api.client, KubeClient(closed)
    try:
        renewed_before = time.monotonic()
        api.client = dead
        await asyncio.wait_for(candidates.tasks["alpha"], RENEW + 3)
    finally:
        api.client = live
        await dead.close()
    (_, _), (what, at) = candidates.events["alpha"]
    stopped_after = at - renewed_before
    print(f"\nleader without its API stopped after {stopped_after:.2f}s")
    assert what == "stopped" and not elector.is_leader
    # Its last renewal was at most one retry period before the switch.
    assert RENEW - RETRY - 0.1 <= stopped_after <= RENEW + 0.5
    # It stopped before anyone else could have taken over: the lease still names it.
    assert holder(apiserver, candidates.name) == "alpha"


async def test_five_candidates_race_and_exactly_one_leads(
    apiserver: ApiServer, candidates: Candidates
) -> None:
    CountingLeases.conflicts = 0
    await asyncio.gather(*(candidates.start(f"c{i}") for i in range(5)))
    leader = await candidates.one_leader()
    await renewals_seen(apiserver, candidates.name, 3)
    assert candidates.leaders() == [leader]
    # The race was real: the losers' creates were refused with 409 AlreadyExists.
    assert CountingLeases.conflicts >= 1, CountingLeases.conflicts
    print(f"\n409s refused in the race of five: {CountingLeases.conflicts}")
    # Nobody else ever started leading, not even for a moment.
    started = [i for i, ev in candidates.events.items() if any(w == "started" for w, _ in ev)]
    assert started == [leader]
    lease = apiserver.get_json("lease", candidates.name, "-n", "default")
    assert lease["spec"]["holderIdentity"] == leader
    assert lease["spec"]["leaseTransitions"] == 0


async def test_credentials_from_kopfs_login_lead_too(
    apiserver: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No path given: kopf's own login (service account, else $KUBECONFIG) finds the server.
    monkeypatch.setenv("KUBECONFIG", str(apiserver.kubeconfig))
    info = login()
    assert info.server == apiserver.url
    name = lease_name()
    client = KubeClient(info)
    try:
        elector = LeaderElector(HttpLeaseApi(client), name=name, namespace="default", identity="k")
        run = asyncio.create_task(elector.run(forever, noting([], "stopped")))
        await eventually(lambda: elector.is_leader, deadline=10, what="k leads")
        assert holder(apiserver, name) == "k"
        await elector.release()
        await asyncio.wait_for(run, 5)
    finally:
        await client.close()
    assert holder(apiserver, name) is None


async def test_a_refused_token_is_replaced_by_a_fresh_login(apiserver: ApiServer) -> None:
    # KubeClient's login-again on a 401 (a rotated service-account token) keeps a Lease going.
    good = connection_from_kubeconfig(apiserver.kubeconfig, "local-token")
    stale = dataclasses.replace(good, token="rotated-away-" + "0" * 20)
    logins: list[str] = []

    def relogin() -> kopf.ConnectionInfo:
        logins.append("again")
        return good

    name = lease_name()
    plain = KubeClient(stale)
    try:
        with pytest.raises(LeaseError, match="401"):
            await HttpLeaseApi(plain).get("default", name)
    finally:
        await plain.close()
    client = KubeClient(stale, relogin)
    try:
        api = HttpLeaseApi(client)
        elector = LeaderElector(api, name=name, namespace="default", identity="r")
        run = asyncio.create_task(elector.run(forever, noting([], "stopped")))
        await eventually(lambda: elector.is_leader, deadline=10, what="r leads")
        await elector.release()
        await asyncio.wait_for(run, 5)
    finally:
        await client.close()
    assert logins == ["again"]


# -- two OS processes, kill -9


def spawn(apiserver: ApiServer, name: str, identity: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.leader_candidate",
            str(apiserver.kubeconfig),
            name,
            identity,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill a candidate still running and close its pipe."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


class Lines:
    """Lines a candidate printed, read in a thread so that a check never blocks."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(
            target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True
        ).start()

    def at(self, word: str) -> float | None:
        """When the candidate printed ``word`` first (its Unix time), or None."""
        for line in list(self.lines):
            if line.split()[0] == word:
                return float(line.split()[1])
        return None


def test_kill_9_of_the_leader_process_the_standby_leads_within_seconds(
    apiserver: ApiServer,
) -> None:
    name = lease_name()
    procs: dict[str, subprocess.Popen[str]] = {}
    lines: dict[str, Lines] = {}
    figures: list[float] = []

    def start(identity: str) -> None:
        procs[identity] = spawn(apiserver, name, identity)
        lines[identity] = Lines(procs[identity])

    try:
        start("p0")
        poll_until(lambda: lines["p0"].at("leading"), deadline_s=20, what="p0 leads")
        for round_ in range(1, 4):
            leader, standby = f"p{round_ - 1}", f"p{round_}"
            start(standby)
            poll_until(
                lambda s=standby: lines[s].at("campaigning"),
                deadline_s=20,
                what=f"{standby} campaigns",
            )
            # The leader still holds the lease as the standby campaigns.
            poll_until(
                lambda s=leader: holder(apiserver, name) == s,
                deadline_s=5,
                what="held",
            )
            procs[leader].send_signal(signal.SIGKILL)
            killed = time.time()
            procs[leader].wait(10)
            took = (
                poll_until(
                    lambda s=standby: lines[s].at("leading"),
                    deadline_s=LEASE + RETRY + MARGIN + 5,
                    what=f"{standby} leads after kill -9 of {leader}",
                )
                - killed
            )
            figures.append(took)
            assert holder(apiserver, name) == standby
        print(
            f"\nfailover after kill -9 (two processes): {', '.join(f'{f:.2f}s' for f in figures)}"
        )
        assert all(f <= LEASE + RETRY + MARGIN for f in figures), figures
        lease = apiserver.get_json("lease", name, "-n", "default")
        assert lease["spec"]["leaseTransitions"] == 3
    finally:
        for proc in procs.values():
            stop(proc)


def test_sigterm_releases_and_the_standby_leads_within_retry_period(apiserver: ApiServer) -> None:
    name = lease_name()
    a = spawn(apiserver, name, "a")
    la = Lines(a)
    b: subprocess.Popen[str] | None = None
    try:
        poll_until(lambda: la.at("leading"), deadline_s=20, what="a leads")
        b = spawn(apiserver, name, "b")
        lb = Lines(b)
        poll_until(
            lambda: lb.at("campaigning"),
            deadline_s=20,
            what="b campaigns",
        )
        a.send_signal(signal.SIGTERM)
        termed = time.time()
        took = (
            poll_until(lambda: lb.at("leading"), deadline_s=RETRY + MARGIN + 2, what="b leads")
            - termed
        )
        print(f"\nhandover after SIGTERM (release): {took:.2f}s")
        assert took <= RETRY + MARGIN
        assert a.wait(10) == 0
        assert la.at("stopped")
    finally:
        for proc in (a, b):
            if proc is not None:
                stop(proc)
