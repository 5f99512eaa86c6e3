"""``runtime: docker`` specs: what validates, and the one line each mistake gets.

Pure (no engine): the models, the loader's messages, and the generated CRD.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from driftmend.spec import Container, crds_yaml, load_paths
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check

HEAD = "apiVersion: driftmend.dev/v1alpha1\nkind: Container\nmetadata: {name: web}\nspec:\n"


def issues(tmp_path: Path, spec: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + spec)
    return [str(i) for i in load_paths([path], tool_check(default_catalogue())).issues]


def test_a_docker_container_validates(tmp_path: Path) -> None:
    text = """
  runtime: docker
  docker:
    image: local/hostbase
    command: [python3, -m, http.server]
    volumes: [/usr:/usr:ro, /lib:/lib:ro]
    tmpfs: {/tmp: mode=1777}
    user: "104:106"
    init: true
    healthcheck: {test: [CMD, "true"], interval: 500ms, retries: 2}
  port: 8000
  portEnv: PORT
  limits: {cpu: 0.5, memory: 64Mi, cpuCap: 1, memoryCap: 128Mi}
"""
    assert issues(tmp_path, text) == []
    c = Container.model_validate(yaml.safe_load(HEAD + text))
    assert c.spec.docker is not None and c.spec.process is None
    assert c.spec.docker.healthcheck is not None and c.spec.docker.healthcheck.interval == 0.5
    assert c.spec.limits.memory_cap == 128 << 20
    assert c.spec.declares_health  # Docker's healthcheck counts as a declared health check


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "  docker: {image: x}\n",
            "spec.docker: docker is set but runtime is process (the default): add `runtime: docker`",
        ),
        ("  runtime: docker\n", "spec.docker: docker is required when runtime is docker"),
        ("  runtime: process\n", "spec.process: process is required when runtime is process"),
        (
            "  runtime: docker\n  docker: {image: x}\n  process: {command: [x]}\n",
            "spec.process: process is set but runtime is docker",
        ),
        (
            "  runtime: docker\n  docker: {image: x, compose: {service: web}}\n",
            "spec.docker: set exactly one of image",
        ),
        ("  runtime: docker\n  docker: {}\n", "got none"),
        (
            "  runtime: docker\n  docker: {containerName: db}\n  replicas: 2\n",
            "docker.containerName watches one container: set replicas to 1",
        ),
        (
            "  runtime: docker\n  docker: {compose: {service: web}, command: [x], env: {A: b}}\n",
            "spec.docker.command: command, env apply only with image",
        ),
        (
            "  runtime: kubernetes\n  process: {command: [x]}\n",
            "spec.process: process is set but runtime is kubernetes",
        ),
        (
            "  runtime: podman\n  process: {command: [x]}\n",
            "spec.runtime: must be one of process, docker, kubernetes; got 'podman'",
        ),
        (
            "  runtime: docker\n  docker: {image: x}\n  limits: {memory: 64Mi, memoryCap: 32Mi}\n",
            "spec.limits.memoryCap: memoryCap (33554432 bytes) is below memory (67108864 bytes)",
        ),
    ],
)
def test_mistakes_get_one_line_naming_field_and_fix(
    tmp_path: Path, spec: str, message: str
) -> None:
    found = issues(tmp_path, spec)
    assert len(found) == 1, found
    assert message in found[0], found[0]
    assert found[0].startswith(f"{tmp_path / 'c.yaml'}: document 0 (Container/web): ")


def test_process_containers_are_unchanged(tmp_path: Path) -> None:
    assert issues(tmp_path, "  process: {command: [python3, -m, http.server]}\n") == []


def test_the_crd_describes_every_runtime() -> None:
    crd = yaml.safe_load(crds_yaml()["containers.driftmend.dev.yaml"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["runtime"]["enum"] == ["process", "docker", "kubernetes"]
    kube = spec["properties"]["kubernetes"]["properties"]
    assert {"kind", "name", "selector", "namespace", "container"} <= set(kube)
    assert spec["properties"]["process"]["nullable"] is True
    docker = spec["properties"]["docker"]["properties"]
    assert {"image", "containerName", "compose", "healthcheck", "volumes", "init"} <= set(docker)
    assert "process" not in spec.get("required", [])
