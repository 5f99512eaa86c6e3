"""Fault injectors: make the app sick on purpose, so driftmend has something to heal.

Mounted only when ``SHOP_CHAOS=1``. Each fault runs in a daemon thread, ends by itself after
its duration, and stops at once on :meth:`Chaos.stop` (or when the app shuts down).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("shop.chaos")

_MB = 1024 * 1024
# The leak grows in small steps so that resident memory rises steadily, as a real leak
# does, rather than in one jump an observer could mistake for a single large request.
_LEAK_STEP_SECONDS = 0.1


class Chaos:
    """The running fault injectors of one app process."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._leaked: list[bytes] = []
        self._lock = threading.Lock()

    @property
    def leaked_mb(self) -> float:
        """Megabytes the memory leak holds right now."""
        with self._lock:
            return sum(len(chunk) for chunk in self._leaked) / _MB

    @property
    def active(self) -> list[str]:
        """Names of the faults still running."""
        with self._lock:
            return [t.name for t in self._threads if t.is_alive()]

    def cpu_burn(self, seconds: float, threads: int = 1) -> None:
        """Keep ``threads`` CPU cores busy for ``seconds``."""
        self._stop.clear()
        for index in range(threads):
            self._start(f"cpu-burn-{index}", self._burn, seconds)
        log.warning("chaos: burning %d CPU thread(s) for %.1f s", threads, seconds)

    def memory_leak(self, mb_per_second: float, seconds: float) -> None:
        """Grow resident memory by ``mb_per_second`` for ``seconds``, and keep it."""
        self._stop.clear()
        self._start("memory-leak", self._leak, mb_per_second, seconds)
        log.warning("chaos: leaking %.1f MB/s for %.1f s", mb_per_second, seconds)

    def stop(self, join_timeout: float = 2.0) -> None:
        """Stop every fault and release the leaked memory."""
        self._stop.set()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(join_timeout)
        with self._lock:
            released = sum(len(chunk) for chunk in self._leaked) / _MB
            self._leaked.clear()
        log.warning("chaos: stopped %d fault thread(s), released %.1f MB", len(threads), released)

    def _start(self, name: str, target: Callable[..., None], *args: float) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _burn(self, seconds: float) -> None:
        # hashlib releases the GIL while it hashes a large buffer, so the burn really uses
        # a core per thread and the event loop keeps answering (slowly), as a real CPU hog
        # in a native extension would. A pure-Python loop would mostly starve the loop.
        block = b"\x5a" * _MB
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stop.is_set():
            hashlib.sha256(block).digest()

    def _leak(self, mb_per_second: float, seconds: float) -> None:
        step = int(mb_per_second * _MB * _LEAK_STEP_SECONDS)
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stop.is_set():
            # Multiplying a bytes object writes every byte, so the pages become resident;
            # bytes(n) or bytearray(n) could stay untouched zero pages that RSS never counts.
            chunk = b"\xa5" * step
            with self._lock:
                self._leaked.append(chunk)
            self._stop.wait(_LEAK_STEP_SECONDS)
