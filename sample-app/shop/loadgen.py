"""A load generator for the shop: shoppers who browse, fill a cart and check out.

``python -m shop.loadgen --url http://127.0.0.1:8000 --rps 10 --duration 30`` sends at most
``rps * duration`` requests, spread evenly over ``duration`` seconds, then prints one line of
JSON: requests, errors, counts by status, p50/p95 latency. It always stops by itself.

The traffic is a mix of journeys, each request of which takes one slot of the rate:

- browsers (60 %): list the products, look at one to three of them;
- buyers (40 %): list, create a session, add one to three products, view the cart,
  place the order, read it back.

A 4xx counts as an error too: the mix only asks for things that exist, so one means the
shop misbehaved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2

BROWSER_SHARE = 0.6
# How long one request may take; the run's hard deadline is duration plus this much.
REQUEST_TIMEOUT_SECONDS = 5.0


class OutOfSlotsError(Exception):
    """The run has used all its requests or all its time: the journey ends here."""


@dataclass
class _Pacer:
    """Hands out request slots at a fixed rate, up to a fixed count, until a fixed time."""

    rps: float
    limit: int
    start: float
    end: float
    issued: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def slot(self) -> None:
        """Wait for the next slot; raise OutOfSlotsError when there are no more."""
        async with self.lock:
            if self.issued >= self.limit:
                raise OutOfSlotsError
            at = self.start + self.issued / self.rps
            if at >= self.end:
                raise OutOfSlotsError
            self.issued += 1
        await asyncio.sleep(max(0.0, at - time.monotonic()))


@dataclass
class _Tally:
    """What the run saw: every status (or exception name) and every latency."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def record(self, outcome: str, seconds: float, ok: bool) -> None:
        self.statuses[outcome] += 1
        self.latencies.append(seconds)
        if not ok:
            self.errors += 1


class _Shopper:
    """One worker: runs journeys back to back until the pacer runs out of slots."""

    def __init__(
        self, client: httpx2.AsyncClient, pacer: _Pacer, tally: _Tally, rng: random.Random
    ) -> None:
        self.client = client
        self.pacer = pacer
        self.tally = tally
        self.rng = rng

    async def run(self) -> None:
        """Shop until the run is out of requests or time."""
        with contextlib.suppress(OutOfSlotsError):
            while True:
                await self.journey()

    async def journey(self) -> None:
        """One visit: browse only, or browse, fill a cart and check out."""
        products = await self.call("GET", "/products")
        if not isinstance(products, list) or not products:
            return
        ids = [p["id"] for p in products]
        if self.rng.random() < BROWSER_SHARE:
            for pid in self.rng.sample(ids, k=min(len(ids), self.rng.randint(1, 3))):
                await self.call("GET", f"/products/{pid}")
            return
        created = await self.call("POST", "/sessions")
        if not isinstance(created, dict):
            return
        session = created["session"]
        for pid in self.rng.sample(ids, k=min(len(ids), self.rng.randint(1, 3))):
            item = {"product_id": pid, "quantity": self.rng.randint(1, 3)}
            if await self.call("POST", f"/cart/{session}/items", json=item) is None:
                return
        await self.call("GET", f"/cart/{session}")
        order = await self.call("POST", "/orders", json={"session": session})
        if isinstance(order, dict):
            await self.call("GET", f"/orders/{order['id']}")

    async def call(self, method: str, path: str, json: Any = None) -> Any:
        """One request in its slot; the decoded body on success, None on any failure."""
        await self.pacer.slot()
        started = time.monotonic()
        try:
            response = await self.client.request(method, path, json=json)
        except httpx2.HTTPError as exc:
            self.tally.record(type(exc).__name__, time.monotonic() - started, ok=False)
            return None
        ok = response.status_code < 400
        self.tally.record(str(response.status_code), time.monotonic() - started, ok=ok)
        if not ok:
            return None
        try:
            return response.json()
        except ValueError:
            return None


def _percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


async def run_load(
    url: str, rps: float, duration: float, concurrency: int = 10, seed: int | None = None
) -> dict[str, Any]:
    """Drive the shop at ``url`` with ``rps`` requests per second for ``duration`` seconds.

    At most ``ceil(rps * duration)`` requests are sent, by ``concurrency`` shoppers sharing
    one rate; the run ends after ``duration`` plus at most one request timeout.

    Returns:
        ``requests``, ``errors``, ``status`` (count per status code or exception name),
        ``p50_ms``, ``p95_ms``, ``duration_s`` and ``achieved_rps``.
    """
    if rps <= 0 or duration <= 0 or concurrency < 1:
        raise ValueError("rps and duration must be positive, concurrency at least 1")
    start = time.monotonic()
    pacer = _Pacer(rps=rps, limit=math.ceil(rps * duration), start=start, end=start + duration)
    tally = _Tally()
    rng = random.Random(seed)
    timeout = httpx2.Timeout(REQUEST_TIMEOUT_SECONDS)
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        shoppers = [
            _Shopper(client, pacer, tally, random.Random(rng.random())) for _ in range(concurrency)
        ]
        # The pacer stops handing out slots at `duration`; this deadline only guards
        # against a request that outlives its own timeout.
        async with asyncio.timeout(duration + REQUEST_TIMEOUT_SECONDS + 1.0):
            await asyncio.gather(*(shopper.run() for shopper in shoppers))
    elapsed = time.monotonic() - start
    latencies = sorted(tally.latencies)
    requests = len(latencies)
    return {
        "requests": requests,
        "errors": tally.errors,
        "status": dict(sorted(tally.statuses.items())),
        "p50_ms": round(_percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(_percentile(latencies, 95) * 1000, 1),
        "duration_s": round(elapsed, 2),
        "achieved_rps": round(requests / elapsed, 1) if elapsed > 0 else 0.0,
    }


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m shop.loadgen", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the shop's base URL")
    parser.add_argument("--rps", type=float, default=10.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    parser.add_argument("--concurrency", type=int, default=10, help="concurrent shoppers")
    parser.add_argument("--seed", type=int, default=None, help="seed for a repeatable mix")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load and print its summary as one JSON line; exit 1 if any request failed."""
    args = _parse(argv)
    summary = asyncio.run(run_load(args.url, args.rps, args.duration, args.concurrency, args.seed))
    print(json.dumps(summary, separators=(",", ":")), flush=True)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
