"""The sample app (``sample-app/shop``) as driftmend meets it: a real process on real servers.

Each test starts ``python -m shop`` as a subprocess against its own PostgreSQL and Redis, on
a free port, and talks to it over HTTP; breaking a server is done to the server itself
(stop PostgreSQL, fill Redis), never by mocking. Every wait is a poll with a deadline.
Also here: the load generator, and ``stack/postgres.sh``, the demo database's launcher.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx2
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.services import PostgresServer, RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.integration

SAMPLE_APP = Path(__file__).resolve().parents[2] / "sample-app"
POSTGRES_SH = SAMPLE_APP / "stack" / "postgres.sh"
# The interpreter running the tests is the project's venv: the app runs on the same one.
PYTHON = sys.executable

# The contract with the controller's log accumulator: one event per line, UTC with
# milliseconds and Z, one of the five standard levels, the app name, then the message.
LOG_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) shop \S.*$"
)

T = TypeVar("T")


def poll(probe: Callable[[], T | None], deadline_s: float, what: str, every: float = 0.1) -> T:
    """Call ``probe`` until it returns something other than None or False; fail at the deadline."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while True:
        try:
            result = probe()
        except (httpx2.TransportError, OSError) as exc:
            last = exc
        else:
            if result is not None and result is not False:
                return result
            last = result
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline_s}s (last: {last!r})")
        time.sleep(every)


@dataclass
class ShopProcess:
    """One running ``python -m shop``, its port and its stdout log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx2.Client:
        return httpx2.Client(base_url=self.url, timeout=10.0)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def health(self) -> tuple[int, dict[str, Any]]:
        response = httpx2.get(f"{self.url}/healthz", timeout=5.0)
        return response.status_code, response.json()

    def wait_healthy(self, deadline_s: float = 30.0) -> dict[str, Any]:
        def healthy() -> dict[str, Any] | None:
            self.assert_alive()
            status, body = self.health()
            return body if status == 200 else None

        return poll(healthy, deadline_s, "shop /healthz 200")

    def wait_unhealthy(self, failed: str, deadline_s: float = 20.0) -> dict[str, Any]:
        """Wait for a 503 from /healthz naming ``failed``; return its body."""

        def broken() -> dict[str, Any] | None:
            status, body = self.health()
            return body if status == 503 and failed in body.get("failed", []) else None

        return poll(broken, deadline_s, f"shop /healthz 503 naming {failed}")

    def assert_alive(self) -> None:
        code = self.proc.poll()
        assert code is None, f"shop exited with {code}:\n" + "\n".join(self.log_lines()[-30:])

    def stop(self, sig: int = signal.SIGTERM, deadline_s: float = 15.0) -> int:
        """Signal the app, wait for it to exit (killing it past the deadline); its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(deadline_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log_file.close()
        return self.proc.returncode


StartShop = Callable[..., ShopProcess]


@pytest.fixture
def start_shop(tmp_path: Path) -> Iterator[StartShop]:
    """Start ``python -m shop`` processes on free ports; every one is stopped at the end."""
    started: list[ShopProcess] = []

    def start(postgres: PostgresServer, cache: RedisServer, **env: str) -> ShopProcess:
        port = free_port()
        log_path = tmp_path / f"shop-{port}.log"
        log_file = log_path.open("wb")
        environ = {
            **os.environ,
            "SHOP_HOST": "127.0.0.1",
            "SHOP_PORT": str(port),
            "SHOP_DATABASE_URL": postgres.dsn,
            "SHOP_REDIS_URL": cache.url,
            **env,
        }
        proc = subprocess.Popen(
            [PYTHON, "-m", "shop"],
            cwd=SAMPLE_APP,
            env=environ,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        shop = ShopProcess(proc=proc, port=port, log_path=log_path, log_file=log_file)
        started.append(shop)
        return shop

    yield start
    for shop in started:
        shop.stop()


@pytest.fixture
def shop(
    start_shop: StartShop, own_postgres: PostgresServer, own_redis: RedisServer
) -> ShopProcess:
    """A healthy shop on this test's own PostgreSQL and Redis."""
    running = start_shop(own_postgres, own_redis)
    running.wait_healthy()
    return running


def _sample(families: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(families):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in /metrics")


def test_browse_cart_order_round_trip(shop: ShopProcess) -> None:
    with shop.client() as http:
        products = http.get("/products").json()
        assert len(products) == 20
        mug, cap = products[0], products[2]
        assert http.get(f"/products/{cap['id']}").json() == cap
        assert http.get("/products/999999").status_code == 404

        created = http.post("/sessions")
        assert created.status_code == 201
        session = created.json()["session"]
        for item in ({"product_id": mug["id"], "quantity": 2}, {"product_id": cap["id"]}):
            assert http.post(f"/cart/{session}/items", json=item).status_code == 201
        cart = http.get(f"/cart/{session}").json()
        assert cart["items"] == [
            {"product_id": mug["id"], "quantity": 2},
            {"product_id": cap["id"], "quantity": 1},
        ]
        missing = http.post(f"/cart/{session}/items", json={"product_id": 999999})
        assert missing.status_code == 404

        placed = http.post("/orders", json={"session": session})
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert order["total_cents"] == 2 * mug["price_cents"] + cap["price_cents"]
        assert http.get(f"/orders/{order['id']}").json() == order
        assert http.get(f"/cart/{session}").json()["items"] == []
        # The cart was emptied by the order: a second checkout has nothing to sell.
        assert http.post("/orders", json={"session": session}).status_code == 409
        assert http.get("/cart/" + "0" * 32).status_code == 404


def test_healthz_names_postgres_while_it_is_down_and_recovers(
    shop: ShopProcess, own_postgres: PostgresServer
) -> None:
    assert shop.health() == (200, {"status": "ok", "postgres": "ok", "redis": "ok"})

    own_postgres.stop()
    body = shop.wait_unhealthy("postgres")
    assert body["failed"] == ["postgres"]
    assert body["postgres"].startswith("error: ") and body["redis"] == "ok"
    with shop.client() as http:
        failing = http.get("/products")
    assert failing.status_code == 503
    assert failing.json()["detail"].startswith("postgres: ")
    poll(
        lambda: any(" ERROR shop GET /products failed: postgres: " in x for x in shop.log_lines()),
        5.0,
        "an ERROR log line for the failed request",
    )

    own_postgres.start()
    shop.wait_healthy(deadline_s=20.0)
    with shop.client() as http:
        assert len(http.get("/products").json()) == 20


def test_starts_without_postgres_and_creates_the_schema_when_it_comes(
    start_shop: StartShop, own_postgres: PostgresServer, own_redis: RedisServer
) -> None:
    own_postgres.stop()
    running = start_shop(own_postgres, own_redis)
    body = running.wait_unhealthy("postgres", deadline_s=30.0)
    assert body["failed"] == ["postgres"]
    running.assert_alive()

    own_postgres.start()
    running.wait_healthy()
    with running.client() as http:
        assert len(http.get("/products").json()) == 20


def _fill_until_refused(cache: redis.Redis) -> int:
    """Write ballast until Redis refuses even a tiny write for lack of memory; bytes written.

    Redis counts the query buffer of the command it is admitting, so a big SET is refused
    while there is still room for small ones: "full" for 1 MB values is not full for the
    shop's 60-byte writes. Big values fill it fast, then ever smaller ones close the gap.
    """
    written = 0
    for size in (1024 * 1024, 64 * 1024, 4 * 1024, 256, 16):
        for _ in range(4096):
            try:
                cache.set(f"ballast:{uuid.uuid4().hex}", b"x" * size)
            except redis.exceptions.OutOfMemoryError:
                break  # "OOM command not allowed when used memory > 'maxmemory'"
            written += size
        else:
            raise AssertionError(f"Redis never refused {size}-byte values with maxmemory 16mb")
    return written


def test_healthz_names_redis_when_it_is_full(shop: ShopProcess, own_redis: RedisServer) -> None:
    # own_redis runs with maxmemory 16mb and noeviction: once full, every write is refused
    # while reads and PING still work, so only the health check's SET can notice.
    with redis.Redis.from_url(own_redis.url) as cache:
        assert _fill_until_refused(cache) > 8 * 1024 * 1024

        def refused(probe: Callable[[], httpx2.Response]) -> Callable[[], httpx2.Response | None]:
            def attempt() -> httpx2.Response | None:
                # Redis frees a few bytes now and then (idle clients' query buffers are
                # shrunk, keys expire): top it up first so "full" still holds.
                _fill_until_refused(cache)
                response = probe()
                return response if response.status_code == 503 else None

            return attempt

        with shop.client() as http:
            health = poll(refused(lambda: http.get("/healthz")), 20.0, "/healthz 503, Redis full")
            body = health.json()
            assert body["failed"] == ["redis"] and body["postgres"] == "ok"
            assert "OutOfMemoryError" in body["redis"] and "maxmemory" in body["redis"]

            session = poll(refused(lambda: http.post("/sessions")), 20.0, "a session refused")
            assert session.json()["detail"].startswith("redis: ")
        poll(
            lambda: any(
                " ERROR shop POST /sessions failed: redis: " in x for x in shop.log_lines()
            ),
            5.0,
            "an ERROR log line for the refused request",
        )

        cache.flushdb()
    shop.wait_healthy(deadline_s=10.0)


def test_metrics_count_requests_and_show_the_pool(
    start_shop: StartShop, own_postgres: PostgresServer, own_redis: RedisServer
) -> None:
    running = start_shop(own_postgres, own_redis, SHOP_DB_POOL_SIZE="3")
    running.wait_healthy()
    with running.client() as http:
        for _ in range(3):
            assert http.get("/products").status_code == 200
        assert http.get("/products/999999").status_code == 404
        exposition = http.get("/metrics")
    assert exposition.status_code == 200
    assert exposition.headers["content-type"].startswith("text/plain")
    text = exposition.text
    labels = {"method": "GET", "route": "/products", "status": "200"}
    assert _sample(text, "shop_http_requests_total", **labels) == 3
    # Routes are counted by template, so ids do not each make a series.
    by_id = {"method": "GET", "route": "/products/{product_id}", "status": "404"}
    assert _sample(text, "shop_http_requests_total", **by_id) == 1
    assert _sample(text, "shop_http_request_duration_seconds_count", route="/products") == 3
    assert _sample(text, "shop_db_pool_size") == 3
    assert _sample(text, "shop_db_pool_connections_in_use") == 0
    assert 0 <= _sample(text, "shop_db_pool_connections_open") <= 3


def test_logs_are_one_line_events_and_sigterm_stops_cleanly(shop: ShopProcess) -> None:
    with shop.client() as http:
        http.get("/products")
        http.get("/nowhere")
    assert shop.stop(signal.SIGTERM) == 0

    lines = shop.log_lines()
    assert lines, "the shop wrote no log"
    malformed = [line for line in lines if not LOG_LINE.match(line)]
    assert not malformed, f"lines not in the accumulator's format: {malformed}"
    # uvicorn's own access and lifecycle logs come out in the same format.
    assert any('"GET /products HTTP/1.1" 200' in line for line in lines)
    assert any(" INFO shop Application startup complete." in line for line in lines)
    assert any(line.endswith(" INFO shop shop stopped") for line in lines)


async def test_load_generator_runs_without_errors(
    shop: ShopProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(SAMPLE_APP))
    from shop.loadgen import run_load

    started = time.monotonic()
    summary = await run_load(shop.url, rps=20, duration=3, concurrency=5, seed=7)
    elapsed = time.monotonic() - started

    assert summary["errors"] == 0, summary
    # Bounded in count and time: rps * duration requests at most, spread over the duration.
    assert 50 <= summary["requests"] <= 60, summary
    assert elapsed < 3 + 2.0, summary
    # The mix reaches every step of a purchase.
    assert set(summary["status"]) == {"200", "201"}
    assert summary["p95_ms"] >= summary["p50_ms"] > 0

    # The command line: same run, one JSON line on stdout, exit 0 when nothing failed.
    cli = await asyncio.create_subprocess_exec(
        *(PYTHON, "-m", "shop.loadgen", "--url", shop.url, "--rps", "10", "--duration", "1"),
        cwd=SAMPLE_APP,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await cli.communicate()
    assert cli.returncode == 0, err.decode()
    line = out.decode()
    assert line.count("\n") == 1 and json.loads(line)["errors"] == 0


def test_chaos_endpoints_do_not_exist_when_chaos_is_off(shop: ShopProcess) -> None:
    with shop.client() as http:
        assert http.post("/chaos/cpu-burn", json={"seconds": 1}).status_code == 404
        leak = {"mb_per_second": 1, "seconds": 1}
        assert http.post("/chaos/memory-leak", json=leak).status_code == 404
        assert http.post("/chaos/stop").status_code == 404


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    # Fields 14 and 15 of /proc/<pid>/stat (utime, stime), after the parenthesised name.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_chaos_endpoints_make_the_app_sick_when_on(
    start_shop: StartShop, own_postgres: PostgresServer, own_redis: RedisServer
) -> None:
    running = start_shop(own_postgres, own_redis, SHOP_CHAOS="1")
    running.wait_healthy()
    pid = running.proc.pid
    with running.client() as http:
        rss_before = _rss_mb(pid)
        leak = http.post("/chaos/memory-leak", json={"mb_per_second": 40, "seconds": 2})
        assert leak.status_code == 202
        poll(lambda: _rss_mb(pid) >= rss_before + 40, 10.0, "resident memory up by 40 MB")

        cpu_before = _cpu_seconds(pid)
        assert http.post("/chaos/cpu-burn", json={"seconds": 5}).status_code == 202
        poll(lambda: _cpu_seconds(pid) >= cpu_before + 1.0, 10.0, "one CPU second burnt")
        # The burn hogs a core, not the event loop: the app still answers its probe.
        assert running.health()[0] == 200

        stopped = http.post("/chaos/stop")
        assert stopped.status_code == 200
        assert stopped.json()["released_mb"] >= 40
        burnt = _cpu_seconds(pid)
        time.sleep(0.5)  # a window to measure in, not a wait for a condition
        assert _cpu_seconds(pid) - burnt < 0.4, "the CPU burn kept going after /chaos/stop"
        assert http.post("/chaos/cpu-burn", json={"seconds": -1}).status_code == 422


def _demoted() -> dict[str, Any]:
    # PostgreSQL refuses to run as root; the process runtime runs the script as `postgres`.
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def test_postgres_launcher_lets_alter_system_max_connections_win() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="driftmend-pgsh-"))
    # The checkout may sit where postgres cannot enter (under /root): like the runtime, run
    # a copy of the launcher from where it can.
    bin_dir = Path(tempfile.mkdtemp(prefix="driftmend-pgsh-bin-"))
    os.chmod(bin_dir, 0o755)
    launcher = bin_dir / POSTGRES_SH.name
    shutil.copy2(POSTGRES_SH, launcher)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(state_dir, pw.pw_uid, pw.pw_gid)
    port = free_port()
    env = {
        **os.environ,
        "DRIFTMEND_STATE_DIR": str(state_dir),
        "PGPORT": str(port),
        "PG_MAX_CONNECTIONS": "25",
    }
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def launch() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(launcher)],
            cwd=state_dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_demoted(),
        )
        wait_for_port(port, deadline_s=60.0)
        return proc

    def max_connections() -> str:
        def ask() -> str | None:
            try:
                with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
                    row = conn.execute("SHOW max_connections").fetchone()
                    return str(row[0]) if row else None
            except psycopg.OperationalError:
                return None  # still starting up

        return poll(ask, 30.0, "PostgreSQL from postgres.sh answering")

    def shut_down(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGINT)  # fast shutdown, straight to the postmaster
        proc.wait(30)

    proc = launch()
    try:
        assert max_connections() == "25"
        # exec: the pid the runtime supervises is the postmaster itself, not a shell.
        assert (state_dir / "pgdata" / "postmaster.pid").read_text().split()[0] == str(proc.pid)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_connections = 44")
        shut_down(proc)

        proc = launch()
        assert max_connections() == "44"
    finally:
        if proc.poll() is None:
            shut_down(proc)
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(bin_dir, ignore_errors=True)
