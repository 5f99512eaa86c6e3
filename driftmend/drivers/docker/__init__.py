"""The ``docker`` runtime: ``Container`` replicas as Docker containers, through docker-py.

Stage: *observe* and *act* in docs/ARCHITECTURE.md, the Docker twin of ``process/`` with the
same signals and the same behaviour. The package, one concern per module:

- ``runtime.py``      ``DockerRuntime``, the facade the router and the tools call
- ``unit.py``         what the runtime holds per Container: lock, state, probes, readings
- ``provision.py``    creating, recreating, starting or restarting one replica
- ``relay.py``        the event stream's life, and its events handed to the loop's thread
- ``engine.py``       connecting, translating docker-py's errors, the blocking engine calls
- ``replicas.py``     the replica model, Docker's times, which container is which replica
- ``configs.py``      create bodies: from the spec, or cloned from a Compose service's container
- ``observation.py``  signals, facts and stats rows from a snapshot and the runtime's readings
- ``limits.py``       which CPU and memory limits replicas should have, and which are allowed
- ``state.py``        what is kept on disk per Container (``state.json``)
- ``events.py``       the event stream's thread, and which resource an event concerns
- ``logs.py``         copying containers' output to ``replica-<i>.log``
- ``stats.py``        CPU and memory from one-shot stats
- ``probes.py``       health: our HTTP probe, or Docker's healthcheck

Only ``engine.py``, ``configs.py`` and ``logs.py`` import docker-py; the rest is plain
Python over its values. ``replicas.py``, ``configs.py``, ``observation.py`` and ``limits.py``
are pure, as are the event mapping and the CPU arithmetic (tests/unit/test_docker_*.py);
``runtime.py``, ``unit.py`` and ``provision.py`` act, ``events.py``, ``relay.py`` and
``logs.py`` run threads.
"""

from driftmend.drivers.docker.replicas import DockerReplica, parse_time_ns
from driftmend.drivers.docker.runtime import DockerRuntime

__all__ = ["DockerReplica", "DockerRuntime", "parse_time_ns"]
