"""Real PostgreSQL and Redis servers for the tests, each on a free port in a temporary directory.

Nothing here is a fake: the servers are Debian's own binaries, started by the test that needs
them and stopped when it ends. PostgreSQL refuses to run as root, so as root it runs as the
``postgres`` user (the process runtime's ``user`` field exists for the same reason).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll_until(
    check: Callable[[], T | None], *, deadline_s: float, what: str, interval: float = 0.05
) -> T:
    """Block until ``check()`` returns something truthy, and return it; ``TimeoutError``
    naming ``what`` after ``deadline_s`` seconds. The synchronous twin of ``eventually``."""
    end = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise TimeoutError(f"after {deadline_s}s: {what}")
        time.sleep(interval)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def wait_for_port(port: int, deadline_s: float = 20.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port, or fail."""
    poll_until(
        lambda: _accepts(port), deadline_s=deadline_s, what=f"nothing listens on 127.0.0.1:{port}"
    )


def pg_bin_dir() -> Path:
    """Debian keeps PostgreSQL's server binaries off PATH, under a versioned directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL is not installed: run `make test`, which installs it")


def _demote_kwargs() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres"}


@dataclass
class PostgresServer:
    """One PostgreSQL server that a test owns."""

    port: int
    datadir: Path
    max_connections: int = 30
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls, max_connections: int = 30) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="driftmend-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
        datadir = root / "data"
        subprocess.run(
            [str(pg_bin_dir() / "initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
            **_demote_kwargs(),  # type: ignore[call-overload]
        )
        return cls(port=free_port(), datadir=datadir, max_connections=max_connections)

    def command(self) -> list[str]:
        """The command line that runs this server in the foreground."""
        return [
            str(pg_bin_dir() / "postgres"),
            "-D", str(self.datadir),
            "-p", str(self.port),
            "-k", str(self.datadir),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"max_connections={self.max_connections}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
        ]  # fmt: skip

    def start(self) -> None:
        self.stop()  # never leave a running server behind an overwritten handle
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_demote_kwargs(),  # type: ignore[call-overload]
        )
        wait_for_port(self.port)
        self._wait_ready()

    def _wait_ready(self, deadline_s: float = 20.0) -> None:
        import psycopg

        def answers() -> bool:
            try:
                with psycopg.connect(self.dsn, connect_timeout=1) as conn:
                    conn.execute("select 1")
            except psycopg.OperationalError:
                return False
            return True

        poll_until(
            answers, deadline_s=deadline_s, what=f"PostgreSQL on port {self.port} answers queries"
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


@dataclass
class RedisServer:
    """One Redis server that a test owns."""

    port: int
    workdir: Path
    maxmemory: str = "16mb"
    policy: str = "noeviction"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def create(cls, maxmemory: str = "16mb", policy: str = "noeviction") -> RedisServer:
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        workdir = Path(tempfile.mkdtemp(prefix="driftmend-redis-"))
        return cls(port=free_port(), workdir=workdir, maxmemory=maxmemory, policy=policy)

    def command(self) -> list[str]:
        """The command line that runs this server in the foreground."""
        return [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", self.policy,
        ]  # fmt: skip

    def start(self) -> None:
        self.stop()  # never leave a running server behind an overwritten handle
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(max_connections: int = 30) -> Iterator[PostgresServer]:
    """A started PostgreSQL server, destroyed on exit."""
    server = PostgresServer.create(max_connections=max_connections)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def running_redis(maxmemory: str = "16mb", policy: str = "noeviction") -> Iterator[RedisServer]:
    """A started Redis server, destroyed on exit."""
    server = RedisServer.create(maxmemory=maxmemory, policy=policy)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
