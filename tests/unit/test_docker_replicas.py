"""The Docker runtime's pure parts: Docker's times, inspect bodies, replica indexes, projects,
exit reasons, and the create bodies of replicas (from the spec, or cloned). No engine."""

from __future__ import annotations

from typing import Any

import pytest

from driftmend.drivers.docker.configs import clone_config, config_hash, create_config, outdated
from driftmend.drivers.docker.replicas import (
    DockerReplica,
    docker_spec,
    exit_reason,
    expected_name,
    group,
    list_labels,
    one_project,
    parse_time_ns,
    replica_index,
)
from driftmend.errors import PermanentError
from driftmend.spec import Container

COMPOSE_NUMBER = "com.docker.compose.container-number"


def docker(name: str = "web", **docker_spec_: Any) -> Container:
    spec: dict[str, Any] = docker_spec_.pop("spec", {})
    return Container.model_validate(
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": name},
            "spec": {"runtime": "docker", "docker": docker_spec_ or {"image": "img"}, **spec},
        }
    )


def inspect(
    *,
    cid: str = "abc123def4567890",
    name: str = "/web-1",
    status: str = "running",
    labels: dict[str, str] | None = None,
    started: str = "2026-11-25T04:54:06.5Z",
    finished: str = "0001-01-01T00:00:00Z",
    **state: Any,
) -> dict[str, Any]:
    """A ``docker inspect`` body with what the runtime reads."""
    return {
        "Id": cid,
        "Name": name,
        "RestartCount": 0,
        "State": {"Status": status, "StartedAt": started, "FinishedAt": finished, **state},
        "Config": {"Image": "img", "Env": ["A=1"], "Labels": labels or {}, "Hostname": cid[:12]},
        "HostConfig": {"NetworkMode": "host", "Memory": 64 << 20, "NanoCpus": 500_000_000},
        "NetworkSettings": {"Networks": {}},
    }


def replica(index: int, **kw: Any) -> DockerReplica:
    return DockerReplica.from_inspect(index, inspect(**kw))


# --- times -------------------------------------------------------------------------------


def test_docker_times_parse_to_the_nanosecond() -> None:
    assert parse_time_ns("2026-11-25T04:54:06.598413247Z") == 1795582446598413247
    assert parse_time_ns("2026-11-25T04:54:06Z") == 1795582446_000_000_000
    assert parse_time_ns("2026-11-25T04:54:06.5Z") == 1795582446_500_000_000


@pytest.mark.parametrize("raw", [None, "", "0001-01-01T00:00:00Z", "yesterday", "2026-11-25"])
def test_zero_and_unparsable_times_are_none(raw: str | None) -> None:
    assert parse_time_ns(raw) is None


# --- inspect bodies and indexes ----------------------------------------------------------


def test_an_inspect_body_becomes_a_replica() -> None:
    rep = replica(
        0,
        labels={"com.docker.compose.project": "shop"},
        OOMKilled=True,
        ExitCode=137,
        Health={"Status": "unhealthy", "FailingStreak": 3},
    )
    assert (rep.name, rep.running, rep.oom_killed, rep.exit_code) == ("web-1", True, True, 137)
    assert (rep.health, rep.failing_streak, rep.project) == ("unhealthy", 3, "shop")
    assert (rep.cpu_limit, rep.memory_limit) == (0.5, 64 << 20)  # NanoCpus, in cores
    body = inspect()
    body["HostConfig"] = {"CpuQuota": 150_000, "CpuPeriod": 100_000}
    assert DockerReplica.from_inspect(0, body).cpu_limit == 1.5  # quota over period
    assert DockerReplica.from_inspect(0, {}).status == "unknown"  # nothing readable: no crash


def test_replica_index_comes_from_compose_numbers_or_our_label() -> None:
    compose = docker_spec(docker(compose={"service": "web"}))
    image = docker_spec(docker())
    number = {"Config": {"Labels": {"com.docker.compose.container-number": "3"}}}
    ours = {"Config": {"Labels": {"driftmend.replica": "2"}}}
    assert replica_index(compose, number) == 2  # Compose counts from 1
    assert replica_index(image, ours) == 2
    assert replica_index(compose, ours) is None
    assert replica_index(image, {"Config": {"Labels": {"driftmend.replica": "x"}}}) is None
    assert replica_index(compose, {"Config": {"Labels": {COMPOSE_NUMBER: "0"}}}) is None


def test_list_labels_leave_out_one_off_containers() -> None:
    assert list_labels(docker(compose={"service": "web"})) == [
        "com.docker.compose.service=web",
        "com.docker.compose.oneoff=False",
    ]
    assert list_labels(docker(compose={"service": "web", "project": "p"}))[-1] == (
        "com.docker.compose.project=p"
    )
    assert list_labels(docker()) == ["driftmend.key=Container/web"]


def test_two_containers_of_one_index_keep_the_running_one() -> None:
    old = replica(0, cid="old", status="exited", started="2026-11-25T04:00:00Z")
    new = replica(0, cid="new", status="running", started="2026-11-25T03:00:00Z")
    other = replica(1, cid="one")
    snap = group([new, other, old], "shop")
    assert (snap.replicas[0].id, snap.replicas[1].id) == ("new", "one")
    assert [r.id for r in snap.extras] == ["old"] and snap.project == "shop"


# --- Compose projects --------------------------------------------------------------------


def in_project(project: str, index: int = 0) -> DockerReplica:
    return replica(index, labels={"com.docker.compose.project": project})


def test_a_service_in_two_projects_is_refused_without_a_project() -> None:
    anyone = docker(compose={"service": "web"})
    with pytest.raises(PermanentError, match=r"runs in 2 projects \(a, b\).*compose.project"):
        one_project(anyone, [in_project("b"), in_project("a", 1), in_project("a")])
    assert one_project(anyone, [in_project("a"), in_project("a", 1)]) == "a"
    assert one_project(anyone, []) is None
    pinned = docker(compose={"service": "web", "project": "b"})
    assert one_project(pinned, []) == "b"
    assert one_project(docker(), [in_project("a"), in_project("b")]) is None  # image: no projects


def test_expected_names() -> None:
    assert expected_name(docker(), 2) == "driftmend-default.web-2"
    assert expected_name(docker(compose={"service": "web"}), 0) == "<project>-web-1"
    assert expected_name(docker(compose={"service": "web"}), 0, "shop") == "shop-web-1"
    assert expected_name(docker(containerName="db"), 0) == "db"


def test_replicas_of_distinct_resources_have_distinct_names() -> None:
    # "driftmend-{namespace}-{name}-{i}" named both of these driftmend-shop-prod-db-0, so the
    # second could not be created while the first existed.
    def image_in(namespace: str, name: str) -> Container:
        return Container.model_validate(
            {
                "apiVersion": "driftmend.dev/v1alpha1",
                "kind": "Container",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"runtime": "docker", "docker": {"image": "img"}},
            }
        )

    a, b = image_in("shop-prod", "db"), image_in("shop", "prod-db")
    assert expected_name(a, 0) != expected_name(b, 0)
    assert create_config(a, 0, None, None, "1.41")[0] == expected_name(a, 0)
    assert create_config(b, 0, None, None, "1.41")[0] == expected_name(b, 0)


# --- exit reasons ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "ours", "reason"),
    [
        (
            {"OOMKilled": True, "ExitCode": 137},
            False,
            "killed by the out-of-memory killer (memory limit 64Mi)",
        ),
        ({"Error": "exec: not found", "ExitCode": 127}, False, "could not start: exec: not found"),
        (
            {"ExitCode": 137},
            False,
            "killed by SIGKILL (code 137), not by driftmend: `docker kill` or an operator",
        ),
        ({"ExitCode": 143}, True, "stopped by driftmend by SIGTERM (code 143)"),
        ({"ExitCode": 137}, True, "stopped by driftmend by SIGKILL (code 137)"),
        ({"ExitCode": 3}, False, "exited with code 3"),
        ({"ExitCode": 200}, False, "exited by signal 72 (code 200)"),
    ],
)
def test_exit_reasons(state: dict[str, Any], ours: bool, reason: str) -> None:
    assert exit_reason(replica(0, status="exited", **state), ours) == reason


# --- create bodies -----------------------------------------------------------------------


def test_a_compose_replica_is_cloned_from_its_sibling() -> None:
    web = docker(compose={"service": "web"}, spec={"port": 8000, "portEnv": "PORT"})
    body = inspect(
        name="/shop_web_1",
        labels={"com.docker.compose.service": "web", COMPOSE_NUMBER: "1"},
    )
    body["Config"]["Env"] = ["PORT=8000", "A=1"]
    body["HostConfig"]["NetworkMode"] = "shop_default"
    body["NetworkSettings"]["Networks"] = {"shop_default": {}}
    name, config = clone_config(web, DockerReplica.from_inspect(0, body), 2)
    assert name == "shop_web_3"
    assert config["Labels"][COMPOSE_NUMBER] == "3"
    assert config["Env"] == ["A=1", "PORT=8002"]  # its own port, replacing the sibling's
    assert "Hostname" not in config  # the engine's default (the short id) is not copied
    assert config["HostConfig"]["NetworkMode"] == "shop_default"
    assert config["NetworkingConfig"] == {"EndpointsConfig": {"shop_default": {"Aliases": ["web"]}}}
    # A name without a number gets one; host networking needs no aliases.
    plain = DockerReplica.from_inspect(0, inspect(name="/web"))
    name, config = clone_config(web, plain, 1)
    assert name == "web-2" and "NetworkingConfig" not in config


def test_an_image_replica_is_created_from_the_spec() -> None:
    web = docker(
        image="local/hostbase",
        command=["serve"],
        env={"A": "1"},
        labels={"team": "shop"},
        healthcheck={"test": ["true"], "interval": "1s"},
        spec={"port": 8000, "portEnv": "PORT"},
    )
    name, config = create_config(web, 1, 0.5, 64 << 20, "1.41")
    assert name == "driftmend-default.web-1"
    assert config["Env"] == ["A=1", "PORT=8001"]
    assert config["Cmd"] == ["serve"] and config["Image"] == "local/hostbase"
    assert config["Labels"] == {
        "team": "shop",
        "driftmend.key": "Container/web",
        "driftmend.replica": "1",
        "driftmend.config-hash": config_hash(web),
    }
    host = config["HostConfig"]
    assert (host["Memory"], host["MemorySwap"]) == (64 << 20, 64 << 20)  # no swap
    assert (host["CpuQuota"], host["CpuPeriod"]) == (50_000, 100_000)
    assert host["RestartPolicy"] == {"Name": "no"}  # driftmend decides restarts
    assert config["Healthcheck"]["Test"] == ["CMD", "true"]
    assert config["Healthcheck"]["Interval"] == 1_000_000_000


def test_a_changed_spec_makes_a_replica_outdated() -> None:
    web = docker(image="img")
    rep = replica(0, labels={"driftmend.config-hash": config_hash(web)})
    assert not outdated(web, rep)
    assert outdated(docker(image="img", env={"B": "2"}), rep)
    # Limits are not part of it: set_limits changes them without recreating anything.
    assert config_hash(web) == config_hash(docker(image="img", spec={"limits": {"cpu": 1}}))
    assert not outdated(docker(compose={"service": "web"}), rep)  # Compose's, not ours
