"""The state directory's permissions: the controller's files are its own.

Stage: start-up (docs/ARCHITECTURE.md, "State directory"). The state directory holds the
store (fixes, LLM exchanges, audited calls), the replicas' logs and the runtimes' state.
None of it is for another local user, and some of it is sensitive (a replica's log may
print what its environment gave it), so:

- the state directory is **0711**: no other user can list it. Not 0700, because a replica
  that runs as another user (PostgreSQL) must pass through to its own directory below it,
  which is that user's and 0700 (``drivers/process/access.py``);
- every file the controller writes there is **0600** and every directory it makes **0711**:
  ``driftmend run``, ``operator``, ``down`` and ``chaos`` run with the umask 0o066
  (``private_umask``), so SQLite's ``-wal`` and ``-shm`` files, temporary files and logs
  are covered without each writer remembering to ask;
- what an older driftmend left readable is tightened at start (``prepare_state_dir``);
- replicas get the umask the controller was started with (``replica_umask``): their own
  files are theirs to protect, and changing an app's umask changes the app.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from driftmend.errors import ConfigurationError

STATE_DIR_MODE = 0o711  # enter, not list: see the module docstring
PRIVATE_UMASK = 0o066  # new directories 0711, new files 0600
_GROUP_OTHER_READ_WRITE = 0o066
_GROUP_OTHER_ALL = 0o077

_inherited_umask: int | None = None


def private_umask() -> None:
    """Make every file this process creates from now on 0600 (directories 0711), keeping
    the umask it was started with for the replicas it spawns. For the commands that write
    the state directory; idempotent."""
    global _inherited_umask
    previous = os.umask(PRIVATE_UMASK)
    if _inherited_umask is None:
        _inherited_umask = previous


def replica_umask() -> int:
    """The umask a spawned replica gets: the one the controller was started with, or -1
    (``subprocess``'s "leave it") when ``private_umask`` was never called."""
    return -1 if _inherited_umask is None else _inherited_umask


def prepare_state_dir(path: Path) -> None:
    """Create ``path`` as a 0711 directory, or make an existing one 0711 and take group and
    other access away from what the controller owns inside it.

    Only entries owned by this process's user are changed, and directories owned by anyone
    else are not entered: a replica's own directory (PostgreSQL's data) is left as its user
    keeps it. ``ConfigurationError`` when the directory cannot be created or made private.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, STATE_DIR_MODE)
    except OSError as exc:
        raise ConfigurationError(
            f"state directory {path}: cannot create it or make it private "
            f"({exc.strerror or exc}); run driftmend as the directory's owner, or set "
            "DRIFTMEND_STATE_DIR to a directory of its own"
        ) from exc
    me = os.geteuid()
    for root, dirs, files in os.walk(path):
        kept = []
        for name in dirs:
            if _tighten(Path(root, name), me, _GROUP_OTHER_READ_WRITE):
                kept.append(name)
        dirs[:] = kept
        for name in files:
            _tighten(Path(root, name), me, _GROUP_OTHER_ALL)


def _tighten(entry: Path, me: int, remove: int) -> bool:
    """Take the ``remove`` bits off ``entry`` if it is ours and not a symlink; whether it
    is ours (a directory worth entering)."""
    try:
        st = entry.lstat()
        if st.st_uid != me or stat.S_ISLNK(st.st_mode):
            return False
        mode = stat.S_IMODE(st.st_mode)
        if mode & remove:
            os.chmod(entry, mode & ~remove)
    except FileNotFoundError:  # a replica's file that went away meanwhile
        return False
    return True
