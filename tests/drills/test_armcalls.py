"""ARM errors as a user reads them: each SDK failure becomes one FaultError that says what failed, why,
and whether a retry may help. The errors are the SDK's own exception types, built from answers shaped
as ARM sends them (the lab's ARM endpoint answers 401 and 404 in tests/drills/faults)."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from drills.armcalls import TRAFFIC_MANAGER_ROLE, VM_ROLE, arm_error, is_gone, outcome
from drills.errors import FaultError


class _Answer:
    """What azure-core's HttpResponseError reads of a response: status, reason and body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status_code = status
        self.reason = "Reason"
        self._body = json.dumps({"error": {"code": code, "message": message}})

    def text(self) -> str:
        return self._body


def _http(status: int, code: str = "Code", message: str = "what ARM said",
          cls: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    return cls(response=_Answer(status, code, message))  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
def test_throttling_conflicts_and_server_errors_are_transient(status: int) -> None:
    error = arm_error(_http(status, "Busy", "try later"), "disable endpoint us", role=TRAFFIC_MANAGER_ROLE)
    assert error.transient
    assert str(error) == f"disable endpoint us: {status} Busy: try later"


@pytest.mark.parametrize("exc", [ServiceRequestError("Cannot connect to host"),
                                 ServiceResponseError("Connection reset by peer")])
def test_no_answer_is_transient(exc: Exception) -> None:
    error = arm_error(exc, "start instances 1 of scale set rg/vmss", role=VM_ROLE)  # type: ignore[arg-type]
    assert error.transient
    assert "no answer from Azure Resource Manager" in str(error)


def test_403_names_the_role_the_operation_needs() -> None:
    error = arm_error(_http(403, "AuthorizationFailed", "The client 'x' does not have authorization"),
                      "power off instances 1, 2 of scale set rg/vmss", role=VM_ROLE)
    assert not error.transient
    assert "AuthorizationFailed" in str(error)
    assert "'Virtual Machine Contributor' role" in str(error)


@pytest.mark.parametrize("exc", [
    _http(401, "AuthenticationFailed", "bad token", ClientAuthenticationError),
    ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token"),
])
def test_refused_or_missing_credentials_say_how_to_sign_in(exc: Exception) -> None:
    error = arm_error(exc, "read Traffic Manager profile shop", role=TRAFFIC_MANAGER_ROLE)  # type: ignore[arg-type]
    assert not error.transient
    assert "credentials" in str(error)
    assert "az login" in str(error)


async def _raised(exc: Exception, what: str, role: str) -> FaultError:
    async def request() -> None:
        raise exc

    with pytest.raises(FaultError) as caught:
        await outcome(request(), what=what, role=role)
    return caught.value


async def test_404_names_the_resource_and_is_known_as_gone() -> None:
    cause = _http(404, "ResourceNotFound", "The Resource 'Microsoft.Network/trafficManagerProfiles/shop' "
                                           "was not found.", ResourceNotFoundError)
    error = await _raised(cause, "read Traffic Manager profile shop", TRAFFIC_MANAGER_ROLE)
    assert "not found" in str(error)
    assert "trafficManagerProfiles/shop" in str(error)
    assert is_gone(error)
    assert not is_gone(await _raised(_http(500), "read Traffic Manager profile shop", TRAFFIC_MANAGER_ROLE))


async def test_a_failed_long_running_operation_says_its_code_and_message() -> None:
    # azure-core's poller raises the operation's error with the status poll's 200 answer.
    error = await _raised(_http(200, "OperationNotAllowed", "The operation requires the VM to be running"),
                          "power off instances 1 of scale set rg/vmss", VM_ROLE)
    assert str(error) == ("power off instances 1 of scale set rg/vmss: OperationNotAllowed: "
                          "The operation requires the VM to be running")
    assert not error.transient
