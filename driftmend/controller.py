"""The controller: desired state, events, the work queue, workers and resync.

Stage: the manager of docs/ARCHITECTURE.md, as controller-runtime's manager or kopf's
operator. It takes a new desired state from a spec source (``apply``), turns runtime events
and the resync ticker into keys on the queue, and runs workers that hand each key to the
``Reconciler`` under the resource's lock. It wires the parts together (observer, admission,
executor, escalation, operations) and owns nothing else: every decision about a resource is
the reconciler's, every operator action is ``operations``'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from driftmend.act import DirectInvoker, ToolInvoker
from driftmend.admission import Admission
from driftmend.desired import DesiredState
from driftmend.drivers.base import ContainerRuntime, PostgresDriver, RedisDriver
from driftmend.errors import StoreError
from driftmend.escalation.asking import Escalator
from driftmend.escalation.handling import EscalationHandler
from driftmend.execution import Executor
from driftmend.guard import ToolFacts
from driftmend.logs import LogAccumulator
from driftmend.metrics import Metrics
from driftmend.model import ReconcileResult
from driftmend.observer import Observer
from driftmend.operations import Operations
from driftmend.planners.base import Planner
from driftmend.queue import WorkQueue
from driftmend.reconciler import Reconciler
from driftmend.settings import Settings
from driftmend.spec import HealingPolicy, LoadResult, Resource
from driftmend.store import Fix, Store
from driftmend.tools.base import Catalogue, ToolContext
from driftmend.tools.catalogue import tool_facts

log = logging.getLogger("driftmend.controller")

__all__ = ["Controller"]

CRASHED = "interrupted: the controller stopped (crashed or killed) before this fix finished"
SHUT_DOWN = "interrupted: the controller was shut down while this fix ran"


class Controller:
    """Owns the desired state, the queue and the workers; everything with I/O is passed in.

    ``clock`` and ``sleep`` are the time the passes see (verification polls with them), so
    unit tests run a whole fix, verification timeout included, without waiting.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        runtime: ContainerRuntime,
        postgres: PostgresDriver,
        redis: RedisDriver,
        logs: LogAccumulator,
        store: Store,
        metrics: Metrics,
        catalogue: Catalogue,
        invoker: ToolInvoker | None = None,
        planners: Mapping[str, Planner] | None = None,
        unconfigured_planners: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.postgres = postgres
        self.redis = redis
        self.logs = logs
        self.store = store
        self.metrics = metrics
        self.catalogue = catalogue
        self.clock = clock
        self.desired = DesiredState()
        self.tool_context = ToolContext(runtime, postgres, redis, logs, self.desired.resources)
        self.invoker: ToolInvoker = invoker or DirectInvoker(catalogue, self.tool_context)
        self.queue = WorkQueue(backoff_base=settings.backoff_base, backoff_cap=settings.backoff_cap)
        self._tasks: list[asyncio.Task[Any]] = []
        self._busy = 0
        # One pass at a time per resource: workers are kept apart by the queue, but operator
        # actions (Fix now, approve) come from the dashboard and must wait their turn.
        self._locks: dict[str, asyncio.Lock] = {}
        self.observer = Observer(
            desired=self.desired, runtime=runtime, postgres=postgres, redis=redis, logs=logs,
            tool_context=self.tool_context,
        )  # fmt: skip
        self.escalator = Escalator(
            planners=planners or {},
            unconfigured=unconfigured_planners,
            store=store,
            metrics=metrics,
            catalogue=catalogue,
            invoker=lambda: self.invoker,
            logs=logs,
            clock=clock,
            tokens_per_day=settings.llm_tokens_per_day,
            deadline=settings.llm_deadline,
        )
        admission = Admission(
            store=store, metrics=metrics, tool_facts=self.tool_facts, dry_run=settings.dry_run
        )
        self.executor = executor = Executor(
            desired=self.desired, store=store, metrics=metrics, observer=self.observer,
            catalogue=catalogue, invoker=lambda: self.invoker, clock=clock,
            after_fix=self._after_fix, sleep=sleep,
        )  # fmt: skip
        escalation = EscalationHandler(
            store=store, escalator=self.escalator, admission=admission, executor=executor,
        )  # fmt: skip
        self.reconciler = Reconciler(
            desired=self.desired, runtime=runtime, observer=self.observer, store=store,
            metrics=metrics, admission=admission, executor=executor, escalation=escalation,
            backoff=self.queue, resync_period=settings.resync_period,
            record_interval=settings.record_interval, clock=clock,
        )  # fmt: skip
        self.operations = Operations(
            desired=self.desired, store=store, queue=self.queue, reconciler=self.reconciler,
            reconcile=self.reconcile, lock=self.lock, observer=self.observer,
            admission=admission, executor=executor, escalation=escalation, catalogue=catalogue,
            logs=logs, clock=clock, standby=lambda: self.standby,
        )  # fmt: skip
        # Set by an operator replica that does not lead: operator actions are refused with
        # it, since only the leader may act (driftmend.operator.runtime).
        self.standby: str | None = None
        self.runtime.set_event_sink(self.on_event)
        store.on_writable(metrics.set_store_writable)
        self.runtime.set_start_failure_sink(metrics.replica_start_failed)

    @property
    def resources(self) -> dict[str, Resource]:
        """The declared resources by key (the live map: apply updates it in place)."""
        return self.desired.resources

    @property
    def policies(self) -> list[HealingPolicy]:
        """The healing policies in force."""
        return self.desired.policies

    # --- desired state and events --------------------------------------------------------

    def apply(self, result: LoadResult) -> None:
        """Take a new desired state from a spec source; queue what changed or went away."""
        new = {r.key: r for r in result.resources}
        resources = self.desired.resources
        for key in set(resources) - set(new):
            log.info("resource removed: %s", key)
            resources.pop(key, None)
            self.queue.discard(key)
            self.reconciler.forget(key)
            self.store.resource_records.remove_resource(key)
            self.metrics.forget(key)
        resources.update(new)
        self.desired.policies[:] = list(result.policies)
        for key in resources:
            self.queue.add(key)

    def on_event(self, key: str, reason: str) -> None:
        """A runtime saw something (an exit, a health change): reconcile now, and dependents."""
        self.reconciler.event_at[key] = self.clock()
        log.info("event %s on %s", reason, key)
        self.observer.changed(key)  # a verification waiting on it looks again now
        # Ahead of the resync's keys: at 1,000 resources an exit must not wait its turn.
        self.queue.add(key, urgent=True)
        for dep in self.observer.dependents(key):
            self.queue.add(dep, urgent=True)

    def tool_facts(self) -> Mapping[str, ToolFacts]:
        """What the guard knows of every tool: the catalogue's, plus external MCP tools."""
        external = getattr(self.invoker, "tool_facts", None)
        return dict(external()) if callable(external) else dict(tool_facts(self.catalogue))

    def lock(self, key: str) -> asyncio.Lock:
        """The lock one pass or operator action on ``key`` holds."""
        return self._locks.setdefault(key, asyncio.Lock())

    async def reconcile(self, key: str, *, by_operator: bool = False) -> ReconcileResult:
        """One pass over ``key`` under its lock (see ``Reconciler.reconcile``). Never raises."""
        async with self.lock(key):
            return await self.reconciler.reconcile(key, by_operator=by_operator)

    async def reconcile_all(self) -> list[ReconcileResult]:
        """Reconcile every declared resource once, in order (``run --once``)."""
        return [await self.reconcile(key) for key in sorted(self.desired.resources)]

    def _after_fix(self, key: str, fixed: bool) -> None:
        # A fix ends the diff's timing of the old fault; a good one ends the backoff too.
        self.reconciler.fix_ended(key)
        if fixed:
            self.queue.forget(key)

    # --- running -------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            # A pass in sync may never wait on anything: without this, workers would run
            # passes back to back and starve HTTP, events and timers (issue 15).
            await asyncio.sleep(0)
            self._busy += 1
            self.metrics.set_workers_busy(self._busy)
            requeue: float | None = 5.0
            try:
                requeue = (await self.reconcile(key)).requeue_after
            except Exception:  # the store itself failing: keep the worker, try again later
                log.exception("reconcile of %s failed outside its pass", key)
            finally:
                self._busy -= 1
                self.metrics.set_workers_busy(self._busy)
                self.queue.done(key)
                self.metrics.set_queue_depth(len(self.queue))
            if requeue is not None:
                self.queue.add(key, requeue)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_period)
            for key in list(self.desired.resources):
                self.queue.add(key)

    async def _upkeep(self) -> None:
        """Keep the store within its retention and measure it: at start (a store an older
        driftmend let grow shrinks at once), then every ``retention_interval``. In a thread:
        deleting a long history must not hold up the passes."""
        while True:
            try:
                pruned = await asyncio.to_thread(self.store.prune, self.clock())
                size = await asyncio.to_thread(self.store.size_bytes)
            except (StoreError, OSError) as exc:
                log.warning("could not prune or measure the store: %s", exc)
            except Exception:  # a bug here must not end the upkeep for good
                log.exception("store upkeep failed")
            else:
                self.metrics.store_upkept(size, pruned)
                if pruned:
                    rows = ", ".join(f"{n} from {t}" for t, n in sorted(pruned.items()))
                    log.info("store retention deleted %s rows", rows)
            await asyncio.sleep(self.settings.retention_interval)

    async def start(self) -> None:
        """Start the runtime watchers, the log reader, the resync ticker and the workers;
        first resume the fixes an earlier controller left unfinished (``_resume``)."""
        try:
            unfinished = self._unfinished_fixes()
        except StoreError as exc:
            # A store that cannot be written must not keep the controller from healing.
            log.warning("could not read the fixes an earlier controller left: %s", exc)
            unfinished = {}
        await self.runtime.start()
        self.reconciler.start_afresh()  # a new term of an operator replica: read afresh
        discover = getattr(self.invoker, "discover", None)
        if callable(discover):  # external MCP servers: their tools join the guard's facts
            for server, status in (await discover()).items():
                log.info("external MCP server %s: %s", server, status)
        log.info("%s", self.escalator.describe())
        for key, ids in unfinished.items():
            # Taken now, before any worker exists: no pass on the resource acts before the
            # resume has closed its fix. Free, so taking it does not wait.
            lock = self.lock(key)
            await lock.acquire()
            self._tasks.append(
                asyncio.create_task(self._resume(key, ids, lock), name=f"resume {key}")
            )
        self._tasks.append(
            asyncio.create_task(self.logs.run(self.settings.log_poll_interval), name="logs")
        )
        self._tasks.append(asyncio.create_task(self._resync(), name="resync"))
        self._tasks.append(asyncio.create_task(self._upkeep(), name="store upkeep"))
        for i in range(self.settings.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"worker-{i}"))

    def _unfinished_fixes(self) -> dict[str, list[int]]:
        """Mark what a dead controller left running as interrupted; the interrupted fixes to
        resume, by resource. Those of a resource no longer declared are closed abandoned."""
        interrupted = self.store.fix_records.mark_interrupted(self.clock(), CRASHED)
        if interrupted:
            log.warning(
                "%d fix(es) were cut short when the previous controller died; each is resumed",
                interrupted,
            )
        unfinished = self.store.fix_records.unjudged_interrupted()
        for key in [k for k in unfinished if k not in self.desired.resources]:
            self.store.fix_records.close_interrupted(
                unfinished.pop(key), False, "abandoned: its resource is no longer declared"
            )
        return unfinished

    async def _resume(self, key: str, ids: list[int], lock: asyncio.Lock) -> None:
        """Resume the newest unfinished fix of ``key``, holding its lock (taken by the
        caller); older ones, if any, were overtaken by it and are closed abandoned."""
        try:
            *older, newest = ids
            if older:
                note = f"abandoned: fix {newest} of the same resource was resumed instead"
                self.store.fix_records.close_interrupted(older, False, note)
            fix, resource = self.store.fix_records.fix(newest), self.desired.resources.get(key)
            if fix is None or resource is None:
                return
            not_now = self._not_resumed(fix)
            if not_now is not None:
                note = f"abandoned: not resumed ({not_now})"
                self.store.fix_records.close_interrupted([newest], False, note)
                log.warning("fix %d of %s not resumed: %s", newest, key, not_now)
                return
            how = "shut down" if fix.message.startswith(SHUT_DOWN) else "crashed or killed"
            note = f"resumed after the controller that began it stopped ({how})"
            run = await self.executor.resume(resource, fix, note)
            if run is not None:
                log.info("fix %d of %s %s: %s", newest, key, run.outcome.value, run.message)
        except StoreError as exc:
            # Left interrupted (or running) in the store: the next start tries again.
            log.warning("could not resume the fixes %s of %s: %s", ids, key, exc)
        except Exception:  # a bug: the resource's passes must still get its lock
            log.exception("resuming the fixes %s of %s failed", ids, key)
        finally:
            lock.release()

    def _not_resumed(self, fix: Fix) -> str | None:
        """Why ``fix`` must not be resumed by this controller, or None."""
        if fix.dry_run:
            return "a dry run"
        if self.settings.dry_run:
            return "this controller runs dry: nothing may act"
        row = self.store.resource_records.resource(fix.key)
        if row is not None and row.paused:
            return "healing of the resource is paused"
        return None

    async def stop(self) -> None:
        """Stop workers and watchers; the supervised processes keep running."""
        self.queue.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # The workers are gone: a fix still open was cut short by this shutdown. Say so now
        # rather than leave it `running` until the next start.
        try:
            self.reconciler.flush_counts()
        except StoreError as exc:
            log.warning("could not write the counts of the last passes: %s", exc)
        try:
            closed = self.store.fix_records.mark_interrupted(self.clock(), SHUT_DOWN)
        except StoreError as exc:
            log.warning("could not close the fixes in flight: %s", exc)
        else:
            if closed:
                log.warning("%d fix(es) in flight were closed as interrupted", closed)
        close_invoker = getattr(self.invoker, "close", None)
        if callable(close_invoker):  # the MCP session the fixes shared
            await close_invoker()
        await self.runtime.close()
        # Passes open the files they attach (``Observer``), with or without the log task
        # running (``reconcile`` called directly, a pass finishing during shutdown).
        self.logs.close()
        await self.escalator.close()
        await self.postgres.close()
        await self.redis.close()
