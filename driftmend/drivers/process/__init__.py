"""The ``process`` runtime: ``Container`` replicas as local processes, supervised by driftmend.

Stage: *observe* and *act* in docs/ARCHITECTURE.md. It starts replicas (``ensure``,
``restart``, ``scale``), stops them, reports their signals (``observe``), and turns process
exits and health-probe transitions into events for the loop. It never heals on its own.

State lives on disk, so a restarted controller adopts what still runs instead of starting it
twice::

    <state_dir>/containers/<namespace>.<name>/
        state.json         desired-replicas override, restarts, last exits, created/stopped
        replica-<i>.pid    {"pid", "create_time", "argv", "port", "started_at"}
        replica-<i>.log    the replica's stdout and stderr, appended (mode 0640)

A replica run as another user (``process.user``, as root) that cannot reach those files'
directory, or its command, gets them under a work root it can pass through (``access.py``)::

    <work_root>/<state>-<hash>/<namespace>.<name>/     root's, 0711 (enter, not list)
        bin/<command>      a copy of a command out of its reach: root's, its group's, 0550
        data/              its DRIFTMEND_STATE_DIR: its own, 0700

Replicas run in their own session (``start_new_session``) so they outlive the controller, and
so a stop signals the whole process group (PostgreSQL's backends, a shell's children).
Errors of the OS and of psutil are translated into ``DriverError`` / ``PermanentError``.
The package, one concern per module:

- ``runtime.py``      ``ProcessRuntime``, the facade the router and the tools call
- ``spawn.py``        starting one replica: command, working directory, user, environment
- ``supervision.py``  exits, stops, and adopting the processes pid files name
- ``probes.py``       HTTP health probes, one task per live replica
- ``unit.py``         what is held in memory per Container and per replica; CPU and memory
- ``state.py``        what is kept in ``state.json`` per Container; words for an exit
- ``starts.py``       why a replica did not start: kept, logged, counted, cleared
- ``access.py``       what a replica running as another user can reach; its files where it can
"""

from driftmend.drivers.process.runtime import ProcessRuntime
from driftmend.drivers.process.spawn import INHERITED_ENV, child_environment

__all__ = ["INHERITED_ENV", "ProcessRuntime", "child_environment"]
