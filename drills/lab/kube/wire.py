"""The API server's HTTP wire: what a request names and asks for, and how answers are written.

Reading a request: the resource path (:class:`Target`, :func:`parse_target`), the query's selectors,
flags and integers, the body (JSON, or the protobuf typed clients send: :mod:`.protobuf`; other content
types answer 415), and the representation the
client negotiates in ``Accept`` (:func:`view`: a ``meta.k8s.io`` Table or bare metadata; JSON otherwise,
also when protobuf is asked for). Writing an answer: compact JSON, objects as the API serialises them
(:func:`as_served`), and failures as ``Status`` objects with the HTTP code of their
:class:`~drills.lab.kube.store.ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from drills.lab.kube import protobuf
from drills.lab.kube.selectors import FieldSelector, LabelSelector, SelectorError
from drills.lab.kube.store import PDBS, RESOURCES, ApiError, Invalid, NotFound, Obj, Resource


class BadRequest(ApiError):
    """A request the server cannot make sense of (400)."""

    code, reason = 400, "BadRequest"


class MethodNotAllowed(ApiError):
    """A method the requested resource does not serve (405)."""

    code, reason = 405, "MethodNotAllowed"


class UnsupportedMediaType(ApiError):
    """A body in a content type the request does not accept (415)."""

    code, reason = 415, "UnsupportedMediaType"


@dataclass(frozen=True)
class Target:
    """What a resource path names."""

    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None

    def details(self) -> Obj:
        """The ``details`` of a Status about this object."""
        details: Obj = {"name": self.name, "kind": self.resource.plural}
        if self.resource.group:
            details["group"] = self.resource.group
        return details

    @property
    def qualified(self) -> str:
        """The resource's plural with its group, as messages name it (``deployments.apps``)."""
        group = self.resource.group
        return f"{self.resource.plural}.{group}" if group else self.resource.plural


def parse_target(group: str, version: str, tail: str) -> Target:
    """What ``/api(s)/{group}/{version}/{tail}`` names; raises :class:`NotFound` for what is not served."""
    served = {r.plural: r for r in RESOURCES if r.group == group and r.version == version}
    parts = [p for p in tail.split("/") if p]
    unknown = NotFound("the server could not find the requested resource")
    if not served or not parts:
        raise unknown
    namespace = None
    if parts[0] == "namespaces" and len(parts) >= 3 and parts[2] in served and served[parts[2]].namespaced:
        namespace, parts = parts[1], parts[2:]
    resource = served.get(parts[0])
    if resource is None or len(parts) > 3:
        raise unknown
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if sub is not None and sub not in resource.subresources:
        raise unknown
    if name is not None and resource.namespaced and namespace is None:
        raise unknown
    return Target(resource, namespace, name, sub)


def view(request: web.Request) -> tuple[str, str] | None:
    """The alternative representation the client asks for first, if any: a Table or bare metadata."""
    for media in request.headers.get("Accept", "").split(","):
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        as_ = params.get("as")
        if as_ is None:
            return None
        if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            if as_ == "Table":
                return "Table", f"meta.k8s.io/{params['v']}"
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return "PartialObjectMetadata", f"meta.k8s.io/{params['v']}"
    return None


def selectors(query: Mapping[str, str]) -> tuple[LabelSelector, FieldSelector]:
    """The query's ``labelSelector`` and ``fieldSelector``; raises :class:`BadRequest` for bad ones."""
    try:
        labels = LabelSelector.parse(query.get("labelSelector"))
        return labels, FieldSelector.parse(query.get("fieldSelector"))
    except SelectorError as exc:
        raise BadRequest(str(exc)) from exc


def dry_run(values: list[Any], options_kind: str) -> bool:
    """Whether a write's ``dryRun`` values (the query's, or a DeleteOptions' list) ask for a dry run.

    ``All`` is the only value Kubernetes knows; anything else is refused as the API server refuses it,
    a 422 about the request's options (``CreateOptions``, ``UpdateOptions``, ``PatchOptions``,
    ``DeleteOptions``).
    """
    if any(v != "All" for v in values):
        quoted = ", ".join(json.dumps(str(v)) for v in values)
        raise Invalid(f'{options_kind}.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
                      f'[]string{{{quoted}}}: supported values: "All"')
    return bool(values)


async def read_body(request: web.Request, *, required: bool, any_type: bool = False) -> Any:
    """The request's body as JSON, None when empty and not ``required``.

    JSON (or no content type) is read, and Kubernetes' protobuf; any other type only as JSON and only
    when ``any_type``. Raises :class:`BadRequest` or :class:`UnsupportedMediaType`.
    """
    raw = await request.read()
    if not raw.strip():
        if required:
            raise BadRequest("the request body is empty")
        return None
    media = content_type(request)
    if media == protobuf.PROTOBUF:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as exc:
            raise BadRequest(f"the request body is not a protobuf object the lab can read: {exc}") from exc
    if not any_type and media not in ("", "application/json", "*/*"):
        raise UnsupportedMediaType(f'the body of the request was in an unknown format ("{media}") - '
                                   f'accepted media types include: application/json, {protobuf.PROTOBUF}')
    return parse_json(raw)


def content_type(request: web.Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON; raises :class:`BadRequest` when it is not."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc


def expect_object(body: Any, kind: str, api_version: str) -> Obj:
    """``body`` when it is an object of ``kind`` (or states no kind); raises :class:`BadRequest`."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
        raise BadRequest(f"the request body must be a {kind} object")
    if body.get("kind") not in (None, "", kind) or body.get("apiVersion") not in (None, "", api_version):
        raise BadRequest(f"the body is a {body.get('apiVersion')} {body.get('kind')}, expected "
                         f"{api_version} {kind}")
    return body


def integer(value: Any, name: str) -> int | None:
    """The integer parameter ``name``, None when absent; raises :class:`BadRequest` when not an integer."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{name}: invalid integer {value!r}") from exc


def flag(value: str | None) -> bool:
    """Whether a boolean query parameter is set."""
    return value in ("true", "1", "True")


def as_served(resource: Resource, obj: Obj) -> Obj:
    """An object as the API serialises it: a budget's status counters are never omitted (Go zero values)."""
    if resource != PDBS:
        return obj
    counters = {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}
    return {**obj, "status": {**counters, **(obj.get("status") or {})}}


def status(code: int, reason: str, message: str, *, success: bool = False,
           details: Obj | None = None) -> Obj:
    """A ``v1`` Status object; empty ``reason``, ``message`` and ``details`` are left out, as the API does."""
    doc: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success" if success else "Failure"}
    if message:
        doc["message"] = message
    if reason:
        doc["reason"] = reason
    if details is not None:
        doc["details"] = details
    doc["code"] = code
    return doc


def error(exc: ApiError, details: Obj | None = None) -> web.Response:
    """The failure Status of ``exc``, with its HTTP code and ``details`` (else the error's own). A NotFound
    always has them: its own, else ``details``, else empty (a path the server does not serve)."""
    if isinstance(exc, NotFound):
        details = exc.details or details or {}
    return json_response(status(exc.code, exc.reason, exc.message, details=details or exc.details), exc.code)


def json_response(obj: Any, status: int = 200) -> web.Response:
    """``obj`` as compact JSON."""
    return web.Response(body=json.dumps(obj, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")
