"""One leader-election candidate as its own OS process, for the kill -9 failover test.

``python -m tests.integration.leader_candidate KUBECONFIG LEASE IDENTITY`` campaigns for the
Lease ``default/LEASE`` with the default timings and prints ``leading <unix time>`` the moment
it leads, ``stopped <unix time>``
(and ``campaigning <unix time>`` at start) when it stops leading; SIGTERM releases the lease.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from driftmend.kube.client import KubeClient
from driftmend.kube.kubeconfig import connection_from_kubeconfig
from driftmend.leader import HttpLeaseApi, LeaderElector


async def main(kubeconfig: Path, lease: str, identity: str) -> None:
    client = KubeClient(connection_from_kubeconfig(kubeconfig))
    try:
        elector = LeaderElector(
            HttpLeaseApi(client), name=lease, namespace="default", identity=identity
        )

        async def started() -> None:
            print(f"leading {time.time():.6f}", flush=True)

        async def stopped() -> None:
            print(f"stopped {time.time():.6f}", flush=True)

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(elector.release()))
        print(f"campaigning {time.time():.6f}", flush=True)
        await elector.run(started, stopped)
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
