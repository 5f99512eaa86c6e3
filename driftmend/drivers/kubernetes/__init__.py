"""The ``kubernetes`` runtime: a ``Container`` that is a Deployment or StatefulSet, through
lightkube.

Stage: *observe* and *act* in docs/ARCHITECTURE.md, beside ``process/`` and ``docker/``, with
the same signals where they mean the same and a few of its own (``container.crash_looping``,
``container.rollout_stalled``, ...). The package, one concern per module:

- ``runtime.py``      ``KubernetesRuntime``, the facade the router and the tools call
- ``connection.py``   the clients: kubeconfig and context, in-cluster, metrics.k8s.io
- ``cache.py``        list-then-watch copies of one kind of object in one namespace
- ``background.py``   the one task a cache or a log follower runs, started and closed
- ``logs.py``         following pods' logs into ``pod-<name>.log``
- ``views.py``        workloads and pods as small frozen values, label selectors
- ``observation.py``  signals, facts and stats rows from a snapshot
- ``rollout.py``      the patches of a restart, a scale, new limits and a rollback
- ``chaos.py``        the patches of ``driftmend chaos``'s workload faults and their undoing
- ``quantities.py``   ``250m``, ``128Mi`` and back

Only this package imports lightkube. ``views.py``, ``observation.py``, ``rollout.py``,
``chaos.py`` and ``quantities.py`` are pure (tests/unit/test_kubernetes_*.py); the rest does I/O.
"""

from driftmend.drivers.kubernetes.runtime import KubernetesRuntime

__all__ = ["KubernetesRuntime"]
