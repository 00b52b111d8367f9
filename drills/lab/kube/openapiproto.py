"""The OpenAPI v2 document in the protobuf form client-go asks for.

client-go's ``OpenAPISchema`` accepts ``/openapi/v2`` only as protobuf: the ``openapi.v2.Document``
message of google/gnostic's ``OpenAPIv2.proto``. kubectl uses it where OpenAPI v3 cannot serve, notably
to validate a ``kind: List`` file on the client side (``kubectl apply -f`` of what ``kubectl get -o yaml``
printed). What kubectl reads from it is the definitions: each schema's reference, type, format,
description, required fields, properties, items, additional properties and ``x-kubernetes-*``
extensions (whose values gnostic keeps as YAML text: JSON is YAML). Only those are encoded; the paths
are left out (kubectl learns about ``fieldValidation`` from v3).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from drills.lab.kube import schemas
from drills.lab.kube.discovery import KUBERNETES_VERSION

MEDIA_TYPES = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
               "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
"""What clients ask for (the answer's ``Content-Type`` is ``application/octet-stream``)."""


@functools.cache
def document() -> bytes:
    """The encoded ``openapi.v2.Document``: version, info and every definition of the claimed release."""
    info = _string(1, "Kubernetes") + _string(2, KUBERNETES_VERSION)
    definitions = b"".join(_message(1, _string(1, name) + _message(2, _schema(schema)))
                           for name, schema in schemas.definitions().items())
    return _string(1, "2.0") + _message(2, info) + _message(9, definitions)


def _schema(schema: dict[str, Any]) -> bytes:
    """An ``openapi.v2.Schema`` message."""
    out = b""
    if "$ref" in schema:
        out += _string(1, schema["$ref"])
    if "format" in schema:
        out += _string(2, schema["format"])
    if "description" in schema:
        out += _string(4, schema["description"])
    out += b"".join(_string(19, name) for name in schema.get("required", []))
    for value in schema.get("enum", []):
        out += _message(20, _any(value))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out += _message(21, _message(1, _schema(extra)))
    elif isinstance(extra, bool):
        out += _message(21, _key(2, 0) + _varint(int(extra)))
    kind = schema.get("type")
    if kind is not None:
        out += _message(22, b"".join(_string(1, k) for k in ([kind] if isinstance(kind, str) else kind)))
    if isinstance(schema.get("items"), dict):
        out += _message(23, _message(1, _schema(schema["items"])))
    for part in schema.get("allOf", []):
        out += _message(24, _schema(part))
    if "properties" in schema:
        out += _message(25, b"".join(_message(1, _string(1, name) + _message(2, _schema(prop)))
                                     for name, prop in schema["properties"].items()))
    for name, value in schema.items():
        if name.startswith("x-"):
            out += _message(31, _string(1, name) + _message(2, _any(value)))
    return out


def _any(value: Any) -> bytes:
    """An ``openapi.v2.Any``: the value as YAML text (field 2)."""
    return _string(2, json.dumps(value))


def _string(number: int, text: str) -> bytes:
    return _message(number, text.encode())


def _message(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
