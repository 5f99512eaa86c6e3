"""Leader failovers with a fix in flight: how soon does the standby act, and does any step run twice?

Run by hand (not a test): ``.venv/bin/python -m bench.operator_failover --trials 20``.
Needs the real API server of ``../shared/k8s`` (see tests/k8s.py) and Debian's PostgreSQL.

Two ``driftmend operator`` replicas compete for one Lease and share one PostgreSQL store
(tests/integration/failover.py). Each trial makes the app sick, waits until the leader's
restart has run and its verification waits, kill -9s the leader, and measures the seconds
until the standby holds the Lease and until it has resumed the fix; then the app gets well,
the fix must close ``fixed`` with its one step run once (the app's own start count), and the
killed replica comes back as the new standby. Prints one JSON line per trial and a summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from tests.integration.failover import FailoverRig
from tests.k8s import start_apiserver
from tests.services import running_postgres

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the trials; exit 1 when any trial ran a step twice or did not end fixed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args(argv)
    api_servers = start_apiserver()
    api = next(api_servers)
    try:
        api.kubectl("apply", "-f", str(REPO / "crds"))
        api.kubectl(
            "wait", "--for", "condition=established", "--timeout=60s", "-f", str(REPO / "crds")
        )
        with running_postgres() as pg, tempfile.TemporaryDirectory() as tmp:
            rig = FailoverRig(api, Path(tmp), pg.dsn, namespace="bench-failover")
            rig.setup()
            rig.start("replica-a")
            rig.start("replica-b")
            rig.leader()
            results = []
            try:
                for n in range(args.trials):
                    result = rig.failover()
                    row = {"trial": n, **result.__dict__}
                    print(json.dumps(row), flush=True)
                    results.append(result)
            finally:
                rig.stop()
    finally:
        api_servers.close()
    duplicated = sum(1 for r in results if r.starts != 1 or len(r.steps) != 1)
    not_fixed = sum(1 for r in results if r.outcome != "fixed")
    lead = sorted(r.lead_s for r in results)
    resume = sorted(r.resume_s for r in results)
    summary = {
        "trials": len(results),
        "duplicated_steps": duplicated,
        "not_fixed": not_fixed,
        "lead_s": {"min": lead[0], "median": statistics.median(lead), "max": lead[-1]},
        "resume_s": {"min": resume[0], "median": statistics.median(resume), "max": resume[-1]},
    }
    print(json.dumps(summary, indent=2))
    return 1 if duplicated or not_fixed else 0


if __name__ == "__main__":
    sys.exit(main())
