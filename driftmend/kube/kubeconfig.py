"""Credentials for the API server from a kubeconfig path, or the way kopf finds them.

Stage: *outputs* toward the Kubernetes API (docs/ARCHITECTURE.md). Both give kopf's
``ConnectionInfo``, which ``driftmend.kube.client.KubeClient`` speaks with, so a tool or test
that holds a kubeconfig path and the operator that logs in like kopf reach the server alike.
Nothing here logs or puts into an error a token, key or certificate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import yaml

from driftmend.errors import ConfigurationError

__all__ = ["KubeconfigError", "connection_from_kubeconfig", "login"]


class KubeconfigError(ConfigurationError):
    """No usable credentials: the kubeconfig is missing, unreadable or names no such context."""


def connection_from_kubeconfig(path: Path, context: str | None = None) -> kopf.ConnectionInfo:
    """The server and credentials of ``context`` (default: the current one) in the kubeconfig
    at ``path``: certificate authority, client certificate and key, or a bearer token, each
    as a path (relative to the file) or inline ``-data``."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"kubeconfig {path}: cannot be read: {exc}") from exc

    def named(section: str, name: str) -> dict[str, Any]:
        for item in config.get(section) or []:
            if item.get("name") == name:
                found: dict[str, Any] = item.get(section[:-1]) or {}
                return found
        raise KubeconfigError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")

    chosen = context or config.get("current-context")
    if not chosen:
        raise KubeconfigError(f"kubeconfig {path}: no current-context; name a context")
    ctx = named("contexts", chosen)
    cluster = named("clusters", ctx.get("cluster", ""))
    user = named("users", ctx.get("user", ""))

    def relative(value: str | None) -> str | None:
        # kubeconfig paths are relative to the file that names them.
        return str(path.parent / value) if value else None

    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=relative(cluster.get("certificate-authority")),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=cluster.get("insecure-skip-tls-verify"),
        certificate_path=relative(user.get("client-certificate")),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=relative(user.get("client-key")),
        private_key_data=user.get("client-key-data"),
        token=user.get("token"),
        username=user.get("username"),
        password=user.get("password"),
        default_namespace=ctx.get("namespace"),
    )


def login(kubeconfig: Path | None = None) -> kopf.ConnectionInfo:
    """Credentials the way kopf finds them: the kubeconfig at ``kubeconfig`` when given, else
    the in-cluster service account, else ``$KUBECONFIG`` or ``~/.kube/config``. Also fit to
    be ``KubeClient``'s ``login``, called again on a 401 when a rotated token was refused."""
    if kubeconfig is not None:
        return connection_from_kubeconfig(kubeconfig)
    settings = kopf.OperatorSettings()
    found = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if found is None:
        raise KubeconfigError(
            "no Kubernetes credentials: not in a pod with a service account, no $KUBECONFIG "
            "and no ~/.kube/config"
        )
    return found
