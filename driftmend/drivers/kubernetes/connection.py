"""Reaching the cluster: lightkube clients for the API server and for metrics.k8s.io.

Stage: *observe* / *act*. The same order of places ``kubectl`` and kopf look in: a
kubeconfig named in the settings (``DRIFTMEND_KUBECONFIG``, optionally a context), else the
in-cluster service account, else ``$KUBECONFIG`` or ``~/.kube/config``. A configuration that
cannot be read is a ``PermanentError`` naming the setting to fix, raised for the Container
that needed it, never at start-up: a controller without a cluster runs its other resources.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
from lightkube import AsyncClient, ConfigError, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.config.models import Cluster, User

from driftmend.errors import PermanentError

FIELD_MANAGER = "driftmend"
TIMEOUT = httpx2.Timeout(10.0)


def load_config(kubeconfig: Path | None, context: str | None) -> SingleConfig:
    """The cluster, user and namespace to talk to (see the module's docstring)."""
    try:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        single = config.get(context_name=context)
        if single is None:
            raise ConfigError("no current-context: name one")
        return single
    except (ConfigError, OSError, KeyError, ValueError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "no in-cluster service account and"
        raise PermanentError(
            f"cannot reach Kubernetes: {where}: {exc}; set DRIFTMEND_KUBECONFIG (and "
            "DRIFTMEND_KUBE_CONTEXT) or run in the cluster with a service account"
        ) from exc


def api_client(kubeconfig: Path | None, context: str | None) -> AsyncClient:
    """A client of the API server; writes carry the field manager ``driftmend``."""
    return AsyncClient(
        config=load_config(kubeconfig, context),
        timeout=TIMEOUT,
        field_manager=FIELD_MANAGER,
    )


def metrics_client(url: str) -> AsyncClient:
    """A client of a metrics.k8s.io server reached directly at ``url`` (not through the
    API server's aggregation layer), for clusters that serve it elsewhere, and for tests."""
    # An anonymous user, said explicitly: lightkube 1.0's KubeConfig.from_server leaves the
    # user out, and its client then refuses to start ("Missing user").
    config = KubeConfig.from_one(cluster=Cluster(server=url), user=User())
    return AsyncClient(config=config, timeout=TIMEOUT, trust_env=False)
