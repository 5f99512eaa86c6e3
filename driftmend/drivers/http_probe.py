"""One HTTP health probe, as both runtimes send it.

Stage: *observe*. A replica's health is what its own HTTP endpoint answers on 127.0.0.1;
the process and Docker runtimes run their probe loops around this one request.
"""

from __future__ import annotations

import time

import httpx2

# How often a replica that has not passed a probe yet is probed (never slower than its
# interval): fast enough that a restart's recovery is seen within tens of milliseconds,
# slow enough that a refused connection every 50 ms costs nothing.
STARTUP_POLL = 0.05


def until_next_probe(interval: float, began: float, *, starting: bool) -> float:
    """Seconds to wait before the next probe of a loop whose last probe began at ``began``
    (``time.monotonic``): the interval runs from start to start (Kubernetes'
    ``periodSeconds``), so a probe that times out does not stretch the declared window;
    ``STARTUP_POLL`` while the replica has not passed its first probe."""
    period = min(interval, STARTUP_POLL) if starting else interval
    return max(0.0, period - (time.monotonic() - began))


async def probe_once(client: httpx2.AsyncClient, url: str) -> bool:
    """One GET: 2xx and 3xx pass; an error status, a refused connection or a timeout fails."""
    try:
        response = await client.get(url)
    except (httpx2.HTTPError, httpx2.InvalidURL, OSError):
        return False
    return response.status_code < 400
