"""What a replica that runs as another user can reach, and its files placed where it can.

Stage: *act*. As root, the process runtime starts a replica as ``process.user`` (PostgreSQL
refuses to run as root). That user must reach its command and a directory of its own
(``DRIFTMEND_STATE_DIR``), yet the checkout the specs point into, and the state directory
inside it, may sit under a directory only root can enter (``/root``, mode 0700). Loosening
the operator's directories is not ours to do, so the runtime:

- runs a script the user cannot reach from a copy it can: owned by root, readable and
  executable by the user's group only (0550), refreshed at every start, so an edit of the
  original takes effect at the next start as before. Only a script (``#!``): a program
  finds its libraries beside itself, and a copy would fail in its own confusing way;
- gives the replica a directory of its own (owned by it, 0700) under the *work root* when
  its state directory is out of its reach. Every directory above it that the runtime creates
  is root's and 0711: a replica passes through, and cannot list or change it;
- names, in the start error, the path and the user when something is still out of reach
  (a script's interpreter, say).

Reachability is read from the mode bits (owner, group, other) the way the kernel applies
them, not from ACLs: an ACL that grants more only costs a needless copy, one that denies
more shows up as the start error.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from driftmend.errors import DriverError, PermanentError

# Where replicas running as another user get what they cannot reach elsewhere, when the
# runtime is not told otherwise: beside other services' state, like systemd's StateDirectory.
DEFAULT_WORK_ROOT = Path("/var/lib/driftmend/replicas")
PASSABLE = 0o711  # a directory a replica must pass through: enter, not list
EXECUTABLE_BY_GROUP = 0o550  # a copied command: the user's group reads and runs it, no one else


@dataclass(frozen=True)
class RunAs:
    """The user a replica runs as: what the kernel checks its access with."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]
    home: str

    @classmethod
    def named(cls, name: str, key: str) -> RunAs:
        """The user ``name``; ``PermanentError`` naming ``key`` when there is no such user."""
        try:
            pw = pwd.getpwnam(name)
        except KeyError as exc:
            raise PermanentError(
                f"{key}: user {name!r} does not exist; create it or fix spec.process.user"
            ) from exc
        groups = frozenset(os.getgrouplist(name, pw.pw_gid))
        return cls(name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir)


def _allows(st: os.stat_result, who: RunAs, want: int) -> bool:
    """Whether the mode bits grant ``who`` every access in ``want`` (R_OK, W_OK, X_OK).

    As the kernel does: the owner's bits apply to the owner even when the group's or
    others' would grant more, then the group's to a member, then the others'.
    """
    if st.st_uid == who.uid:
        shift = 6
    elif st.st_gid in who.groups:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & want == want


def blocker(path: Path, who: RunAs, want: int = os.X_OK) -> str | None:
    """Why ``who`` cannot reach ``path`` and have ``want`` on it, in words; None if it can.

    Every directory from ``/`` down must let ``who`` through (search, ``x``); symlinks are
    resolved first, since the kernel walks the real path.
    """
    real = Path(os.path.realpath(path))
    for directory in [*reversed(real.parents), real]:
        last = directory == real
        try:
            st = os.stat(directory)
        except OSError as exc:
            return f"{directory}: {exc.strerror or exc}"
        need = want if last else os.X_OK
        if not last and not stat.S_ISDIR(st.st_mode):
            return f"{directory} is not a directory"
        if not _allows(st, who, need):
            owner = _owner(st.st_uid)
            what = "use" if last else "pass through"
            return (
                f"{directory} (mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}) does not let "
                f"user {who.name} {what} it"
            )
    return None


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def interpreter(path: Path) -> Path | None:
    """The interpreter a script names on its ``#!`` line, when it names an absolute path."""
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return Path(words[0]) if words and words[0].startswith("/") else None


def work_dir(work_root: Path, state_root: Path, unit_name: str) -> Path:
    """``<work_root>/<state>/<namespace>.<name>``: one directory per Container per state dir.

    ``<state>`` is the state directory's last names and a hash of its whole path, so two
    checkouts never share a replica's files, and an operator can tell whose they are.
    """
    digest = hashlib.sha256(str(state_root).encode()).hexdigest()[:12]
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in state_root.parent.name)
    return work_root / f"{label or 'state'}-{digest}" / unit_name


def passable_dirs(top: Path, leaf: Path, key: str) -> None:
    """Create ``leaf`` and every directory between ``top`` and it, root's and 0711 each.

    ``top`` itself is made (with its parents) if missing. Only root calls this; a directory
    found owned by someone else is refused, since we are about to write inside it as root.
    """
    chain = [leaf, *[p for p in leaf.parents if p == top or top in p.parents]]
    try:
        for directory in reversed(chain):
            directory.mkdir(parents=directory == top, exist_ok=True)
            st = os.lstat(directory)
            if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
                raise DriverError(
                    f"{key}: {directory} is not a directory owned by the controller's user; "
                    "remove it or choose another work root"
                )
            if stat.S_IMODE(st.st_mode) != PASSABLE:
                os.chmod(directory, PASSABLE)
    except OSError as exc:
        raise DriverError(f"{key}: cannot prepare {leaf}: {exc.strerror or exc}") from exc


def copy_command(source: Path, directory: Path, who: RunAs, key: str) -> Path:
    """A copy of ``source`` in ``directory`` (root's, 0711) that ``who`` can read and run.

    Written beside its final name and renamed over it, so a replica starting meanwhile never
    runs half a file.
    """
    target = directory / source.name
    tmp = directory / f".{source.name}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.chown(tmp, os.geteuid(), who.gid)
        os.chmod(tmp, EXECUTABLE_BY_GROUP)
        os.replace(tmp, target)
    except OSError as exc:
        raise DriverError(
            f"{key}: cannot copy {source} to {directory} for user {who.name}: {exc.strerror or exc}"
        ) from exc
    return target


def own_dir(directory: Path, who: RunAs, key: str) -> None:
    """Make ``directory`` (under a root-owned 0711 parent) ``who``'s own, mode 0700."""
    try:
        directory.mkdir(exist_ok=True)
        st = os.lstat(directory)
        if stat.S_ISLNK(st.st_mode):
            raise DriverError(f"{key}: {directory} is a symbolic link; remove it")
        if (st.st_uid, st.st_gid) != (who.uid, who.gid):
            os.chown(directory, who.uid, who.gid)
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(directory, 0o700)
    except OSError as exc:
        raise DriverError(
            f"{key}: cannot give {directory} to user {who.name}: {exc.strerror or exc}"
        ) from exc
