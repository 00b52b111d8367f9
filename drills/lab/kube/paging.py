"""Paged lists: ``limit`` and ``continue``, as the Kubernetes API server pages a list.

A list with ``limit=N`` answers at most N items, sorted by namespace and name, and, when more remain,
an opaque ``metadata.continue`` token and ``metadata.remainingItemCount`` (left out when the list is
filtered by a selector, as etcd-backed Kubernetes leaves it out). The token is what Kubernetes' is:
base64url (unpadded) of ``{"v":"meta.k8s.io/v1","rv":VERSION,"start":KEY}``, where ``VERSION`` is the
first page's resourceVersion and ``KEY`` the storage key, relative to the list's prefix, right after
the last item served (``shop/web-1\\x00`` across namespaces, ``web-1\\x00`` within one). Every later
page shows the objects as they were at that version, so the pages together are one consistent list.

When that version has fallen out of the store's history, the API answers 410 ``Expired`` with
Kubernetes' message and, in the Status's ``metadata.continue``, a token with version -1 that goes on
from the same key over the objects as they are now (an inconsistent remainder, as Kubernetes offers).
A token that does not decode answers 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from drills.lab.kube.store import ApiError, Obj
from drills.lab.kube.wire import BadRequest

INCONSISTENT = -1
"""The version of a token that continues over the current objects (what a 410 hands back)."""

EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and "
    "now may show up in the list.")
"""Kubernetes' message when a continue token's version is no longer kept (etcd3 ``inconsistentContinue``)."""


class ContinueExpired(ApiError):
    """A continue token whose version is no longer kept (410); :attr:`token` goes on inconsistently."""

    code, reason = 410, "Expired"

    def __init__(self, token: str) -> None:
        super().__init__(EXPIRED_MESSAGE)
        self.token = token


@dataclass(frozen=True)
class Continue:
    """What a continue token says: the version the list is read at, and the key it goes on from."""

    version: int
    start: str

    def encode(self) -> str:
        """The opaque token."""
        doc = json.dumps({"v": "meta.k8s.io/v1", "rv": self.version, "start": self.start},
                         separators=(",", ":"))
        return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Continue:
        """The token's content; raises :class:`BadRequest` as Kubernetes does for one it did not make."""
        try:
            doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"invalid continue token: continue key is not valid: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("v") != "meta.k8s.io/v1":
            raise BadRequest("invalid continue token: continue key is not valid: server does not recognize "
                             "this encoding")
        version, start = doc.get("rv"), doc.get("start")
        if not isinstance(version, int) or isinstance(version, bool) or version in (0,) or version < -1:
            raise BadRequest("invalid continue token: continue key is not valid: incorrect encoded start "
                             "resourceVersion (version meta.k8s.io/v1)")
        if not isinstance(start, str) or not start or start.startswith("/") or ".." in start.split("/"):
            raise BadRequest("invalid continue token: continue key is not valid: encoded start key is "
                             "invalid")
        return cls(version, start)


@dataclass(frozen=True)
class Page:
    """One page of a list and what its metadata says beyond the version."""

    items: list[Obj]
    next: Continue | None
    remaining: int | None

    def metadata(self, resource_version: str) -> Obj:
        """The list's ``metadata``: the version and, when more remain, the token and the count."""
        meta: Obj = {"resourceVersion": resource_version}
        if self.next is not None:
            meta["continue"] = self.next.encode()
            if self.remaining is not None:
                meta["remainingItemCount"] = self.remaining
        return meta


def key(obj: Obj, *, within_namespace: bool) -> str:
    """The storage key of ``obj`` relative to a list's prefix (``ns/name``, or ``name`` within one)."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return meta["name"] if within_namespace or not namespace else f"{namespace}/{meta['name']}"


def page(items: list[Obj], *, limit: int | None, after: str | None, version: int, within_namespace: bool,
         counted: bool) -> Page:
    """The page of ``items`` (sorted) after the key ``after``, at most ``limit`` long; ``counted`` says
    whether the remaining count is told (unfiltered lists)."""
    items = sorted(items, key=lambda i: key(i, within_namespace=within_namespace))  # etcd's key order
    if after is not None:
        items = [i for i in items if key(i, within_namespace=within_namespace) >= after]
    if not limit or len(items) <= limit:
        return Page(items, None, None)
    served = items[:limit]
    last = key(served[-1], within_namespace=within_namespace)
    return Page(served, Continue(version, last + "\x00"), len(items) - limit if counted else None)


def parse_limit(value: str | None) -> int | None:
    """The ``limit`` parameter; 0 or absent means everything. Raises :class:`BadRequest` when invalid."""
    if value in (None, ""):
        return None
    try:
        limit = int(value)
    except ValueError as exc:
        raise BadRequest(f"limit: invalid integer {value!r}") from exc
    if limit < 0:
        raise BadRequest("list limit must not be negative")
    return limit or None
