"""Drivers: the only modules that talk to local processes, the Docker engine, PostgreSQL, Redis.

Stage: *observe* and *act* in docs/ARCHITECTURE.md. Each driver translates its library's
errors into ``driftmend.errors`` at the seam; the core sees them only through the Protocols
of ``base.py``. One module or package per outside world:

- ``process/``        the ``process`` runtime: Containers as local processes
- ``docker/``         the ``docker`` runtime: Containers as Docker containers (docker-py)
- ``runtimes.py``     the router handing each Container to the runtime its spec names
- ``state_files.py``  what both runtimes keep on disk per Container, and where
- ``postgres.py``     PostgresDatabase through psycopg; ``postgres_chaos.py``, fault injection
- ``redis.py``        RedisCache through redis-py
- ``http_probe.py``   one HTTP health probe, shared by both runtimes
"""
