"""Faults a platform engineer's own change causes a workload, for ``driftmend chaos``.

Stage: outside the loop (the fault injector). Both are made through the API alone, so a real
kubelet turns them into the failure they stand for, and both change the pod template, so the
Deployment or StatefulSet controller rolls them out and the old revision keeps serving:

- ``workload-bad-image``: the container's image tag replaced by one no registry has
  (``ErrImagePull`` / ``ImagePullBackOff``; the rollout stalls at its progress deadline);
- ``workload-config-error``: an environment variable read from a Secret that does not exist
  (``CreateContainerConfigError``).

Pure: the patches (strategic merge, merged by container name) and the check of whether a
template still carries a fault; ``KubernetesRuntime.inject_fault`` and ``revert_fault``
send them.
"""

from __future__ import annotations

from typing import Any

from driftmend.drivers.kubernetes.views import TemplateContainer

FAULTS = ("workload-bad-image", "workload-config-error")
MISSING_TAG = "driftmend-chaos-missing"
MISSING_SECRET = "driftmend-chaos-missing"
CHAOS_ENV = "DRIFTMEND_CHAOS"


def _container_patch(name: str, **fields: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{"name": name, **fields}]}}}}


def missing_image(image: str) -> str:
    """``image`` with its tag (or digest) replaced by one that no registry has."""
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return f"{repository}:{MISSING_TAG}"


def bad_image_patch(current: TemplateContainer) -> dict[str, Any]:
    """Point ``current`` at an image that cannot be pulled."""
    return _container_patch(current.name, image=missing_image(current.image))


def restore_image_patch(current: TemplateContainer, image: str) -> dict[str, Any] | None:
    """Put ``image`` back, or None when the template no longer carries the bad image (a
    rollback, or someone's own change, already replaced it: theirs is kept)."""
    if current.image != missing_image(image):
        return None
    return _container_patch(current.name, image=image)


def config_error_patch(current: TemplateContainer) -> dict[str, Any]:
    """Give ``current`` an environment variable from a Secret that does not exist."""
    ref = {"secretKeyRef": {"name": MISSING_SECRET, "key": "value"}}
    return _container_patch(current.name, env=[{"name": CHAOS_ENV, "valueFrom": ref}])


def remove_config_error_patch(name: str, env: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Drop the chaos variable from the template container ``name`` whose ``env`` is given,
    or None when it is not there."""
    if not any(e.get("name") == CHAOS_ENV for e in env):
        return None
    return _container_patch(name, env=[{"name": CHAOS_ENV, "$patch": "delete"}])
