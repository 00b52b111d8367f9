"""The protobuf request bodies kubectl sends where the lab cannot ask for JSON.

kubectl (client-go) encodes some built-in kinds as protobuf whatever the server prefers:
``kubectl auth can-i`` posts its ``SelfSubjectAccessReview`` so, ``kubectl create configmap``, ``secret``
and ``namespace`` their objects. Such a body is Kubernetes'
envelope, the magic ``k8s\\0`` and a ``runtime.Unknown`` message (field 1 its TypeMeta, field 2 the
object's bytes), around the object's message. This module reads that envelope and the review's
resource attributes into the JSON shape the rest of the lab works with; answers stay JSON, which
client-go decodes by the response's content type.
"""

from __future__ import annotations

import base64
from typing import Any

from drills.lab.kube.wire import BadRequest

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"

_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
                        6: "subresource", 7: "name"}
"""authorization.k8s.io/v1 ResourceAttributes: field number -> JSON name (the string fields)."""


def access_review(body: bytes) -> dict[str, Any]:
    """A protobuf ``SelfSubjectAccessReview`` as its JSON object (only ``spec.resourceAttributes``'
    strings and ``spec.nonResourceAttributes``' presence). Raises :class:`BadRequest`."""
    if not body.startswith(MAGIC):
        raise BadRequest("a protobuf body must start with the k8s envelope")
    envelope = _fields(body[len(MAGIC):])
    review = _fields(_one(envelope, 2))
    spec = _fields(_one(review, 2)) if 2 in review else {}
    result: dict[str, Any] = {}
    if 1 in spec:
        attributes = _fields(_one(spec, 1))
        result["resourceAttributes"] = {name: _one(attributes, number).decode("utf-8")
                                        for number, name in _RESOURCE_ATTRIBUTES.items()
                                        if number in attributes}
    if 2 in spec:
        result["nonResourceAttributes"] = {}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": result}


def rules_review(body: bytes) -> dict[str, Any]:
    """A protobuf ``SelfSubjectRulesReview`` as its JSON object (its ``spec.namespace``)."""
    if not body.startswith(MAGIC):
        raise BadRequest("a protobuf body must start with the k8s envelope")
    review = _fields(_one(_fields(body[len(MAGIC):]), 2))
    spec = _fields(_one(review, 2)) if 2 in review else {}
    namespace = _one(spec, 1).decode("utf-8") if 1 in spec else ""
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace}}


OBJECT_KINDS = frozenset({"ConfigMap", "Secret", "Namespace"})
"""The kinds :func:`config_object` reads: what ``kubectl create configmap|secret|namespace`` posts."""


def config_object(kind: str, body: bytes) -> dict[str, Any]:
    """A protobuf ConfigMap, Secret or Namespace (``metadata``'s names, labels and annotations, the
    data maps, a Secret's type, ``immutable``) as its JSON object. Raises :class:`BadRequest`."""
    if not body.startswith(MAGIC):
        raise BadRequest("a protobuf body must start with the k8s envelope")
    raw = _one(_fields(body[len(MAGIC):]), 2)
    fields, varints = _fields(raw), _varints(raw)
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": _object_meta(_one(fields, 1))}
    if kind == "ConfigMap":
        _put(obj, "data", _map(fields.get(2), text=True))
        _put(obj, "binaryData", _map(fields.get(3), text=False))
    elif kind == "Secret":
        _put(obj, "data", _map(fields.get(2), text=False))
        if 3 in fields:
            obj["type"] = _one(fields, 3).decode("utf-8")
        _put(obj, "stringData", _map(fields.get(4), text=True))
    immutable = varints.get(4 if kind == "ConfigMap" else 5)
    if kind != "Namespace" and immutable is not None:
        obj["immutable"] = bool(immutable)
    return obj


def _object_meta(raw: bytes) -> dict[str, Any]:
    fields = _fields(raw)
    meta: dict[str, Any] = {name: _one(fields, number).decode("utf-8")
                            for number, name in ((1, "name"), (2, "generateName"), (3, "namespace"))
                            if number in fields and _one(fields, number)}
    _put(meta, "labels", _map(fields.get(11), text=True))
    _put(meta, "annotations", _map(fields.get(12), text=True))
    return meta


def _map(entries: list[bytes] | None, *, text: bool) -> dict[str, str]:
    """A protobuf map's entries; ``bytes`` values as base64, as JSON carries them."""
    result: dict[str, str] = {}
    for entry in entries or []:
        fields = _fields(entry)
        key = fields.get(1, [b""])[-1].decode("utf-8")
        value = fields.get(2, [b""])[-1]
        result[key] = value.decode("utf-8") if text else base64.b64encode(value).decode()
    return result


def _put(obj: dict[str, Any], key: str, value: dict[str, str]) -> None:
    if value:
        obj[key] = value


def _varints(data: bytes) -> dict[int, int]:
    """The varint fields of one message, by number (the last value of each)."""
    found: dict[int, int] = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            found[number], at = _varint(data, at)
        elif kind == 2:
            length, at = _varint(data, at)
            at += length
        else:
            at += 8 if kind == 1 else 4
    return found


def _one(fields: dict[int, list[bytes]], number: int) -> bytes:
    values = fields.get(number)
    if not values:
        raise BadRequest(f"the protobuf body lacks field {number}")
    return values[-1]


def _fields(data: bytes) -> dict[int, list[bytes]]:
    """The length-delimited fields of one message, by number (varints and fixed fields skipped)."""
    fields: dict[int, list[bytes]] = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            _, at = _varint(data, at)
        elif kind == 1:
            at += 8
        elif kind == 5:
            at += 4
        elif kind == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise BadRequest("a protobuf field runs past the end of the body")
            fields.setdefault(number, []).append(data[at:at + length])
            at += length
        else:
            raise BadRequest(f"unsupported protobuf wire type {kind}")
    return fields


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise BadRequest("a protobuf varint is cut off")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at
