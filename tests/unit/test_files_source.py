"""The files source: reload on change, keep the last valid documents of a broken file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from driftmend.sources.files import FileSource
from driftmend.spec import LoadResult
from driftmend.tools.catalogue import default_catalogue
from tests.unit.test_spec import GOOD


def atomic_write(path: Path, text: str) -> None:
    """Write as editors do on save: a new file renamed over the old one (a new inode)."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def test_a_watched_file_reloads_after_atomic_saves(tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    spec.write_text(GOOD)
    source = FileSource([spec], default_catalogue())
    source.load()  # as `driftmend run` does before it watches
    seen: list[LoadResult] = []
    stop = asyncio.Event()
    task = asyncio.create_task(source.watch(seen.append, stop))
    try:
        for replicas in (2, 3):
            before = len(seen)
            for _ in range(100):  # re-save until the watcher hears it (it starts async)
                atomic_write(
                    spec,
                    GOOD.replace(
                        "port: 8000", f"port: 8000\n  portEnv: PORT\n  replicas: {replicas}"
                    ),
                )
                for _ in range(20):
                    if len(seen) > before:
                        break
                    await asyncio.sleep(0.05)
                if len(seen) > before:
                    break
            assert len(seen) > before, f"no reload after the save with replicas: {replicas}"
            assert seen[-1].resources[0].spec.replicas == replicas
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def test_a_broken_file_keeps_its_last_valid_documents(tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    spec.write_text(GOOD)
    source = FileSource([spec], default_catalogue())
    assert len(source.load().documents) == 2
    spec.write_text(GOOD.replace("port: 8000", "port: [oops"))
    result = source.load()
    assert len(result.documents) == 2
    assert any("keeping this file's last valid documents" in str(i) for i in result.issues)
    spec.unlink()
    assert source.load().documents == []
