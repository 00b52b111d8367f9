"""The OpenAPI documents as a client fetches them: the v3 index and its hashed group-version documents,
the v2 document, and what each says of the kinds the lab serves."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from apiseed import TOKEN

from drills.lab.kube import schemas
from drills.lab.kube.api import ApiServer
from drills.lab.kube.store import RESOURCES

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session


async def test_v3_index_points_at_hashed_documents_with_every_served_kind(server: ApiServer,
                                                                         http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.url}/openapi/v3") as response:
        assert response.status == 200
        index = await response.json()
    served = {f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}" for r in RESOURCES}
    assert set(index["paths"]) == served
    for resource in RESOURCES:
        gv = f"apis/{resource.group}/{resource.version}" if resource.group else f"api/{resource.version}"
        url = index["paths"][gv]["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{gv}?hash=")
        async with http.get(f"{server.url}{url}") as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "public, immutable"
            doc = await response.json()
        assert doc["openapi"].startswith("3.")
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        kinds = [s.get("x-kubernetes-group-version-kind", []) for s in doc["components"]["schemas"].values()]
        assert any(gvk in listed for listed in kinds)
        patches = [item["patch"] for item in doc["paths"].values()
                   if item.get("patch", {}).get("x-kubernetes-group-version-kind") == gvk]
        assert patches, resource.kind
        assert all(any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"])
                   for op in patches)

    async with http.get(f"{server.url}/openapi/v3/apis/apps/v1?hash=0000", allow_redirects=False) as response:
        assert response.status == 301
        assert response.headers["Location"] == index["paths"]["apis/apps/v1"]["serverRelativeURL"]


async def test_v2_is_served_as_json_and_protobuf(server: ApiServer,
                                                            http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.url}/openapi/v2", headers={"Accept": "application/json"}) as response:
        assert response.status == 200
        doc = await response.json()
    assert doc["swagger"] == "2.0"
    assert doc["info"]["version"] == "v1.32.0"
    replicas = doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]
    assert (replicas["type"], replicas["format"]) == ("integer", "int32")
    containers = doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert (containers["x-kubernetes-patch-merge-key"], containers["items"]["$ref"]) == (
        "name", "#/definitions/io.k8s.api.core.v1.Container")

    async with http.get(f"{server.url}/openapi/v2", headers={"Accept": PROTOBUF_V2}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        encoded = await response.read()
    assert encoded.startswith(b"\x0a\x032.0")  # field 1, the Swagger version
    assert b"io.k8s.api.apps.v1.DeploymentSpec" in encoded

    async with http.get(f"{server.url}/openapi/v2", headers={"Accept": "application/xml"}) as response:
        assert response.status == 406
        assert (await response.json())["reason"] == "NotAcceptable"


def test_the_schemas_have_the_kinds_the_lab_serves_or_will() -> None:
    for group, kind in [("", "Service"), ("", "ConfigMap"), ("", "Secret"), ("", "Endpoints"),
                        ("networking.k8s.io", "Ingress"), ("discovery.k8s.io", "EndpointSlice"),
                        ("coordination.k8s.io", "Lease"), ("apps", "Deployment"),
                        ("policy", "PodDisruptionBudget")]:
        assert schemas.kind_definition(group, "v1", kind) is not None, kind
