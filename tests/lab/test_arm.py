"""The lab's ARM endpoint itself, with a provider of its own: what every provider gets from it (bearer
token, api-version, case-insensitive paths, ARM errors, long-running operations polled by azure-core's
own ARM poller)."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from azure.core import AsyncPipelineClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy, RequestIdPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.polling import AsyncLROPoller
from azure.core.rest import HttpRequest
from azure.mgmt.core.polling.async_arm_polling import AsyncARMPolling

from drills.lab.arm import POLL_INTERVAL_S, ArmError, ArmRoute, ArmServer, json_response, long_running
from drills.lab.certs import issue
from drills.lab.clock import LabClock

SCALE = 100.0
TOKEN = "lab-token"
WORK_S = 30.0
"""Lab seconds the provider's long-running operation takes."""
THING = "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Lab/things/{thing}"


class _Things:
    """A provider of things: read one, or start work on one (which fails for ``broken``)."""

    def __init__(self, clock: LabClock) -> None:
        self.clock = clock

    def routes(self) -> list[ArmRoute]:
        return [ArmRoute("GET", THING, self._get), ArmRoute("POST", THING + "/work", self._work)]

    async def _get(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        return json_response(dict(names))

    async def _work(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        async def work() -> None:
            await self.clock.sleep(WORK_S)
            if names["thing"] == "broken":
                raise ArmError(409, "Conflict", "the thing is broken")

        return long_running(request, work())


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[ArmServer, LabClock, Path]]:
    certificates = issue(tmp_path, ["127.0.0.1"])
    clock = LabClock(SCALE)
    arm = ArmServer([_Things(clock)], token=TOKEN, clock=clock, ssl_context=certificates.server_context())
    await arm.start("127.0.0.1")
    try:
        yield arm, clock, certificates.ca
    finally:
        await arm.close()


async def _call(server: tuple[ArmServer, LabClock, Path], method: str, path: str, *,
                token: str | None = TOKEN) -> tuple[int, Any]:
    arm, _, ca = server
    context = ssl.create_default_context(cafile=str(ca))
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, \
            http.request(method, f"{arm.url}{path}", headers=headers, ssl=context) as response:
        assert response.headers["x-ms-request-id"]
        return response.status, await response.json()


async def test_a_bearer_token_is_required(server: tuple[ArmServer, LabClock, Path]) -> None:
    path = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Lab/things/t?api-version=1"
    for token in (None, "wrong"):
        status, body = await _call(server, "GET", path, token=token)
        assert (status, body["error"]["code"]) == (401, "AuthenticationFailed")
    assert (await _call(server, "GET", path))[0] == 200


async def test_an_api_version_is_required(server: tuple[ArmServer, LabClock, Path]) -> None:
    path = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Lab/things/t"
    status, body = await _call(server, "GET", path)
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")


async def test_paths_match_case_insensitively_and_names_are_kept_as_sent(
        server: tuple[ArmServer, LabClock, Path]) -> None:
    status, body = await _call(server, "GET",
                               "/SUBSCRIPTIONS/Sub/resourcegroups/My-RG/PROVIDERS/microsoft.lab/THINGS/Abc/"
                               "?api-version=2026-01-01")
    assert (status, body) == (200, {"subscription": "Sub", "group": "My-RG", "thing": "Abc"})


async def test_unknown_paths_and_methods_get_arm_errors(server: tuple[ArmServer, LabClock, Path]) -> None:
    status, body = await _call(server, "GET", "/subscriptions/s/providers/Microsoft.Lab/none?api-version=1")
    assert (status, body["error"]["code"]) == (404, "NotFound")
    status, body = await _call(server, "DELETE",
                               "/subscriptions/s/resourceGroups/g/providers/Microsoft.Lab/things/t?api-version=1")
    assert (status, body["error"]["code"]) == (405, "MethodNotAllowed")


@pytest.mark.parametrize(("thing", "succeeds"), [("fine", True), ("broken", False)])
async def test_a_long_running_operation_is_polled_by_the_sdk_poller_to_its_end(
        server: tuple[ArmServer, LabClock, Path], thing: str, succeeds: bool) -> None:
    arm, clock, ca = server

    class Token:
        async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(TOKEN, int(time.time()) + 3600)

    policy = AsyncBearerTokenCredentialPolicy(Token(), f"{arm.url}/.default")  # type: ignore[arg-type]
    async with AsyncPipelineClient(arm.url, policies=[RequestIdPolicy(), policy],
                                   transport=AioHttpTransport(connection_verify=str(ca))) as client:
        began = clock.now()
        request = HttpRequest("POST", f"{arm.url}/subscriptions/s/resourceGroups/g/providers/Microsoft.Lab/"
                                      f"things/{thing}/work", params={"api-version": "2026-01-01"})
        initial = await client._pipeline.run(request)  # as the generated SDKs start one
        assert initial.http_response.status_code == 202
        # azure-core's ARM poller, with a 30 s default it must not need: the server says how long to wait.
        poller = AsyncLROPoller(client, initial, lambda _: None, AsyncARMPolling(30))
        if succeeds:
            await poller.result()
            assert poller.status() == "Succeeded"
        else:
            with pytest.raises(HttpResponseError, match="the thing is broken"):
                await poller.result()
            assert poller.status() == "Failed"
        took = clock.now() - began
    # Polled every POLL_INTERVAL_S lab seconds, not at the poller's own 30 real seconds: done within one
    # interval of the work's end, with a real second of slack for a loaded machine.
    assert WORK_S <= took < WORK_S + POLL_INTERVAL_S + 1.0 * SCALE
