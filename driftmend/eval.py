"""``driftmend eval``: how well a planner heals the demo stack, scored by whether fixes worked.

Stage: outside the loop, a harness around it (like ``bench/``). For a chosen planner it
starts a private copy of the demo stack (the example specs on free ports, state in a new
temporary directory) and one controller, then for each scenario of ``driftmend chaos``:

1. arms the policies with ``escalate: {planner, mode: auto, when: always}``, so the
   controller asks the planner instead of running the rules' remedies, and the guard, act
   and verify are the production ones;
2. injects the fault, and waits for the planner's outcome on the target resource: a
   finished fix, or an escalation that ended without one (no plan, rejected, ...);
3. scores it independently of the controller's own verification: the fix *worked* when the
   target resource is in sync with its spec and its original policies right after it;
4. reverts the fault and lets the original rules heal what is left, before the next one.

It reports per scenario and overall: verified-fix rate, time to recover (from injection),
steps, tokens and the cost estimate, as JSON (``--out``) and a short table. It scores what
the fix did, never how the explanation reads.

The replay planner needs no model: with no ``--replay-file`` it replays ``DEFAULT_REPLAYS``,
the plans a good operator would write, which is the baseline to compare a model with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftmend.chaos import SCENARIOS, Stack, inject, revert
from driftmend.diff import diff
from driftmend.errors import DriftmendError
from driftmend.eval_report import EvalReport, ScenarioResult
from driftmend.model import Health
from driftmend.planners.base import Planner
from driftmend.planners.factory import PLANNERS, build_planner, unavailable_reason
from driftmend.planners.replay import Recorded, ReplayPlanner
from driftmend.settings import Settings
from driftmend.spec import Escalate, HealingPolicy, Loaded, LoadResult, Resource
from driftmend.tools.base import Catalogue, Effect

# The report types lived here before ``driftmend.eval_report``; still importable from here.
__all__ = [
    "DEFAULT_REPLAYS",
    "EvalOptions",
    "EvalReport",
    "ScenarioResult",
    "add_eval_parser",
    "armed",
    "cmd_eval",
    "make_planner",
    "private_stack",
    "run_eval",
    "runnable",
]

log = logging.getLogger("driftmend.eval")

DEFAULT_SPECS = Path("manifests/examples/local")
# The ports of the example specs, swapped for free ones in the private copy.
EXAMPLE_PORTS = ("8000", "55432", "56379")
# Which declared resource each scenario breaks (a ``chaos.Stack`` field).
TARGET = {
    "app-crash": "app",
    "app-cpu-burn": "app",
    "app-memory-leak": "app",
    "pool-exhaustion": "db",
    "long-queries": "db",
    "redis-memory-full": "cache",
    "workload-bad-image": "workload",
    "workload-config-error": "workload",
}

# The plans an operator would record for each scenario: the replay baseline.
_KIND = {
    "app": "Container/*",
    "db": "PostgresDatabase/*",
    "cache": "RedisCache/*",
    "workload": "Container/*",
}
_Steps = list[dict[str, Any]]
_RECORDED: tuple[tuple[str, str, _Steps], ...] = (
    ("app-crash", "the app exited: restart it", [{"tool": "container_restart"}]),
    ("app-cpu-burn", "a CPU burn with no traffic: restart", [{"tool": "container_restart"}]),
    ("app-memory-leak", "memory grows to the limit: restart", [{"tool": "container_restart"}]),
    (
        "pool-exhaustion",
        "sessions idle in a transaction hold every slot: end them",
        [
            {
                "tool": "pg_terminate_queries",
                "params": {
                    "min_duration_seconds": 2,
                    "states": ["idle in transaction", "idle in transaction (aborted)"],
                },
            }
        ],
    ),
    (
        "long-queries",
        "queries running for minutes and the transaction holding their lock: end them",
        [
            {
                "tool": "pg_terminate_queries",
                "params": {
                    "min_duration_seconds": 10,
                    "states": ["active", "idle in transaction"],
                },
            }
        ],
    ),
    (
        "redis-memory-full",
        "a full cache under noeviction: return memory and evict",
        [
            {"tool": "redis_memory_purge"},
            {"tool": "redis_set_policy", "params": {"policy": "allkeys-lru"}},
        ],
    ),
    (
        "workload-bad-image",
        "the new revision's image cannot be pulled and the rollout stalled: roll back",
        [{"tool": "container_rollback"}],
    ),
    (
        "workload-config-error",
        "the new revision reads a Secret that does not exist: roll back to the one that ran",
        [{"tool": "container_rollback"}],
    ),
)
DEFAULT_REPLAYS: tuple[Recorded, ...] = tuple(
    Recorded(steps=tuple(steps), reasoning=why, scenario=scenario, key=_KIND[TARGET[scenario]])
    for scenario, why, steps in _RECORDED
)


# --- the private stack ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_stack(specs: Path, root: Path) -> tuple[Path, Path]:
    """Copy the YAML of ``specs`` (a folder, or one file) under ``root`` with the example
    ports swapped for free ones; returns (specs dir, state dir). ``root`` is made 755: PostgreSQL runs as the
    ``postgres`` user and must reach its data directory."""
    os.chmod(root, 0o755)
    out = root / "specs"
    out.mkdir()
    ports = {old: str(_free_port()) for old in EXAMPLE_PORTS}
    for src in [specs] if specs.is_file() else sorted(specs.glob("*.y*ml")):
        text = src.read_text(encoding="utf-8")
        for old, new in ports.items():
            text = text.replace(old, new)
        (out / src.name).write_text(text, encoding="utf-8")
    return out, root / "state"


def armed(
    result: LoadResult, planner: str, catalogue: Catalogue, *, approve: bool = False
) -> LoadResult:
    """``result`` with every policy escalating to ``planner`` on every drift, in auto mode;
    with ``approve``, destructive steps need no operator (``approval: auto``).

    The allowlist of each is every tool that some policy of its kind names, plus the read
    tools of the kind: whichever policy the controller escalates under, the planner gets
    the remedies the operator declared for that kind of resource, and only those.
    """
    tools: dict[str, set[str]] = {}
    for pol in result.policies:
        kind = pol.spec.selector.kind
        reads = {t.name for t in catalogue.for_kind(kind) if t.effect is Effect.READ}
        tools.setdefault(kind, set()).update(pol.spec.allowed_tools() | reads)
    docs = []
    for loaded in result.documents:
        doc = loaded.doc
        if isinstance(doc, HealingPolicy):
            escalate = Escalate.model_validate(
                {
                    "planner": planner,
                    "mode": "auto",
                    "when": "always",
                    "allowedTools": sorted(tools[doc.spec.selector.kind]),
                    # The eval measures the planner, not the production budget on LLM plans.
                    "attempts": {"max": 1000, "window": "1h"},
                }
            )
            update: dict[str, Any] = {"escalate": escalate}
            if approve:
                # --approve: the eval is the operator who approves a destructive step (a
                # rollback); the guard still holds the plan to the allowlist and the caps.
                update["approval"] = "auto"
            doc = doc.model_copy(update={"spec": doc.spec.model_copy(update=update)})
        docs.append(Loaded(doc, loaded.file, loaded.index))
    return LoadResult(docs, list(result.issues))


# --- running it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and where."""

    planner: str = "replay"
    scenarios: tuple[str, ...] | None = None  # None: every scenario the stack can run
    specs: Path = DEFAULT_SPECS
    replay_file: Path | None = None
    deadline_s: float = 90.0  # for the planner's outcome, and again for the stack to heal
    approve: bool = False  # approve destructive steps; else they wait, scored "pending"
    keep: bool = False  # keep the temporary directory (its store holds every exchange)


def make_planner(options: EvalOptions, settings: Settings) -> Planner:
    """The planner under evaluation; ``DriftmendError`` naming what is missing otherwise."""
    if options.planner == "replay":
        if options.replay_file is not None:
            return ReplayPlanner.from_file(options.replay_file)
        if settings.replay_file is not None:
            return ReplayPlanner.from_file(settings.replay_file)
        return ReplayPlanner(DEFAULT_REPLAYS)
    planner = build_planner(options.planner, settings)
    if planner is None:
        raise DriftmendError(unavailable_reason(options.planner, settings) or "unavailable")
    return planner


async def run_eval(
    options: EvalOptions, settings: Settings, planner: Planner | None = None
) -> EvalReport:
    """Evaluate ``planner`` (default: made from ``options`` and ``settings``) on the stack."""
    from driftmend.app import build_controller
    from driftmend.spec import load_paths
    from driftmend.tools.catalogue import default_catalogue
    from driftmend.validate import tool_check

    unknown = [s for s in options.scenarios or () if s not in SCENARIOS]
    if unknown:
        raise DriftmendError(
            f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
        )
    own_planner = planner is None
    planner = planner or make_planner(options, settings)
    root = Path(tempfile.mkdtemp(prefix="driftmend-eval-"))
    started, t0 = time.time(), time.monotonic()
    results: list[ScenarioResult] = []
    try:
        specs, state = private_stack(options.specs, root)
        original = load_paths([specs], tool_check(default_catalogue()))
        if original.errors:
            raise DriftmendError("; ".join(str(e) for e in original.errors))
        run_settings = settings.model_copy(
            update={"state_dir": state, "db_path": None, "dry_run": False}
        )
        controller = build_controller(run_settings)
        controller.escalator.planners[planner.name] = planner
        controller.apply(original)
        await controller.start()
        try:
            await _healthy(controller, options.deadline_s)
            for scenario in options.scenarios or runnable(original):
                log.info("eval %s: %s", planner.name, scenario)
                if isinstance(planner, ReplayPlanner):
                    planner.scenario = scenario
                results.append(
                    await _scenario(
                        controller, scenario, planner.name, original, run_settings, options
                    )
                )
        finally:
            await controller.stop()
            await _down(run_settings, original)
            controller.store.close()
    finally:
        if own_planner:
            await planner.close()
        if options.keep:
            log.warning("eval state kept in %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return EvalReport(
        planner.name,
        getattr(planner, "model", planner.name),
        started,
        time.monotonic() - t0,
        results,
        approved=options.approve,
    )


def runnable(result: LoadResult) -> tuple[str, ...]:
    """The scenarios whose target the declared stack has: the local ones for the demo stack,
    the ``workload-*`` ones for a Container on the kubernetes runtime."""
    stack = Stack.of(result.resources)
    return tuple(s for s in SCENARIOS if getattr(stack, TARGET[s]) is not None)


async def _scenario(
    controller: Any,
    scenario: str,
    planner: str,
    original: LoadResult,
    settings: Settings,
    options: EvalOptions,
) -> ScenarioResult:
    stack = Stack.of(list(controller.resources.values()))
    target: Resource | None = getattr(stack, TARGET[scenario])
    if target is None:
        return ScenarioResult(scenario, "-", outcome="error", detail="the specs declare no target")
    key = target.key
    result = ScenarioResult(scenario, key)
    store = controller.store
    last_fix = max((f["id"] for f in store.fix_records.fixes(limit=1)), default=0)
    last_llm = max((i["id"] for i in store.llm_records.llm_interactions(limit=1)), default=0)
    controller.apply(armed(original, planner, controller.catalogue, approve=options.approve))
    injected = time.time()
    try:
        detail = await inject(scenario, stack, settings)
        log.info("%s", detail)
        await _outcome(
            controller, planner, key, last_fix, last_llm, injected, result, options.deadline_s
        )
    except (DriftmendError, OSError) as exc:
        result.outcome, result.detail = "error", f"{type(exc).__name__}: {exc}"
    finally:
        for item in store.llm_records.llm_interactions(limit=1000):
            if item["id"] > last_llm:
                result.llm_calls += 1
                result.tokens_in += int(item["tokens_in"] or 0)
                result.tokens_out += int(item["tokens_out"] or 0)
                result.cost_usd += float(item.get("cost_usd") or 0.0)
                result.latency_s += float(item["latency_s"] or 0.0)
        try:
            await revert(scenario, stack, settings)
        except (DriftmendError, OSError) as exc:
            log.warning("could not revert %s: %s", scenario, exc)
        # The original rules heal what the planner left broken, before the next scenario.
        controller.apply(original)
        for k in controller.resources:
            store.resource_records.set_needs_operator(k, None)
            controller.queue.add(k)
        try:
            await _healthy(controller, options.deadline_s)
        except DriftmendError as exc:
            result.detail = (result.detail + "; " if result.detail else "") + str(exc)
    return result


async def _outcome(
    controller: Any,
    planner: str,
    key: str,
    last_fix: int,
    last_llm: int,
    injected: float,
    result: ScenarioResult,
    deadline_s: float,
) -> None:
    """Wait for the planner's outcome on ``key`` and score it into ``result``."""
    store = controller.store
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        fix = next(
            (
                f
                for f in store.fix_records.fixes(key=key, limit=5)
                if f["id"] > last_fix and f["status"] == "done"
            ),
            None,
        )
        if fix is not None:
            full = store.fix_records.fix(fix["id"]) or fix
            result.steps = [s["tool"] for s in full.get("steps") or []]
            result.controller_verified = bool(full.get("verified"))
            # The eval's own look, whatever the controller's verification concluded; and
            # only a fix of the planner under test counts.
            seen = await _in_sync(controller, key) if full.get("source") == planner else None
            result.fixed = seen is not None
            result.outcome = "fixed" if result.fixed else "not-fixed"
            if seen is not None:
                result.in_sync_after_s = round(seen - injected, 3)
                recovered = full.get("recovered_at")
                result.time_to_recover_s = round(
                    (float(recovered) if recovered is not None else seen) - injected, 3
                )
            result.detail = str(full.get("message") or "")
            return
        ended = next(
            (
                i
                for i in store.llm_records.llm_interactions(key=key, limit=5)
                if i["id"] > last_llm and i.get("decision") not in (None, "admitted")
            ),
            None,
        )
        if ended is not None:
            plan = ended.get("plan") or {}
            result.steps = [s["tool"] for s in plan.get("steps") or []]
            result.outcome = str(ended["decision"])
            result.detail = str(ended.get("reason") or ended.get("error") or "")
            return
        await asyncio.sleep(0.25)
    result.outcome, result.detail = "timeout", f"no outcome within {deadline_s:g}s"


async def _in_sync(controller: Any, key: str, within_s: float = 10.0) -> float | None:
    """The eval's own check: when ``key`` was seen in sync with its spec and policies (the
    ``for`` windows not counted: a condition that holds at all is not in sync), or None."""
    resource = controller.resources[key]
    end = time.monotonic() + within_s
    while True:
        obs = await controller.observer.observe(resource)
        if diff(resource, controller.policies, obs, {}).in_sync:
            return time.time()
        if time.monotonic() >= end:
            return None
        await asyncio.sleep(0.25)


async def _healthy(controller: Any, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        rows = [controller.store.resource_records.resource(k) or {} for k in controller.resources]
        if rows and all(r.get("health") == Health.HEALTHY for r in rows):
            return
        await asyncio.sleep(0.25)
    sick = [
        k
        for k in controller.resources
        if (controller.store.resource_records.resource(k) or {}).get("health") != Health.HEALTHY
    ]
    raise DriftmendError(f"the stack is not healthy after {deadline_s:g}s: {', '.join(sick)}")


async def _down(settings: Settings, result: LoadResult) -> None:
    from driftmend.drivers.runtimes import RuntimeRouter
    from driftmend.spec import Container

    runtime = RuntimeRouter.for_state_dir(settings.state_dir, Path.cwd(), settings)
    try:
        for res in result.resources:
            if isinstance(res, Container):
                try:
                    await runtime.down(res)
                except DriftmendError as exc:
                    log.warning("could not stop %s: %s", res.key, exc)
    finally:
        await runtime.close()


# --- command line -------------------------------------------------------------------------


def add_eval_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``driftmend eval`` to the CLI's subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "eval",
        help="score a planner on the demo stack's failure scenarios",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--planner", choices=PLANNERS, default="replay", help="default: replay")
    p.add_argument(
        "-s", "--scenario", action="append", choices=SCENARIOS,
        help="a scenario to run (repeatable); default: every one the stack can run "
        "(the workload-* ones for a web Container on the kubernetes runtime)",
    )  # fmt: skip
    p.add_argument("-f", "--specs", default=str(DEFAULT_SPECS), help="the stack to copy")
    p.add_argument("--replay-file", help="recorded plans for --planner replay")
    p.add_argument("--out", help="the JSON report (default: eval-<planner>-<time>.json)")
    p.add_argument("--deadline", type=float, default=90.0, help="seconds per wait (default 90)")
    p.add_argument("--keep", action="store_true", help="keep the temporary stack directory")
    p.add_argument(
        "--approve", action="store_true",
        help="approve the planner's destructive steps (a rollback) as an operator would; "
        "without it they wait and score as pending",
    )  # fmt: skip
    p.add_argument(
        "--min-fix-rate", type=float, default=0.0,
        help="exit 1 when the verified-fix rate is below this (0..1)",
    )  # fmt: skip
    p.set_defaults(func=cmd_eval)
    return p


def cmd_eval(args: argparse.Namespace) -> int:
    """``driftmend eval``: run the scenarios, print the table, write the JSON report."""
    options = EvalOptions(
        planner=args.planner,
        scenarios=tuple(args.scenario) if args.scenario else None,
        specs=Path(args.specs),
        replay_file=Path(args.replay_file) if args.replay_file else None,
        deadline_s=args.deadline,
        keep=args.keep,
        approve=args.approve,
    )
    settings = Settings()
    try:
        report = asyncio.run(run_eval(options, settings))
    except DriftmendError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out or f"eval-{options.planner}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    print(report.table())
    print(f"report: {out}")
    return 0 if report.overall()["verified_fix_rate"] >= args.min_fix_rate else 1
