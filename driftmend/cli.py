"""The ``driftmend`` command: parse arguments, then call the core. No logic of its own.

Stage: an entry point (see docs/ARCHITECTURE.md). Every subcommand returns an exit code;
bad input is reported in one line per problem, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import math
import re
import signal
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError as PydanticSettingsError

from driftmend import __version__
from driftmend.errors import DriftmendError, SettingError
from driftmend.settings import Settings
from driftmend.state_dir import private_umask

DEFAULT_SPECS = "manifests/examples/local"
# The settings a subcommand's flags may override; each flag is --<name with dashes>.
_FLAG_SETTINGS = (
    "state_dir",
    "db_path",
    "http_host",
    "http_port",
    "dry_run",
    "resync_period",
    "workers",
    "leader_lease_name",
    "leader_namespace",
    "leader_identity",
)
# Exit code of a bad setting or flag value: 2, as argparse exits for a bad command line.
EXIT_USAGE = 2


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def setting_error(
    exc: ValidationError | PydanticSettingsError, flags: Collection[str] = ()
) -> SettingError:
    """A settings failure as ``SettingError``: one line per bad setting, naming its flag
    (when ``name`` is in ``flags``, the settings given on the command line) or its
    ``DRIFTMEND_*`` variable, then what is wrong."""
    from driftmend.spec import describe_errors

    lines: list[str] = []
    if isinstance(exc, ValidationError):
        for path, message in describe_errors(exc, Settings):
            name = re.split(r"[.\[]", path, maxsplit=1)[0]
            source = _flag(name) if name in flags else f"DRIFTMEND_{name.upper()}"
            lines.append(f"{source}: {message}")
    else:
        # pydantic-settings fails before validation when a JSON-valued variable is not JSON.
        found = re.search(r'field "(\w+)"', str(exc))
        name = found.group(1) if found else "?"
        lines.append(f"DRIFTMEND_{name.upper()}: not valid JSON: give a JSON value")
    return SettingError("\n".join(lines))


def _settings(args: argparse.Namespace) -> Settings:
    # `is not None`, not truthiness: `--http-port 0` and `--workers 0` are values to pass on
    # (and to refuse, for workers), never "not given". Flags that are off by default use
    # default=None, so an absent `--dry-run` leaves DRIFTMEND_DRY_RUN in charge.
    overrides: dict[str, Any] = {}
    for name in _FLAG_SETTINGS:
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        return Settings(**overrides)
    except (ValidationError, PydanticSettingsError) as exc:
        raise setting_error(exc, overrides) from exc


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds (``inf`` and ``nan`` parse as floats)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, like 2 or 0.5")
    return value


def cmd_validate(args: argparse.Namespace) -> int:
    """``driftmend validate PATH...``: one line per problem; exit 1 on any error."""
    from driftmend.spec import load_paths
    from driftmend.tools.catalogue import default_catalogue
    from driftmend.validate import tool_check

    result = load_paths(args.paths, tool_check(default_catalogue()))
    for issue in result.issues:
        print(issue, file=sys.stderr if issue.severity == "error" else sys.stdout)
    if result.errors:
        print(f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(result.documents)} document(s) valid, {len(result.warnings)} warning(s)")
    return 0


def cmd_crds(args: argparse.Namespace) -> int:
    """``driftmend crds [--write DIR]``: the CRDs generated from the models."""
    from driftmend.spec import crds_yaml

    files = crds_yaml()
    if args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
            print(f"wrote {out / name}")
        return 0
    print("---\n".join(files.values()), end="")
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    """``driftmend tools``: the tool catalogue."""
    from driftmend.tools.catalogue import default_catalogue

    for tool in default_catalogue():
        print(f"{tool.name:28} {tool.effect.value:12} {', '.join(tool.kinds)}")
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    """``driftmend signals [KIND]``: the signal catalogue, what policies' conditions may name."""
    from driftmend.signals import SIGNALS

    for info in SIGNALS.values():
        if args.kind and args.kind not in info.kinds:
            continue
        unit = f" ({info.unit})" if info.unit else ""
        kinds = "any" if len(info.kinds) > 2 else ", ".join(info.kinds)
        print(f"{info.name:36} {info.type:6} {kinds:18} {info.description}{unit}")
    return 0


def _age(at: float | None) -> str:
    if not at:
        return "-"
    secs = max(0.0, time.time() - at)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit} ago"
    return f"{int(secs)}s ago"


_SHOWN = {
    "Container": (
        "container.running",
        "container.healthy",
        "container.replicas_running",
        "container.memory_bytes",
    ),
    "PostgresDatabase": (
        "postgres.up",
        "postgres.connections_used_ratio",
        "postgres.longest_query_seconds",
    ),
    "RedisCache": ("redis.up", "redis.memory_used_ratio", "redis.rejected_writes"),
}


def _fmt_signal(name: str, value: object) -> str:
    """``memory_bytes=48.2 MiB``: the value as the dashboard writes it."""
    from driftmend.formatting import format_value

    return f"{name.split('.', 1)[1]}={format_value(value, signal=name)}"


def cmd_get(args: argparse.Namespace) -> int:
    """``driftmend get [KIND] [-o json]``: resources, observed state and last fix, from the store."""
    from driftmend.formatting import format_value
    from driftmend.store import open_store

    settings = _settings(args)
    # A shared PostgreSQL store is there or says why not; only a file can be missing.
    if settings.store_dsn is None and not settings.store_path.exists():
        print(
            f"no state at {settings.store_path}: start the controller with `driftmend run` (or `make demo`)",
            file=sys.stderr,
        )
        return 1
    store = open_store(settings)
    try:
        rows = store.resource_records.resources()
    finally:
        store.close()
    if args.kind:
        wanted = args.kind.lower()
        rows = [r for r in rows if r["kind"].lower() in (wanted, wanted.rstrip("s"))]
    if args.output == "json":
        print(json.dumps([r.to_json() for r in rows], indent=2, default=str))
        return 0
    header = f"{'KIND':18} {'NAME':14} {'HEALTH':15} {'OBSERVED':10} {'SIGNALS':68} LAST FIX"
    print(header)
    for r in rows:
        kind, name = r["kind"], r["key"].split("/")[-1]
        signals = r.get("signals") or {}
        # Two spaces apart: a value may hold one ("48.2 MiB").
        shown = "  ".join(_fmt_signal(n, signals[n]) for n in _SHOWN.get(kind, ()) if n in signals)
        fix = r.get("last_fix")
        last = "-"
        if fix:
            ttr = fix.get("time_to_recover")
            ttr_s = f" in {format_value(ttr, unit='duration')}" if ttr is not None else ""
            last = f"{fix.get('outcome') or fix.get('status')}{ttr_s} by {fix.get('rule') or fix.get('source')} {_age(fix.get('detected_at'))}"
        print(
            f"{kind:18} {name:14} {r['health']:15} {_age(r.get('observed_at')):10} {shown:68} {last}"
        )
        if r.get("message") and r["health"] not in ("healthy",):
            print(f"{'':18} {'':14} └ {r['message']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``driftmend run -f PATH... [--once] [--dry-run]``: the controller and its HTTP server."""
    from driftmend.app import run_controller

    settings = _settings(args)
    private_umask()  # the state directory's files are the controller's only
    # A fatal signal (SIGSEGV, or SIGBUS from a mapped file) leaves at least a traceback
    # on the real stderr, where a silent death left nothing.
    if not faulthandler.is_enabled() and sys.__stderr__ is not None:
        with contextlib.suppress(OSError, ValueError):
            faulthandler.enable(file=sys.__stderr__)
    try:
        return asyncio.run(
            run_controller(
                settings, args.filename or [DEFAULT_SPECS], once=args.once, watch=not args.no_watch
            )
        )
    except KeyboardInterrupt:
        return 130


def cmd_operator(args: argparse.Namespace) -> int:
    """``driftmend operator``: kopf over the driftmend.dev CRDs, with this controller behind."""
    private_umask()  # the state directory's files are the controller's only
    import kopf

    from driftmend.operator import runtime

    options = runtime.OperatorOptions(
        namespaces=args.namespaces or (),
        all_namespaces=args.all_namespaces or not args.namespaces,
        liveness=args.liveness,
        leader_election=not args.no_leader_election,
        webhook=not args.no_webhook,
        webhook_managed=not args.no_webhook_config,
        webhook_addr=args.webhook_addr,
        webhook_port=args.webhook_port,
        webhook_host=args.webhook_host,
        webhook_cert_dir=args.webhook_cert_dir,
    )
    runtime.preset = (_settings(args), options)
    import driftmend.operator.handlers  # noqa: F401  (registers the handlers with kopf)

    if not faulthandler.is_enabled() and sys.__stderr__ is not None:
        with contextlib.suppress(OSError, ValueError):
            faulthandler.enable(file=sys.__stderr__)
    try:
        asyncio.run(
            kopf.operator(
                clusterwide=options.all_namespaces,
                namespaces=list(options.namespaces),
                liveness_endpoint=options.liveness,
                standalone=True,
            )
        )
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_chaos(args: argparse.Namespace) -> int:
    """``driftmend chaos SCENARIO``: break the demo stack in one of the known ways."""
    private_umask()  # the state directory's files are the controller's only
    from driftmend.chaos import run_chaos

    return asyncio.run(
        run_chaos(args.scenario, _settings(args), args.filename or [DEFAULT_SPECS], stop=args.stop)
    )


def cmd_down(args: argparse.Namespace) -> int:
    """``driftmend down``: stop the controller running on the state directory, then every
    process the ``process`` runtime supervises."""
    private_umask()  # the state directory's files are the controller's only
    from driftmend.app import down

    return asyncio.run(
        down(
            _settings(args),
            args.filename or [DEFAULT_SPECS],
            controller_timeout=args.controller_timeout,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="driftmend", description="A desired-state controller that heals a running stack."
    )
    parser.add_argument("--version", action="version", version=f"driftmend {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def state(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, help="where state lives (default .driftmend/)")
        p.add_argument(
            "--db-path", type=Path, help="the SQLite store (default <state-dir>/driftmend.db)"
        )

    p = sub.add_parser("validate", help="check spec files; exit 1 on any error")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("crds", help="print the CRDs generated from the models")
    p.add_argument("--write", metavar="DIR", help="write one file per CRD into DIR")
    p.set_defaults(func=cmd_crds)

    p = sub.add_parser("tools", help="list the tool catalogue")
    p.set_defaults(func=cmd_tools)

    p = sub.add_parser("signals", help="list the signals policies can watch")
    p.add_argument(
        "kind",
        nargs="?",
        choices=["Container", "PostgresDatabase", "RedisCache"],
        help="only this kind's signals",
    )
    p.set_defaults(func=cmd_signals)

    p = sub.add_parser("run", help="run the controller")
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        help=f"spec file or directory (default {DEFAULT_SPECS})",
    )
    p.add_argument("--once", action="store_true", help="reconcile every resource once, then exit")
    p.add_argument("--dry-run", action="store_true", default=None, help="record plans, run nothing")
    p.add_argument(
        "--no-watch", action="store_true", help="do not reload the spec files when they change"
    )
    p.add_argument("--http-host")
    p.add_argument("--http-port", type=int)
    p.add_argument("--resync-period", type=_seconds)
    p.add_argument("--workers", type=int)
    state(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "operator", help="run as a Kubernetes operator over the driftmend.dev custom resources"
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", dest="namespaces", help="watch this namespace"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch them all")
    p.add_argument(
        "--liveness", metavar="URL", help="kopf's health endpoint, e.g. http://0.0.0.0:8081/healthz"
    )
    p.add_argument(
        "--no-leader-election",
        action="store_true",
        help="act at once, without the Lease (one replica only)",
    )
    p.add_argument("--lease-name", dest="leader_lease_name", help="default driftmend-leader")
    p.add_argument(
        "--lease-namespace", dest="leader_namespace", help="default: $POD_NAMESPACE, else default"
    )
    p.add_argument(
        "--identity", dest="leader_identity", help="this replica's name in the Lease ($POD_NAME)"
    )
    p.add_argument("--no-webhook", action="store_true", help="serve no admission webhook")
    p.add_argument(
        "--no-webhook-config",
        action="store_true",
        help="serve the webhook but leave its ValidatingWebhookConfiguration to you",
    )
    p.add_argument("--webhook-addr", default="0.0.0.0")
    p.add_argument("--webhook-port", type=int, default=9443)
    p.add_argument("--webhook-host", help="the name the API server calls the webhook by")
    p.add_argument(
        "--webhook-cert-dir", type=Path, help="tls.crt, tls.key and ca.crt (else self-signed)"
    )
    p.add_argument("--http-host")
    p.add_argument("--http-port", type=int)
    state(p)
    p.set_defaults(func=cmd_operator)

    p = sub.add_parser("get", help="resources with their observed state and last fix")
    p.add_argument("kind", nargs="?")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    state(p)
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("chaos", help="break the demo stack in a known way")
    from driftmend.chaos import SCENARIOS

    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--stop", action="store_true", help="undo the fault")
    p.add_argument("-f", "--filename", action="append")
    state(p)
    p.set_defaults(func=cmd_chaos)

    from driftmend.mcp.cli import add_mcp_parser

    add_mcp_parser(sub)

    from driftmend.eval import add_eval_parser

    add_eval_parser(sub)

    p = sub.add_parser("down", help="stop the supervised processes of the demo stack")
    p.add_argument("-f", "--filename", action="append")
    p.add_argument(
        "--controller-timeout",
        type=_seconds,
        default=30.0,
        help="how long a running controller may take to stop before down gives up (default 30)",
    )
    state(p)
    p.set_defaults(func=cmd_down)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``driftmend`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per probe is noise
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `driftmend get | head` ends quietly
    try:
        return int(args.func(args))
    except SettingError as exc:
        for line in str(exc).splitlines():
            print(f"driftmend: {line}", file=sys.stderr)
        return EXIT_USAGE
    except DriftmendError as exc:  # the last line of defence: one line, never a traceback
        print(f"driftmend: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except (ValidationError, PydanticSettingsError) as exc:
        # Subcommands that build Settings themselves (mcp, eval): the same one-line report.
        if isinstance(exc, ValidationError) and exc.title != Settings.__name__:
            raise  # a bug, not bad input: its traceback is what a maintainer needs
        for line in str(setting_error(exc)).splitlines():
            print(f"driftmend: {line}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
