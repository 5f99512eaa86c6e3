"""``container_rollback`` on a runtime that keeps no revisions is refused, naming the one that does."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftmend.drivers.docker import DockerRuntime
from driftmend.drivers.process import ProcessRuntime
from driftmend.drivers.runtimes import RuntimeRouter
from driftmend.errors import RefusedError
from driftmend.spec import Container


def container(runtime: str) -> Container:
    block = (
        {"process": {"command": ["sleep", "60"]}}
        if runtime == "process"
        else {"docker": {"image": "local/hostbase"}}
    )
    return Container.model_validate({
        "apiVersion": "driftmend.dev/v1alpha1", "kind": "Container",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"runtime": runtime, **block},
    })  # fmt: skip


@pytest.mark.parametrize("runtime", ["process", "docker"])
async def test_a_rollback_where_no_revisions_are_kept_is_refused(
    tmp_path: Path, runtime: str
) -> None:
    # Building the Docker runtime does not reach an engine, and a refusal needs none.
    router = RuntimeRouter(
        ProcessRuntime(tmp_path, base_dir=tmp_path), lambda: DockerRuntime(tmp_path)
    )
    with pytest.raises(
        RefusedError,
        match=rf"Container/shop/web runs on the {runtime} runtime, which keeps no revisions: "
        "container_rollback is for runtime kubernetes",
    ):
        await router.rollback(container(runtime))
