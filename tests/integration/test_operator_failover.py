"""Leader failover on the real API server: kill -9 of the leader while a fix is in flight.

Two real ``driftmend operator`` replicas compete for the Lease and share one PostgreSQL store.
The standby takes the Lease within seconds, resumes the dead leader's fix on the same row
from its step journal, and closes it: the restart the old leader ran is not run again (the
app's own start count says so), and no second fix is made for the same drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.failover import FailoverRig
from tests.k8s import ApiServer
from tests.services import PostgresServer, poll_until
from tests.unit.conftest import drop_database, fresh_database

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rig(
    apiserver: ApiServer, postgres_server: PostgresServer, tmp_path: Path
) -> Iterator[FailoverRig]:
    apiserver.kubectl("apply", "-f", str(REPO / "crds"))
    apiserver.kubectl(
        "wait", "--for", "condition=established", "--timeout=60s", "-f", str(REPO / "crds")
    )
    name, dsn = fresh_database(postgres_server)
    rig = FailoverRig(apiserver, tmp_path, dsn, namespace="e2e-failover")
    rig.setup()
    try:
        yield rig
    finally:
        rig.stop()
        drop_database(postgres_server, name)


def test_the_standby_finishes_the_dead_leaders_fix_and_runs_no_step_twice(rig: FailoverRig) -> None:
    rig.start("replica-a")
    rig.start("replica-b")
    leader = rig.leader()
    standby = next(op for op in rig.replicas.values() if op is not leader)
    assert "acting:" not in standby.output()  # one acts, the other stands by
    poll_until(lambda: rig.starts() == 1, deadline_s=20, what="the leader to start the app")

    result = rig.failover()

    assert result.lead_s < 10, result  # lease 4s + retry 1s, with room for a loaded machine
    assert result.outcome == "fixed"
    assert result.steps == [(0, "container_restart", "ok")]  # one row, run once
    assert result.starts == 1  # the restart the dead leader ran, and nothing more
    assert [f.id for f in rig.fixes()] == [result.fix_id]  # no second fix for the drift
    fix = rig.fix(result.fix_id)
    assert fix.message.startswith("resumed after the controller that began it stopped")
    new_leader = rig.leader()
    assert new_leader is standby
    assert "resuming fix" in new_leader.output()
