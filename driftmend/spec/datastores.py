"""The ``PostgresDatabase`` and ``RedisCache`` kinds' specs: where to reach them, what caps.

Stage: *spec sources* (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from pydantic import Field

from driftmend.spec.fields import ByteSize, Model
from driftmend.spec.metadata import RuntimeRef, SecretRef


class PostgresDatabaseSpec(Model):
    """Desired state of a PostgreSQL database, observed through SQL."""

    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = "postgres"
    user: str = "postgres"
    password_from: SecretRef | None = None
    runtime_ref: RuntimeRef | None = None
    max_connections_cap: int = Field(
        default=200, ge=1, description="pg_scale_connections never goes above this"
    )


class RedisCacheSpec(Model):
    """Desired state of a Redis cache, observed through RESP."""

    host: str = "127.0.0.1"
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0)
    password_from: SecretRef | None = None
    runtime_ref: RuntimeRef | None = None
    maxmemory_cap: ByteSize | None = Field(
        default=None, description="redis_set_maxmemory never goes above this"
    )
