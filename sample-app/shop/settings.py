"""The app's configuration, read from the environment in this one place and nowhere else."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

_Number = TypeVar("_Number", int, float)


class SettingsError(ValueError):
    """An environment variable holds a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the app can be told, each field named after its ``SHOP_`` variable."""

    # SHOP_HOST: the address uvicorn binds; loopback by default, the demo never leaves it.
    host: str = "127.0.0.1"
    # SHOP_PORT: the TCP port uvicorn listens on.
    port: int = 8000
    # SHOP_DATABASE_URL: libpq URL of the PostgreSQL database holding products and orders.
    database_url: str = "postgresql://postgres@127.0.0.1:55432/postgres"
    # SHOP_REDIS_URL: URL of the Redis database holding sessions and carts.
    redis_url: str = "redis://127.0.0.1:56379/0"
    # SHOP_DB_POOL_SIZE: connections the pool opens and never exceeds (min = max), so the
    # app's share of PostgreSQL's max_connections is known in advance.
    db_pool_size: int = 5
    # SHOP_DB_ACQUIRE_TIMEOUT: seconds a request waits for a pooled connection; short, so an
    # exhausted database shows as fast 503s instead of requests that hang.
    db_acquire_timeout: float = 2.0
    # SHOP_CHAOS: "1" mounts the /chaos fault injectors; anything else leaves them out (404).
    chaos: bool = False
    # SHOP_LOG_LEVEL: the lowest level written to stdout.
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: the process environment).

        Raises:
            SettingsError: a variable is set to something that is not a valid value.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        level = env.get("SHOP_LOG_LEVEL", defaults.log_level).upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(f"SHOP_LOG_LEVEL: unknown level {level!r}")
        settings = cls(
            host=env.get("SHOP_HOST", defaults.host),
            port=_number(env, "SHOP_PORT", defaults.port, int),
            database_url=env.get("SHOP_DATABASE_URL", defaults.database_url),
            redis_url=env.get("SHOP_REDIS_URL", defaults.redis_url),
            db_pool_size=_number(env, "SHOP_DB_POOL_SIZE", defaults.db_pool_size, int),
            db_acquire_timeout=_number(
                env, "SHOP_DB_ACQUIRE_TIMEOUT", defaults.db_acquire_timeout, float
            ),
            chaos=env.get("SHOP_CHAOS", "0").strip() == "1",
            log_level=level,
        )
        if not 0 < settings.port < 65536:
            raise SettingsError(f"SHOP_PORT: {settings.port} is not a TCP port")
        if settings.db_pool_size < 1:
            raise SettingsError("SHOP_DB_POOL_SIZE: must be at least 1")
        if settings.db_acquire_timeout <= 0:
            raise SettingsError("SHOP_DB_ACQUIRE_TIMEOUT: must be positive")
        return settings


def _number(env: Mapping[str, str], name: str, default: _Number, kind: type[_Number]) -> _Number:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {raw!r} is not a valid {kind.__name__}") from exc
