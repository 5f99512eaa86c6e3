"""A small Kubernetes API client: the calls driftmend makes beside kopf's own.

Stage: *outputs* (docs/ARCHITECTURE.md). kopf watches and answers admission; everything a
replica writes itself goes through here: listings on taking the lead, status patches, Events
and the Lease. It speaks the API with httpx2 (the project's one HTTP client), with the very
credentials kopf logs in with (``kopf.ConnectionInfo``: a pod's service account, or a
kubeconfig), and logs in again once on a 401, as a projected service-account token rotates.
No token, key or certificate is ever logged or put in an error.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import kopf

from driftmend.kube.status import KubeEvent
from driftmend.sources.kubernetes import CustomResource
from driftmend.spec.fields import API_VERSION

log = logging.getLogger("driftmend.kube")

__all__ = ["KubeApiError", "KubeClient"]


class KubeApiError(Exception):
    """The API server refused a call: its status code and its own message."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _http(info: kopf.ConnectionInfo) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        base_url=info.server,
        verify=info.as_ssl_context(),
        headers=info.as_http_headers(),
        timeout=httpx2.Timeout(10.0),
        trust_env=False,
    )


class KubeClient:
    """JSON over HTTPS to one API server; every call raises ``KubeApiError`` on refusal."""

    def __init__(
        self, info: kopf.ConnectionInfo, login: Callable[[], kopf.ConnectionInfo] | None = None
    ) -> None:
        """A client for kopf's ``ConnectionInfo``; ``login`` gets fresh credentials on a 401."""
        self._info = info
        self._login = login
        self._http = _http(info)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """One call; the decoded JSON answer (None for a 404 when ``missing_ok``)."""
        for attempt in (1, 2):
            response = await self._http.request(
                method,
                path,
                json=body,
                params=params,
                headers={"Content-Type": content_type} if body is not None else None,
            )
            if response.status_code == 401 and attempt == 1 and self._login is not None:
                log.info("the API server refused our credentials: logging in again")
                await self._http.aclose()
                self._info = self._login()
                self._http = _http(self._info)
                continue
            break
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))
            except ValueError:
                message = response.text[:300]
            raise KubeApiError(method, path, response.status_code, message)
        return response.json() if response.content else None

    async def list_objects(
        self, group: str, version: str, plural: str, namespace: str | None
    ) -> list[dict[str, Any]]:
        """Every object of ``plural`` (in ``namespace``, or all), each with apiVersion/kind."""
        where = f"/namespaces/{namespace}" if namespace else ""
        listing = await self.request("GET", f"/apis/{group}/{version}{where}/{plural}")
        kind = str(listing.get("kind", "")).removesuffix("List")
        return [
            {"apiVersion": f"{group}/{version}", "kind": kind, **item}
            for item in listing.get("items", [])
        ]

    async def patch_status(self, ref: CustomResource, status: Mapping[str, Any]) -> None:
        """Merge-patch the status subresource; a custom resource deleted meanwhile is fine."""
        path = f"/apis/{API_VERSION}/namespaces/{ref.namespace}/{ref.plural}/{ref.name}/status"
        await self.request(
            "PATCH",
            path,
            body={"status": dict(status)},
            content_type="application/merge-patch+json",
            missing_ok=True,
        )

    async def post_event(self, ref: CustomResource, event: KubeEvent) -> None:
        """A core/v1 Event about ``ref``, as ``kubectl describe`` lists them."""
        now = _now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": "driftmend"},
            "reportingComponent": "driftmend.dev/operator",
            "firstTimestamp": now[:19] + "Z",
            "lastTimestamp": now[:19] + "Z",
            "count": 1,
        }
        await self.request("POST", f"/api/v1/namespaces/{ref.namespace}/events", body=body)

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()
