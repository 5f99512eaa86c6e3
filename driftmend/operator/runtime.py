"""One operator replica: the controller, the Kubernetes source, the dashboard, and leadership.

Stage: the composition root for ``driftmend operator`` (as ``driftmend.app`` is for
``driftmend run``). kopf's handlers (``driftmend.operator.handlers``) feed the source; this
module owns everything else a replica runs.

Every replica hears every custom resource and serves the dashboard and ``/metrics``; only
the leader acts. On winning the Lease the leader lists every custom resource itself (so the
desired state is complete before the first pass: a fix left running by the previous leader
must not be judged against half a listing), starts the controller (which resumes what the old
leader left in flight) and the status publisher. A replica that loses the Lease stops acting
at once and exits, so the kubelet restarts it as a standby: a partitioned ex-leader that kept
on acting would be a second controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import uvicorn
from prometheus_client import CollectorRegistry

from driftmend.app import QuietServer, build_controller
from driftmend.controller import Controller
from driftmend.kube.client import KubeClient
from driftmend.kube.kubeconfig import login
from driftmend.kube.publisher import StatusPublisher
from driftmend.operator.certs import webhook_certs
from driftmend.ownership import Ownership, StateDirOwnedError, claim
from driftmend.settings import Settings
from driftmend.sources.kubernetes import PLURALS, KubernetesSource
from driftmend.spec.fields import GROUP, VERSION
from driftmend.validate import tool_check

log = logging.getLogger("driftmend.operator")

__all__ = ["OperatorOptions", "OperatorRuntime"]


@dataclass
class OperatorOptions:
    """How ``driftmend operator`` was asked to run (its command line, or the environment)."""

    namespaces: Sequence[str] = ()
    all_namespaces: bool = False
    liveness: str | None = None
    leader_election: bool = True
    webhook: bool = True
    webhook_managed: bool = True  # kopf creates and patches the ValidatingWebhookConfiguration
    webhook_addr: str = "0.0.0.0"
    webhook_port: int = 9443
    webhook_host: str | None = None
    webhook_cert_dir: Path | None = None

    @classmethod
    def from_env(cls) -> OperatorOptions:
        """Options for ``kopf run -m driftmend.operator.handlers``: ``DRIFTMEND_OPERATOR_*``."""
        env = os.environ
        namespaces = [n for n in env.get("DRIFTMEND_OPERATOR_NAMESPACES", "").split(",") if n]
        cert_dir = env.get("DRIFTMEND_OPERATOR_WEBHOOK_CERT_DIR")
        return cls(
            namespaces=namespaces,
            all_namespaces=not namespaces,
            leader_election=env.get("DRIFTMEND_OPERATOR_LEADER_ELECTION", "1") != "0",
            webhook=env.get("DRIFTMEND_OPERATOR_WEBHOOK", "1") != "0",
            webhook_managed=env.get("DRIFTMEND_OPERATOR_WEBHOOK_MANAGED", "1") != "0",
            webhook_addr=env.get("DRIFTMEND_OPERATOR_WEBHOOK_ADDR", "0.0.0.0"),
            webhook_port=int(env.get("DRIFTMEND_OPERATOR_WEBHOOK_PORT", "9443")),
            webhook_host=env.get("DRIFTMEND_OPERATOR_WEBHOOK_HOST") or None,
            webhook_cert_dir=Path(cert_dir) if cert_dir else None,
        )

    @property
    def watched(self) -> list[str | None]:
        """The namespaces to list on taking the lead (None: all of them)."""
        return [None] if self.all_namespaces or not self.namespaces else list(self.namespaces)


class OperatorRuntime:
    """A replica's parts and its leadership; built by ``driftmend operator`` or kopf's startup."""

    def __init__(
        self,
        settings: Settings,
        options: OperatorOptions,
        api: KubeClient,
        *,
        controller: Controller | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.api = api
        self.registry = registry or CollectorRegistry()
        self.controller = controller or build_controller(settings, self.registry)
        self.source = KubernetesSource(self.controller.apply, tool_check(self.controller.catalogue))
        self.publisher = StatusPublisher(source=self.source, store=self.controller.store, api=api)
        self.leading = False
        # The Lease and this replica's name on it: settings (POD_NAMESPACE, POD_NAME).
        self.lease_name = settings.leader_lease_name
        self.lease_namespace = settings.leader_namespace
        self.identity = settings.leader_identity or f"{socket.gethostname()}-{os.getpid()}"
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._owned: Ownership | None = None
        self._server: uvicorn.Server | None = None
        self._app: Any = None
        self.on_lost: Callable[[], None] = lambda: None

    async def start(self) -> None:
        """Serve HTTP, then campaign for the lead (or lead at once)."""
        self.controller.standby = (
            f"{self.identity} is a standby: only the leader of the Lease "
            f"{self.lease_namespace}/{self.lease_name} acts; try again on it"
        )
        await self._serve_http()
        if self.options.leader_election:
            self._tasks.append(asyncio.create_task(self._campaign(), name="leader-election"))
        else:  # its errors (a state dir owned by another controller) end the start
            await self.lead()

    async def _serve_http(self) -> None:
        from driftmend.dashboard.app import create_app

        self._app = create_app(
            self.controller.store, self.registry, self.controller.operations, self.settings
        )
        self._server = QuietServer(
            uvicorn.Config(
                self._app,
                host=self.settings.http_host,
                port=self.settings.http_port,
                log_level="warning",
                lifespan="off",
            )
        )
        self._tasks.append(asyncio.create_task(self._server.serve(), name="http"))

    async def _campaign(self) -> None:
        from driftmend.leader import HttpLeaseApi, LeaderElector

        elector = LeaderElector(
            HttpLeaseApi(self.api),
            name=self.lease_name,
            namespace=self.lease_namespace,
            identity=self.identity,
            lease_duration=self.settings.leader_lease_duration,
            renew_deadline=self.settings.leader_renew_deadline,
            retry_period=self.settings.leader_retry_period,
            metrics=self.controller.metrics,
        )
        self._elector = elector
        try:
            await elector.run(self.lead, self._lost)
        except Exception:
            # Taking the lead failed (the listing, the store): the elector has released
            # the Lease for a standby; this replica exits rather than linger half-started.
            log.exception("%s could not take the lead; exiting", self.identity)
            self.on_lost()

    async def _lost(self) -> None:
        elector = getattr(self, "_elector", None)
        if elector is not None and elector.released:
            return  # our own clean shutdown handed the Lease over: stop() does the rest
        log.error(
            "%s lost the lease %s/%s: stopping at once, to come back as a standby",
            self.identity,
            self.lease_namespace,
            self.lease_name,
        )
        self.leading = False
        self.controller.standby = f"{self.identity} lost the lead and is stopping"
        await self.controller.stop()
        self.on_lost()

    async def lead(self) -> None:
        """Become the acting replica: the state dir, a full listing, the controller, the
        status publisher."""
        await self._claim_state_dir()
        log.info("%s leads: listing the custom resources", self.identity)
        for namespace in self.options.watched:
            for plural in PLURALS.values():
                for body in await self.api.list_objects(GROUP, VERSION, plural, namespace):
                    self.source.put(body)
        self.source.flush()
        await self.controller.start()
        self.controller.standby = None
        self.leading = True
        self._tasks.append(asyncio.create_task(self.publisher.run(self._stop), name="status"))
        log.info(
            "%s acting: %d resources, %d policies",
            self.identity,
            len(self.controller.resources),
            len(self.controller.policies),
        )

    async def _claim_state_dir(self) -> None:
        """Own the state dir (its pid files name the supervised processes) before acting.

        Replicas on one machine may share it: a standby that wins the Lease waits here for
        the kernel to release the dead leader's lock, which also fences a leader that is not
        dead yet. Without leader election a second controller refuses at once, as ``run``.
        """
        said = False
        while True:
            try:
                self._owned = claim(self.settings.state_dir, what="an operator replica")
                return
            except StateDirOwnedError as exc:
                if not self.options.leader_election:
                    raise
                if not said:
                    log.warning("%s; waiting for it to let go", exc)
                    said = True
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Stop acting and serving; release the Lease so a standby takes over at once."""
        self._stop.set()
        elector = getattr(self, "_elector", None)
        if self._server is not None:
            from driftmend.dashboard.app import close_streams

            close_streams(self._app)
            self._server.should_exit = True
        if self.leading:
            self.leading = False
            await self.controller.stop()
        if elector is not None:
            with contextlib.suppress(Exception):
                await elector.release()
        # uvicorn closes its listening socket only on a clean exit, not on a cancel.
        http = next((t for t in self._tasks if t.get_name() == "http"), None)
        if http is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(http), timeout=5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.controller.store.close()
        await self.api.close()
        if self._owned is not None:
            self._owned.release()


# Set by ``driftmend operator`` before it starts kopf; ``kopf run`` leaves it None and the
# replica is configured from the environment.
preset: tuple[Settings, OperatorOptions] | None = None


def _webhook_host(settings: Settings, options: OperatorOptions) -> str:
    if options.webhook_host:
        return options.webhook_host
    if os.environ.get("KUBERNETES_SERVICE_HOST"):  # in a pod: the Service in front of us
        return f"driftmend-webhook.{settings.leader_namespace}.svc"
    return "127.0.0.1" if options.webhook_addr in ("0.0.0.0", "127.0.0.1") else options.webhook_addr


async def _no_webhook(_: Any) -> AsyncIterator[Any]:
    """An admission "server" that never listens: ``--no-webhook``. kopf refuses admission
    handlers with no server at all, and the handlers are registered once per process."""
    await asyncio.Event().wait()
    yield  # never reached: makes this an async generator, as kopf expects


def configure_kopf(
    kopf_settings: kopf.OperatorSettings, settings: Settings, options: OperatorOptions
) -> None:
    """kopf, the driftmend way: no peering (the Lease decides who acts, see
    docs/ARCHITECTURE.md), bookkeeping under driftmend.dev annotations, and the webhook."""
    kopf_settings.peering.standalone = True
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    kopf_settings.posting.level = logging.WARNING
    # One line per admission, and one per event of each object (a thousand at a start).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if not options.webhook:
        kopf_settings.admission.server = _no_webhook
        return
    host = _webhook_host(settings, options)
    certs = webhook_certs(
        options.webhook_cert_dir, settings.state_dir, [host, options.webhook_addr, "localhost"]
    )
    kopf_settings.admission.server = kopf.WebhookServer(
        addr=options.webhook_addr,
        port=options.webhook_port,
        host=host,
        certfile=certs.certfile,
        pkeyfile=certs.pkeyfile,
        cafile=certs.cafile,
    )
    if options.webhook_managed:
        kopf_settings.admission.managed = GROUP


async def replica_for_kopf(kopf_settings: kopf.OperatorSettings) -> OperatorRuntime:
    """kopf's startup: configure kopf, build this replica and start it."""
    settings, options = preset or (Settings(), OperatorOptions.from_env())
    configure_kopf(kopf_settings, settings, options)
    # The credentials kopf logs in with (in-cluster, else $KUBECONFIG), again on a 401.
    api = KubeClient(login(), login=login)
    replica = OperatorRuntime(settings, options, api)
    replica.on_lost = lambda: os.kill(os.getpid(), signal.SIGTERM)
    await replica.start()
    return replica
