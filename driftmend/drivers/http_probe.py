"""One HTTP health probe, as both runtimes send it.

Stage: *observe*. A replica's health is what its own HTTP endpoint answers on 127.0.0.1;
the process and Docker runtimes run their probe loops around this one request.
"""

from __future__ import annotations

import httpx


async def probe_once(client: httpx.AsyncClient, url: str) -> bool:
    """One GET: 2xx and 3xx pass; an error status, a refused connection or a timeout fails."""
    try:
        response = await client.get(url)
    except (httpx.HTTPError, httpx.InvalidURL, OSError):
        return False
    return response.status_code < 400
