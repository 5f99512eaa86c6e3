"""The ``docker`` runtime: ``Container`` replicas as Docker containers, through docker-py.

Stage: *observe* and *act* in DESIGN.md, the Docker twin of ``process.py`` with the same
signals and the same behaviour. The package, one concern per module:

- ``runtime.py``      ``DockerRuntime``, the facade the router and the tools call
- ``engine.py``       connecting, translating docker-py's errors, the blocking engine calls
- ``replicas.py``     the replica model, Docker's times, which container is which replica
- ``configs.py``      create bodies: from the spec, or cloned from a Compose service's container
- ``observation.py``  signals and facts from a snapshot and the runtime's readings
- ``limits.py``       which CPU and memory limits replicas should have, and which are allowed
- ``state.py``        what is kept on disk per Container (``state.json``)
- ``events.py``       the event stream's thread, and which resource an event concerns
- ``logs.py``         copying containers' output to ``replica-<i>.log``
- ``stats.py``        CPU and memory from one-shot stats
- ``probes.py``       health: our HTTP probe, or Docker's healthcheck

Only ``engine.py``, ``configs.py`` and ``logs.py`` import docker-py; the rest is plain
Python over its values, and all but ``runtime.py``, ``engine.py`` and the threads of
``events.py`` and ``logs.py`` are pure (tests/unit/test_docker_*.py).
"""

from driftmend.drivers.docker.replicas import DockerReplica, parse_time_ns
from driftmend.drivers.docker.runtime import DockerRuntime

__all__ = ["DockerReplica", "DockerRuntime", "parse_time_ns"]
