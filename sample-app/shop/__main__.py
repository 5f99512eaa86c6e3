"""Entry point: ``python -m shop`` reads the environment, sets up logging, serves the API."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import uvicorn

from shop.app import create_app
from shop.logs import configure_logging
from shop.settings import Settings, SettingsError

log = logging.getLogger("shop")


def _after_shutdown(signum: int, frame: FrameType | None) -> None:
    # uvicorn handles SIGTERM/SIGINT itself (graceful shutdown, lifespan exit), then
    # re-raises the signal so the previous handler can act. With the default handlers that
    # re-raise would kill us with -SIGTERM or a KeyboardInterrupt traceback after a perfectly
    # clean shutdown; this handler lets main() return and the process exit 0.
    log.info("shutdown complete after %s", signal.Signals(signum).name)


def main() -> int:
    """Run the shop until SIGTERM or SIGINT; return the process exit code."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        configure_logging()
        log.critical("bad configuration: %s", exc)
        return 2
    configure_logging(settings.log_level)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _after_shutdown)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # None keeps the one-line format configure_logging() installed, for uvicorn too.
        log_config=None,
        access_log=True,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns (rather than raising) when it cannot bind or its startup failed.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
