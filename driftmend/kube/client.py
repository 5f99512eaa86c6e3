"""A small Kubernetes API client on httpx2, and where its credentials come from.

Stage: *outputs* toward the Kubernetes API (the leader's Lease today). Credentials are kopf's
``ConnectionInfo``, so the operator can hand over what kopf's login found (in-cluster service
account, kubeconfig, a client library) and everyone else can read a kubeconfig path with
``connection_from_kubeconfig``. HTTP errors are translated here, at the seam, into
``KubeApiError`` and its two subclasses that callers steer on (``NotFoundError``,
``ConflictError``). A token or key is never logged: only the server's address is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2
import kopf
import yaml

from driftmend.errors import DriverError

__all__ = [
    "ConflictError",
    "KubeApiError",
    "KubeClient",
    "NotFoundError",
    "connection_from_kubeconfig",
    "login",
]

log = logging.getLogger(__name__)


class KubeApiError(DriverError):
    """The API server could not be reached or answered an error; ``status`` is its HTTP status
    (0 when there was no answer)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(KubeApiError):
    """404: the object does not exist."""


class ConflictError(KubeApiError):
    """409: a write lost the race (stale ``resourceVersion``, or the object already exists)."""


def connection_from_kubeconfig(path: Path, context: str | None = None) -> kopf.ConnectionInfo:
    """The server and credentials of ``context`` (default: the current one) in the kubeconfig
    at ``path``: certificate authority, client certificate and key, or a bearer token, each
    as a path or inline ``-data``."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeApiError(f"kubeconfig {path}: cannot be read: {exc}") from exc

    def named(section: str, name: str) -> dict[str, Any]:
        for item in config.get(section) or []:
            if item.get("name") == name:
                found: dict[str, Any] = item.get(section[:-1]) or {}
                return found
        raise KubeApiError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")

    chosen = context or config.get("current-context")
    if not chosen:
        raise KubeApiError(f"kubeconfig {path}: no current-context; name a context")
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
    the in-cluster service account, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    if kubeconfig is not None:
        return connection_from_kubeconfig(kubeconfig)
    settings = kopf.OperatorSettings()
    found = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if found is None:
        raise KubeApiError(
            "no Kubernetes credentials: not in a pod with a service account, no $KUBECONFIG "
            "and no ~/.kube/config"
        )
    return found


class KubeClient:
    """JSON requests to one API server with one set of credentials; use ``async with``."""

    def __init__(
        self,
        connection: kopf.ConnectionInfo,
        *,
        timeout: float = 5.0,
        relogin: Callable[[], kopf.ConnectionInfo] | None = None,
    ) -> None:
        """``relogin``, when given, is asked for fresh credentials when the server answers 401:
        an in-cluster service account's token is rotated by the kubelet while we run."""
        self.server = connection.server.rstrip("/")
        self.timeout = timeout
        self._relogin = relogin
        self._http = self._open(connection)

    def _open(self, connection: kopf.ConnectionInfo) -> httpx2.AsyncClient:
        # kopf builds the SSL context (CA, client certificate and key, inline or as files).
        return httpx2.AsyncClient(
            base_url=connection.server.rstrip("/"),
            verify=connection.as_ssl_context(),
            headers={**connection.as_http_headers(), "Accept": "application/json"},
            timeout=self.timeout,
            trust_env=False,
        )

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """``method`` on ``path`` with a JSON ``body``; the JSON answer, or a ``KubeApiError``."""
        response = await self._send(method, path, body)
        if response.status_code == 401 and self._relogin is not None:
            log.info("%s refused our credentials; logging in again", self.server)
            stale, self._http = self._http, self._open(self._relogin())
            await stale.aclose()
            response = await self._send(method, path, body)
        if response.status_code >= 400:
            raise _status_error(method, path, response)
        answer: dict[str, Any] = response.json()
        return answer

    async def _send(self, method: str, path: str, body: Any) -> httpx2.Response:
        try:
            return await self._http.request(method, path, json=body)
        except httpx2.HTTPError as exc:
            raise KubeApiError(f"{method} {self.server}{path}: {type(exc).__name__}") from exc


def _status_error(method: str, path: str, response: httpx2.Response) -> KubeApiError:
    try:
        message = str(response.json().get("message", ""))
    except ValueError:
        message = response.text[:200]
    text = f"{method} {path}: {response.status_code} {message}".rstrip()
    if response.status_code == 404:
        return NotFoundError(text, status=404)
    if response.status_code == 409:
        return ConflictError(text, status=409)
    return KubeApiError(text, status=response.status_code)
