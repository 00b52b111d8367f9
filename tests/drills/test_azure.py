"""The run's Azure clients: which credential, which endpoint, and a clear error when Azure is not set up."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.azure import Azure, LabCredential, credential
from drills.environment import Environment
from drills.errors import EnvironmentUnreachable


def _environment(tmp_path: Path, **extra: object) -> Environment:
    return Environment.model_validate({
        "apiVersion": "drill/v1", "kind": "Environment", "name": "test",
        "regions": {"us": {"context": "us", "ingress": {"namespace": "i", "deployment": "d"},
                           "endpoint": "us", "target": "us.example.com"}},
        "trafficManager": {"fqdn": "shop.trafficmanager.net", "nameservers": ["127.0.0.1:53"]},
        **extra})


async def test_a_labs_credential_is_the_token_its_file_holds(tmp_path: Path) -> None:
    token_file = tmp_path / "arm.token"
    token_file.write_text("s3cret\n")
    env = _environment(tmp_path, azure={"subscription": "sub"},
                       lab={"groundTruth": str(tmp_path / "g"), "armTokenFile": str(token_file)})
    found = credential(env)
    assert isinstance(found, LabCredential)
    assert (await found.get_token("https://management.azure.com/.default")).token == "s3cret"


async def test_an_unreadable_lab_token_is_an_unreachable_environment(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentUnreachable, match=r"arm\.token"):
        await LabCredential(tmp_path / "arm.token").get_token("scope")


def test_azure_faults_need_the_environments_azure_section(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentUnreachable, match="no 'azure' section"):
        Azure(_environment(tmp_path))


async def test_the_clients_go_to_the_environments_arm_endpoint(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    env = _environment(tmp_path, azure={"subscription": "sub-1", "armEndpoint": "https://127.0.0.53:8443/",
                                        "caFile": str(ca)},
                       lab={"groundTruth": str(tmp_path / "g"), "armTokenFile": str(tmp_path / "t")})
    azure = Azure(env)
    try:
        client = azure.traffic_manager()
        assert client._config.subscription_id == "sub-1"
        assert client._config.base_url == "https://127.0.0.53:8443"
        assert client._config.credential_scopes == ["https://127.0.0.53:8443/.default"]
        assert azure.connection_verify() == str(ca)
        assert azure.traffic_manager() is client
        assert azure.traffic_manager("sub-2") is not client
    finally:
        await azure.aclose()


def test_an_arm_endpoint_must_be_https(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="https"):
        _environment(tmp_path, azure={"armEndpoint": "http://127.0.0.1:80"})
