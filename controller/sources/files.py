"""The files source: spec files and directories, reloaded when they change.

Stage: *spec sources*. A file that turns invalid keeps its last valid documents in force (and
its errors are logged), so a typo saved in an editor never makes the controller forget a
resource. A file that is deleted takes its documents with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from watchfiles import awatch

from controller.spec import Loaded, LoadResult, SpecIssue, check_documents, load_text, spec_files
from controller.tools.base import Catalogue
from controller.validate import check_tools

log = logging.getLogger("driftmend.sources.files")


class FileSource:
    """Loads spec paths and remembers the last valid documents of each file."""

    def __init__(self, paths: Sequence[str | Path], catalogue: Catalogue) -> None:
        self.paths = [Path(p) for p in paths]
        self.catalogue = catalogue
        self._good: dict[str, list[Loaded]] = {}

    def load(self) -> LoadResult:
        """Read every file now; files with errors keep their previous valid documents."""
        files, issues = spec_files(self.paths)
        documents: list[Loaded] = []
        seen: set[str] = set()
        for file in files:
            name = str(file)
            seen.add(name)
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                issues.append(SpecIssue(name, None, "", message=f"cannot read: {exc}"))
                documents.extend(self._good.get(name, []))
                continue
            docs, file_issues = load_text(text, name)
            checked = check_tools(LoadResult(docs, []), self.catalogue)
            file_issues += checked.issues
            if any(i.severity == "error" for i in file_issues) and name in self._good:
                file_issues.append(
                    SpecIssue(
                        name,
                        None,
                        "",
                        message="keeping this file's last valid documents until it is fixed",
                        severity="warning",
                    )
                )
                documents.extend(self._good[name])
            else:
                self._good[name] = checked.documents
                documents.extend(checked.documents)
            issues.extend(file_issues)
        for gone in set(self._good) - seen:
            del self._good[gone]
        return check_documents(documents, issues)

    async def watch(self, apply: Callable[[LoadResult], None], stop: asyncio.Event) -> None:
        """Reload and ``apply`` whenever a watched path changes, until ``stop`` is set."""
        existing = [p for p in self.paths if p.exists()]
        if not existing:
            return
        async for _ in awatch(*existing, stop_event=stop, debounce=300, recursive=True):
            result = self.load()
            for issue in result.issues:
                log.warning("%s", issue)
            log.info("specs reloaded: %d documents", len(result.documents))
            apply(result)
