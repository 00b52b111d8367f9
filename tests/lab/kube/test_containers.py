"""What the lab's pods lack (:mod:`drills.lab.kube.containers`): logs, exec, attach, port-forward and
debug containers answer a 400 Status naming the cause, for every method a client uses (kubectl 1.32 posts SPDY
upgrades, 1.37 gets WebSocket ones); an unknown pod is still 404, as on any path of an object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from apiseed import TOKEN, WEB_PODS

from drills.lab.kube.api import ApiServer


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session


@pytest.mark.parametrize(("subresource", "method", "lacking"), [
    ("log", "GET", "has no logs to read"),
    ("exec", "GET", "has nothing to exec into"),
    ("exec", "POST", "has nothing to exec into"),
    ("attach", "POST", "has nothing to attach to"),
    ("portforward", "GET", "has no ports to forward to"),
    ("ephemeralcontainers", "PATCH", "has no containers to debug"),
])
async def test_container_subresources_say_the_lab_runs_no_containers(
        server: ApiServer, http: aiohttp.ClientSession, subresource: str, method: str, lacking: str) -> None:
    url = f"{server.url}/api/v1/namespaces/shop/pods/{WEB_PODS[0]}/{subresource}"
    async with http.request(method, url) as response:
        status = await response.json()
    assert (response.status, status["kind"], status["reason"], status["code"]) == (
        400, "Status", "BadRequest", 400)
    assert status["message"] == (f'the lab runs no containers: pod "{WEB_PODS[0]}" {lacking} '
                                 f"(pods/{subresource} is not available in the lab)")

    async with http.get(f"{server.url}/api/v1/namespaces/shop/pods/nope/{subresource}") as response:
        status = await response.json()
    assert (response.status, status["reason"]) == (404, "NotFound")
    assert status["message"] == 'pods "nope" not found'
