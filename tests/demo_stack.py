"""The demo stack of ``manifests/examples/local`` on free ports, for tests and benchmarks.

The specs are the real example files with the three default ports swapped for free ones,
so what the tests heal is what ``make demo`` runs. The state directory is made under /tmp
with mode 755: PostgreSQL runs as the ``postgres`` user and must reach its data directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.services import free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "manifests" / "examples" / "local"


@dataclass(frozen=True)
class DemoStack:
    """Where a copy of the demo stack's specs and state live, and its ports."""

    specs: Path
    state: Path
    app_port: int
    pg_port: int
    redis_port: int

    async def down(self) -> bool:
        """``driftmend down`` of this stack (its controller first, if one runs); True when
        it stopped everything."""
        done = await asyncio.to_thread(
            subprocess.run,
            [str(REPO / ".venv/bin/driftmend"), "down", "-f", str(self.specs), "--state-dir", str(self.state)],
            cwd=REPO, capture_output=True, check=False,
        )  # fmt: skip
        return done.returncode == 0

    def cleanup(self) -> None:
        """Remove the specs and the state (the processes must be down first)."""
        shutil.rmtree(self.state.parent, ignore_errors=True)


def demo_stack() -> DemoStack:
    """Copy the example specs with free ports into a new temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="driftmend-stack-"))
    os.chmod(root, 0o755)
    specs = root / "specs"
    specs.mkdir()
    ports = {"8000": free_port(), "55432": free_port(), "56379": free_port()}
    for src in EXAMPLES.glob("*.yaml"):
        text = src.read_text()
        for old, new in ports.items():
            text = text.replace(old, str(new))
        (specs / src.name).write_text(text)
    return DemoStack(specs, root / "state", ports["8000"], ports["55432"], ports["56379"])
