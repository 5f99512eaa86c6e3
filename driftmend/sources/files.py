"""The files source: spec files and directories, reloaded when they change.

Stage: *spec sources* (docs/ARCHITECTURE.md). Loading is ``spec.load_paths``, given this
source's memory of each file's last valid documents: a file that turns invalid keeps them in
force (and its errors are logged), so a typo saved in an editor never makes the controller
forget a resource. A file that is deleted takes its documents with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from watchfiles import awatch

from driftmend.spec import Loaded, LoadResult, load_paths
from driftmend.tools.base import Catalogue
from driftmend.validate import tool_check

log = logging.getLogger("driftmend.sources.files")


class FileSource:
    """Loads spec paths and remembers the last valid documents of each file."""

    def __init__(self, paths: Sequence[str | Path], catalogue: Catalogue) -> None:
        self.paths = [Path(p) for p in paths]
        self.catalogue = catalogue
        self._good: dict[str, list[Loaded]] = {}

    def load(self) -> LoadResult:
        """Read every file now; files with errors keep their previous valid documents."""
        return load_paths(self.paths, tool_check(self.catalogue), last_good=self._good)

    async def watch(self, apply: Callable[[LoadResult], None], stop: asyncio.Event) -> None:
        """Reload and ``apply`` whenever a watched path changes, until ``stop`` is set.

        Directories are watched, never single files: an editor's atomic save replaces a
        file's inode, after which a watch on the file itself hears nothing more. A named
        file is watched through its directory, filtered to its own name.
        """
        dirs = {p if p.is_dir() else p.parent for p in self.paths}
        files = {p.resolve() for p in self.paths if not p.is_dir()}
        roots = {p.resolve() for p in self.paths if p.is_dir()}
        existing = [d for d in dirs if d.exists()]
        if not existing:
            log.warning("no spec path exists to watch: %s", ", ".join(map(str, self.paths)))
            return

        def relevant(_: object, path: str) -> bool:
            resolved = Path(path).resolve()
            return resolved in files or any(r in resolved.parents for r in roots)

        async for _ in awatch(*existing, stop_event=stop, debounce=300, watch_filter=relevant):
            try:
                result = self.load()
                for issue in result.issues:
                    log.warning("%s", issue)
                log.info("specs reloaded: %d documents", len(result.documents))
                apply(result)
            except Exception:  # a reload must never end the watch
                log.exception("reloading the specs failed; watching on")
