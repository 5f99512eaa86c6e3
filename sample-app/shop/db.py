"""PostgreSQL: the connection pool, the schema and seed data, products and orders.

All SQL of the app lives here. Functions take a pool and let psycopg's errors propagate:
the HTTP layer turns them into 503s and ERROR log lines in one place.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("shop.db")

# Any constant works; it only has to be the same in every replica of the app, so that two
# replicas starting together do not race on CREATE TABLE (which is not concurrency-safe).
_SCHEMA_LOCK_ID = 0x5_40_9A_99

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS products (
        id          serial PRIMARY KEY,
        sku         text NOT NULL UNIQUE,
        name        text NOT NULL,
        description text NOT NULL,
        price_cents integer NOT NULL CHECK (price_cents > 0)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS orders (
        id          bigserial PRIMARY KEY,
        session     text NOT NULL,
        total_cents bigint NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS order_items (
        order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
        product_id  integer NOT NULL REFERENCES products (id),
        quantity    integer NOT NULL CHECK (quantity > 0),
        price_cents integer NOT NULL,
        PRIMARY KEY (order_id, product_id)
    )
    """,
)

SEED_PRODUCTS: tuple[tuple[str, str, str, int], ...] = (
    ("MUG-001", "Enamel mug", "A camp mug that survives being dropped.", 1200),
    ("TEE-002", "Logo T-shirt", "Organic cotton, printed on the front.", 2400),
    ("CAP-003", "Baseball cap", "Adjustable strap, embroidered logo.", 1900),
    ("STK-004", "Sticker pack", "Ten vinyl stickers for laptops.", 600),
    ("NTB-005", "Dot-grid notebook", "A5, 160 pages, lays flat.", 1500),
    ("PEN-006", "Gel pen", "0.5 mm, black ink.", 300),
    ("BAG-007", "Tote bag", "Heavy canvas with long handles.", 1800),
    ("BTL-008", "Water bottle", "Insulated steel, 750 ml.", 2900),
    ("HOD-009", "Hoodie", "Fleece-lined, front pocket.", 5400),
    ("SCK-010", "Socks", "Two pairs, merino blend.", 1400),
    ("PIN-011", "Enamel pin", "Hard enamel, rubber clasp.", 800),
    ("KEY-012", "Keychain", "Bottle opener included.", 700),
    ("PST-013", "Poster", "Architecture diagram, A2.", 2200),
    ("MSE-014", "Mouse pad", "Stitched edges, 30 x 25 cm.", 1300),
    ("CBL-015", "USB-C cable", "Braided, 2 m.", 1600),
    ("BNE-016", "Beanie", "Ribbed knit, one size.", 2100),
    ("UMB-017", "Umbrella", "Compact, wind-resistant.", 3100),
    ("CST-018", "Coaster set", "Four cork coasters.", 900),
    ("LAN-019", "Lanyard", "Woven, with safety clip.", 500),
    ("BKS-020", "Book: Site Reliability", "Paperback, well thumbed.", 4500),
)


class ShopPool(AsyncConnectionPool):
    """The pool, plus exact counts of the connections lent and the requests waiting.

    psycopg_pool's own figures do not fit a health report: ``pool_size`` also counts the
    connections it is still trying to open, so ``pool_size - pool_available`` reads "all in
    use" while the database is down, and ``requests_waiting`` keeps requests that already
    gave up until a connection frees them.
    """

    lent: int = 0
    waiting: int = 0

    # The parameter keeps the name of the method it overrides.
    async def getconn(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Borrow a connection (see AsyncConnectionPool.getconn), counting the wait."""
        self.waiting += 1
        try:
            conn = await super().getconn(timeout)
        finally:
            self.waiting -= 1
        self.lent += 1
        return conn

    async def putconn(self, conn: Any) -> None:
        """Give a connection back (see AsyncConnectionPool.putconn)."""
        self.lent -= 1
        await super().putconn(conn)

    def describe(self) -> str:
        """A short account of the pool for error messages, with what it most likely means."""
        idle = self.get_stats().get("pool_available", 0)
        counts = (
            f"pool: {self.lent} of {self.max_size} connections lent, {idle} idle,"
            f" {self.waiting} requests waiting"
        )
        if self.lent >= self.max_size:
            return f"{counts}: the pool is exhausted"
        if self.lent == 0 and idle == 0:
            return f"{counts}: no connection to the database can be opened"
        return counts


def make_pool(database_url: str, size: int, acquire_timeout: float) -> ShopPool:
    """A closed pool of exactly ``size`` connections; open it with ``await pool.open()``.

    Connections are autocommit: a request that awaits Redis between two queries must not
    sit "idle in transaction" on the server. Writes that need atomicity open a transaction.
    """
    return ShopPool(
        database_url,
        min_size=size,
        max_size=size,
        open=False,
        timeout=acquire_timeout,
        # Each connection is checked as it is lent: after PostgreSQL restarts, the stale
        # ones are dropped at once instead of failing one request each.
        check=AsyncConnectionPool.check_connection,
        # The default (5 minutes) lets the reconnect backoff grow to minutes; a demo app
        # must be healthy again within seconds of its database coming back. After this
        # long the pool gives up on a connection and reopens it on the next demand.
        reconnect_timeout=5.0,
        kwargs={"autocommit": True, "connect_timeout": 2, "application_name": "shop"},
        name="shop",
    )


async def ensure_schema(pool: AsyncConnectionPool) -> None:
    """Create the tables if they are missing and seed the catalogue; idempotent."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
        for statement in _SCHEMA:
            await conn.execute(statement)
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO products (sku, name, description, price_cents)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (sku) DO NOTHING",
                SEED_PRODUCTS,
            )


async def keep_trying_schema(
    pool: AsyncConnectionPool, ready: asyncio.Event, retry_every: float = 1.0
) -> None:
    """Run :func:`ensure_schema` until it succeeds, then set ``ready``.

    Runs as a background task so that the app starts, and answers /healthz with the
    reason, while PostgreSQL is still down.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            await ensure_schema(pool)
        except psycopg.Error as exc:
            log.warning("schema not ready (attempt %d): %s: %s", attempt, type(exc).__name__, exc)
            await asyncio.sleep(retry_every)
        else:
            log.info("schema ready: %d products in the catalogue", len(SEED_PRODUCTS))
            ready.set()
            return


async def ping(pool: AsyncConnectionPool, within: float) -> None:
    """``SELECT 1`` through a pooled connection: at most ``within`` seconds to get one.

    The outer deadline is a little longer, so that a database that cannot be reached ends
    in the pool's own PoolTimeout and only a connected server that does not answer ends in
    a bare TimeoutError: the two read differently in /healthz.
    """
    async with asyncio.timeout(within + 0.25), pool.connection(timeout=within) as conn:
        await conn.execute("SELECT 1")


async def list_products(pool: AsyncConnectionPool) -> list[dict[str, Any]]:
    """The whole catalogue, by id."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, sku, name, description, price_cents FROM products ORDER BY id"
        )
        return await cur.fetchall()


async def get_product(pool: AsyncConnectionPool, product_id: int) -> dict[str, Any] | None:
    """One product, or None when there is no such id."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, sku, name, description, price_cents FROM products WHERE id = %s",
            (product_id,),
        )
        return await cur.fetchone()


class UnknownProductsError(LookupError):
    """An order names products that are not in the catalogue."""

    def __init__(self, product_ids: list[int]) -> None:
        super().__init__(f"unknown products: {product_ids}")
        self.product_ids = product_ids


@dataclass(frozen=True)
class OrderLine:
    """One line of an order: what, how many, and the unit price paid."""

    product_id: int
    quantity: int
    price_cents: int


async def create_order(
    pool: AsyncConnectionPool, session: str, quantities: dict[int, int]
) -> dict[str, Any]:
    """Store an order for ``quantities`` (product id -> count) at today's prices.

    Raises:
        UnknownProductsError: some product id is not in the catalogue.
    """
    async with (
        pool.connection() as conn,
        conn.transaction(),
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute(
            "SELECT id, price_cents FROM products WHERE id = ANY(%s)", (list(quantities),)
        )
        prices = {row["id"]: row["price_cents"] for row in await cur.fetchall()}
        missing = sorted(set(quantities) - set(prices))
        if missing:
            raise UnknownProductsError(missing)
        lines = [OrderLine(pid, qty, prices[pid]) for pid, qty in sorted(quantities.items())]
        total = sum(line.quantity * line.price_cents for line in lines)
        await cur.execute(
            "INSERT INTO orders (session, total_cents) VALUES (%s, %s)"
            " RETURNING id, session, total_cents, created_at",
            (session, total),
        )
        order = await cur.fetchone()
        assert order is not None  # INSERT ... RETURNING always returns its row
        await cur.executemany(
            "INSERT INTO order_items (order_id, product_id, quantity, price_cents)"
            " VALUES (%s, %s, %s, %s)",
            [(order["id"], ln.product_id, ln.quantity, ln.price_cents) for ln in lines],
        )
    return _order_json(order, [asdict(line) for line in lines])


async def get_order(pool: AsyncConnectionPool, order_id: int) -> dict[str, Any] | None:
    """One order with its lines, or None when there is no such id."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, session, total_cents, created_at FROM orders WHERE id = %s", (order_id,)
        )
        order = await cur.fetchone()
        if order is None:
            return None
        await cur.execute(
            "SELECT product_id, quantity, price_cents FROM order_items"
            " WHERE order_id = %s ORDER BY product_id",
            (order_id,),
        )
        return _order_json(order, await cur.fetchall())


def _order_json(order: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    created: datetime = order["created_at"]
    return {
        "id": order["id"],
        "session": order["session"],
        "total_cents": order["total_cents"],
        "created_at": created.isoformat(),
        "items": items,
    }
