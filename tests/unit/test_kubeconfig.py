"""Credentials from a kubeconfig (driftmend.kube.kubeconfig), and Lease errors that name no secret."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from driftmend.kube.client import KubeClient
from driftmend.kube.kubeconfig import KubeconfigError, connection_from_kubeconfig, login
from driftmend.leader import HttpLeaseApi, LeaseError
from tests.services import free_port

TOKEN = "s3cr3t-token-never-printed"


def write_config(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://10.0.0.1:6443",
                            "certificate-authority": "ca.crt",
                        },
                    },
                    {
                        "name": "d",
                        "cluster": {
                            "server": "https://10.0.0.2",
                            "certificate-authority-data": "QUJD",
                            "insecure-skip-tls-verify": True,
                        },
                    },
                ],
                "users": [
                    {
                        "name": "cert",
                        "user": {"client-certificate": "pki/me.crt", "client-key": "pki/me.key"},
                    },
                    {"name": "tok", "user": {"token": TOKEN}},
                ],
                "contexts": [
                    {
                        "name": "one",
                        "context": {"cluster": "c", "user": "cert", "namespace": "ops"},
                    },
                    {"name": "two", "context": {"cluster": "d", "user": "tok"}},
                ],
                "current-context": "one",
            }
        )
    )
    return path


def test_the_current_context_with_paths_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    info = connection_from_kubeconfig(write_config(tmp_path / "config"))
    assert info.server == "https://10.0.0.1:6443"
    assert info.ca_path == str(tmp_path / "ca.crt")
    assert info.certificate_path == str(tmp_path / "pki/me.crt")
    assert info.private_key_path == str(tmp_path / "pki/me.key")
    assert info.token is None and info.default_namespace == "ops"


def test_a_named_context_with_a_token_and_inline_ca(tmp_path: Path) -> None:
    info = connection_from_kubeconfig(write_config(tmp_path / "config"), "two")
    assert info.server == "https://10.0.0.2"
    assert info.ca_data == "QUJD" and info.insecure is True
    assert info.as_http_headers() == {"Authorization": f"Bearer {TOKEN}"}


def test_bad_kubeconfigs_say_what_is_wrong(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    with pytest.raises(KubeconfigError, match="no context named 'three'"):
        connection_from_kubeconfig(config, "three")
    with pytest.raises(KubeconfigError, match="cannot be read"):
        connection_from_kubeconfig(tmp_path / "absent")
    (tmp_path / "empty").write_text("kind: Config\n")
    with pytest.raises(KubeconfigError, match="no current-context"):
        connection_from_kubeconfig(tmp_path / "empty")


def test_login_without_any_credentials_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeconfigError, match="no Kubernetes credentials"):
        login()


async def test_an_unreachable_server_is_a_lease_error_naming_no_secret(tmp_path: Path) -> None:
    info = connection_from_kubeconfig(write_config(tmp_path / "config"), "two")
    info = dataclasses.replace(info, server=f"http://127.0.0.1:{free_port()}", ca_data=None)
    client = KubeClient(info)
    try:
        with pytest.raises(LeaseError) as caught:
            await HttpLeaseApi(client).get("default", "driftmend-leader")
    finally:
        await client.close()
    assert "ConnectError" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
