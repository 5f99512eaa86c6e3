"""One HTTP health probe, as both runtimes send it.

Stage: *observe*. A replica's health is what its own HTTP endpoint answers on 127.0.0.1;
the process and Docker runtimes run their probe loops around this one request.
"""

from __future__ import annotations

import httpx2


async def probe_once(client: httpx2.AsyncClient, url: str) -> bool:
    """One GET: 2xx and 3xx pass; an error status, a refused connection or a timeout fails."""
    try:
        response = await client.get(url)
    except (httpx2.HTTPError, httpx2.InvalidURL, OSError):
        return False
    return response.status_code < 400
