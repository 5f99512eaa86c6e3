"""A tiny web app that counts its own starts: what shows a step that ran twice.

Each start appends a line to the file ``$STARTS``. ``/healthz`` answers 500 while the file
``$SICK`` exists, 200 otherwise. While the file ``$SLOW`` exists it ignores SIGTERM, so a
restart (SIGTERM, then SIGKILL after ``stopTimeout``) takes seconds: long enough to kill a
controller in the middle of the step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCRIPT = (
    "import http.server, os, signal, sys\n"
    "open(os.environ['STARTS'], 'a').write(f'{os.getpid()}\\n')\n"
    "def term(*a):\n"
    "    if not os.path.exists(os.environ['SLOW']): sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(500 if os.path.exists(os.environ['SICK']) else 200)\n"
    "        self.end_headers(); self.wfile.write(b'x')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
)

# Probed often, declared unhealthy fast: a fix of it starts and verifies within a second.
HEALTH: dict[str, Any] = {
    "http": {"path": "/healthz"},
    "interval": "200ms",
    "timeout": "500ms",
    "failureThreshold": 2,
    "startupTimeout": "1s",
}


def env(files: Path) -> dict[str, str]:
    """The app's files (sick, slow, starts) under ``files``."""
    return {name.upper(): str(files / name) for name in ("sick", "slow", "starts")}


def starts(files: Path) -> int:
    """How many times the app has started."""
    path = files / "starts"
    return len(path.read_text().splitlines()) if path.exists() else 0
