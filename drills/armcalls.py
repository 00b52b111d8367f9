"""Calls to Azure Resource Manager through the Azure SDKs, their errors translated at one boundary.

Faults and probes call ARM only through :func:`call` (one request, within :meth:`Azure.call`'s rate
limit) and :func:`outcome` (awaiting what a request started, such as a long-running operation's
poller). Whatever the SDK raises becomes a :class:`~drills.errors.FaultError` there, never a traceback:

- 429 (throttled), 409 (another operation holds the resource), 408 and 5xx, and a request that never got
  an answer (``ServiceRequestError``, ``ServiceResponseError``): transient, a retry may help;
- 401, or no credential at all: the credential is wrong or missing, said with where
  ``DefaultAzureCredential`` looks for one;
- 403: the identity lacks a permission, said with the built-in role that grants it (each caller names
  the role its operation needs: :data:`TRAFFIC_MANAGER_ROLE`, :data:`VM_ROLE`, :data:`READER_ROLE`);
- 404: the resource the call named does not exist (:func:`is_gone` tells an idempotent undo so);
- anything else the service answered: its code and message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from drills.azure import Azure
from drills.errors import FaultError

T = TypeVar("T")

TRAFFIC_MANAGER_ROLE = "Traffic Manager Contributor"
"""The built-in role that may change a Traffic Manager profile's endpoints."""
VM_ROLE = "Virtual Machine Contributor"
"""The built-in role that may power scale-set instances off and on."""
READER_ROLE = "Reader"
"""The built-in role that may read a resource (what a probe needs)."""

_TRANSIENT_STATUSES = frozenset({408, 409, 429})


async def call(azure: Azure, fn: Callable[[], Awaitable[T]], *, what: str, role: str) -> T:
    """One ARM request (``fn`` sends it) within the rate limit, its errors as :class:`FaultError`.

    ``what`` says what the call does ("disable Traffic Manager endpoint us"), ``role`` which built-in
    role it needs. Cancelled, it returns only once the request is done, so that an undo sent next
    (an abort's rollback) is not overtaken by the change it undoes.
    """
    request = asyncio.ensure_future(azure.call(fn))
    try:
        return await outcome(asyncio.shield(request), what=what, role=role)
    except asyncio.CancelledError:
        await asyncio.gather(request, return_exceptions=True)
        raise


async def outcome(awaitable: Awaitable[T], *, what: str, role: str) -> T:
    """Await what an ARM request started (a poller's ``result()``), its errors as :class:`FaultError`."""
    try:
        return await awaitable
    except AzureError as exc:
        raise arm_error(exc, what, role=role) from exc


def arm_error(exc: AzureError, what: str, *, role: str) -> FaultError:
    """An Azure SDK error as a FaultError: what failed, why, whether a retry may help (module docstring)."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return FaultError(f"{what}: no answer from Azure Resource Manager: {_first_line(exc)}",
                          transient=True)
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    detail = _detail(exc)
    if isinstance(exc, ClientAuthenticationError) or status == 401:
        return FaultError(f"{what}: Azure did not accept drill's credentials ({detail}); sign in with "
                          "`az login`, or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET or a "
                          "managed identity for DefaultAzureCredential")
    if status == 403:
        return FaultError(f"{what}: Azure refused it ({detail}): the signed-in identity needs the "
                          f"'{role}' role (Azure RBAC) on the resource or its resource group")
    if status == 404:
        return FaultError(f"{what}: not found ({detail})")
    transient = status is not None and (status in _TRANSIENT_STATUSES or status >= 500)
    return FaultError(f"{what}: {detail}", transient=transient)


def is_gone(error: FaultError) -> bool:
    """Whether ``error`` says the resource does not exist (404): nothing left to restore."""
    cause = error.__cause__
    return isinstance(cause, HttpResponseError) and cause.status_code == 404


def _detail(exc: AzureError) -> str:
    """``403 AuthorizationFailed: message``: the status, ARM's error code and message, on one line."""
    parts = []
    if isinstance(exc, HttpResponseError) and exc.status_code is not None and exc.status_code != 200:
        parts.append(str(exc.status_code))
    error = exc.error if isinstance(exc, HttpResponseError) else None
    if error is not None and (error.code or error.message):
        code = f"{error.code}: " if error.code else ""
        parts.append(f"{code}{error.message or ''}".strip())
    else:
        parts.append(_first_line(exc))
    return " ".join(p for p in parts if p)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
