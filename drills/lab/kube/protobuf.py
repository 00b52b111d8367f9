"""Kubernetes' protobuf request bodies, read into the JSON objects the rest of the lab works with.

client-go's typed clients, which kubectl's imperative commands use (``create namespace``, ``create
deployment``, ``create configmap``, ``debug node/...``, ``auth can-i``), encode built-in kinds as protobuf
whatever the server prefers. Such a body is Kubernetes' envelope: the magic ``k8s\\0`` and a
``runtime.Unknown`` message (field 1 its TypeMeta, field 2 the object's bytes, 3 a content encoding)
around the object's message. The field tables of every built-in message the lab may be sent are facts of
the wire format, kept in ``protobuf_fields.json`` (written by ``scripts/protobuf-fields`` from Kubernetes'
``generated.proto`` files and Go types; docs/protocol-facts.md). :func:`decode` reads a body with them into
the object's JSON form as the API server would serialise it after decoding: omitempty zero values left out,
pointers kept even when zero, inline structs merged, maps from their repeated entries, ``bytes`` in
base64, and Kubernetes' special messages as their JSON (``Time``/``MicroTime`` as RFC 3339,
``IntOrString``, ``Quantity``, ``RawExtension``, ``FieldsV1``). Answers stay JSON, which client-go decodes
by the response's content type.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"

_META = "apimachinery.pkg.apis.meta.v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Fields = list[tuple[int, int, Any]]
"""One message's fields in wire order: (number, wire type, varint value or raw bytes)."""


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf object the lab can read."""


@cache
def _tables() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("protobuf_fields.json").read_text())


def decode(body: bytes) -> dict[str, Any]:
    """The object a protobuf body carries, as JSON with its ``kind`` and ``apiVersion``.

    Raises :class:`ProtobufError` for a body that is not one (or of a kind the tables lack)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("a protobuf body must start with the k8s envelope")
    envelope = _last(_fields(body[len(MAGIC):]))
    if envelope.get(3):
        raise ProtobufError(f"unsupported content encoding {envelope[3].decode(errors='replace')!r}")
    type_meta = _last(_fields(envelope.get(1, b"")))
    api_version = _text(type_meta.get(1, b""))
    kind = _text(type_meta.get(2, b""))
    packages = _tables()["packages"]
    messages = _tables()["messages"]
    name = f"{packages.get(api_version, '')}.{kind}"
    if name not in messages:
        name = f"{_META}.{kind}"  # options (DeleteOptions) travel under the group they are sent to
    if not kind or name not in messages:
        raise ProtobufError(f"the lab cannot read a protobuf {api_version} {kind}")
    obj = _message(name, envelope.get(2, b""))
    if not isinstance(obj, dict):
        raise ProtobufError(f"a protobuf {api_version} {kind} is not an object")
    return {"kind": kind, "apiVersion": api_version, **obj}


def _message(name: str, data: bytes) -> Any:
    """The JSON form of one message of type ``name``."""
    special = _SPECIAL.get(name.removeprefix("apimachinery.pkg."))
    if special is not None:
        return special(_last(_fields(data)))
    table: dict[str, list[str]] = _tables()["messages"][name]
    items = next((int(number) for number, field in table.items() if "l" in field[2]), None)
    if items is not None:  # a Go slice type wrapped in a message (ExtraValue): JSON has the slice
        return [_value(table[str(items)][1], t, r) for n, t, r in _fields(data) if n == items]
    result: dict[str, Any] = {}
    for number, wire_type, raw in _fields(data):
        field = table.get(str(number))
        if field is None:
            continue  # a field newer than the tables: the API server skips unknown fields too
        json_name, type_, flags = field
        if "m" in flags:
            entry = {n: (t, r) for n, t, r in _fields(_bytes(raw, wire_type))}  # 1 key, 2 value
            key = _text(_bytes(entry[1][1], entry[1][0])) if 1 in entry else ""
            result.setdefault(json_name, {})[key] = _value(type_, *entry[2]) if 2 in entry else _zero(type_)
        elif "r" in flags:
            result.setdefault(json_name, []).extend(_repeated(type_, wire_type, raw))
        elif "i" in flags:
            result.update(_value(type_, wire_type, raw))
        else:
            value = _value(type_, wire_type, raw)
            if "p" not in flags and _omitted(value, flags):
                result.pop(json_name, None)
            else:
                result[json_name] = value
    return result


def _omitted(value: Any, flags: str) -> bool:
    """Whether the JSON form leaves out this non-pointer value: a zero scalar under ``omitempty`` or
    ``omitzero``, a zero ``Time`` (None) under ``omitzero``."""
    if value is None:
        return "z" in flags
    return value in ("", 0, False) and ("e" in flags or "z" in flags)


def _value(type_: str, wire_type: int, raw: Any) -> Any:
    if type_ == "string":
        return _text(_bytes(raw, wire_type))
    if type_ == "bytes":
        return base64.b64encode(_bytes(raw, wire_type)).decode()
    if type_ == "bool":
        return bool(_int(raw, wire_type, 0))
    if type_ in ("int32", "int64"):
        return _signed(_int(raw, wire_type, 0))
    if type_ in ("uint32", "uint64"):
        return _int(raw, wire_type, 0)
    if type_ == "double":
        return struct.unpack("<d", _bytes(raw, wire_type, 1))[0]
    if type_ == "float":
        return struct.unpack("<f", _bytes(raw, wire_type, 5))[0]
    return _message(type_, _bytes(raw, wire_type))


def _repeated(type_: str, wire_type: int, raw: Any) -> list[Any]:
    """One occurrence of a repeated field: one value, or several packed numbers."""
    if wire_type != 2 or type_ in ("string", "bytes") or "." in type_:
        return [_value(type_, wire_type, raw)]
    packed, at, values = raw, 0, []
    while at < len(packed):
        if type_ in ("double", "float"):
            width = 8 if type_ == "double" else 4
            values.append(_value(type_, 1 if width == 8 else 5, packed[at:at + width]))
            at += width
        else:
            number, at = _varint(packed, at)
            values.append(_value(type_, 0, number))
    return values


def _zero(type_: str) -> Any:
    """A map entry's missing value: the type's zero value."""
    return {"string": "", "bytes": "", "bool": False}.get(type_, 0 if "." not in type_ else {})


def _time(fields: dict[int, Any]) -> str | None:
    # metav1.Time keeps whole seconds: its Unmarshal drops the nanoseconds, as its JSON does.
    if not fields:
        return None
    moment = _EPOCH + timedelta(seconds=_signed(fields.get(1, 0)))
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"


def _micro_time(fields: dict[int, Any]) -> str | None:
    if not fields:
        return None
    moment = _EPOCH + timedelta(seconds=_signed(fields.get(1, 0)), microseconds=fields.get(2, 0) // 1000)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S.%f}Z"


def _int_or_string(fields: dict[int, Any]) -> int | str:
    if fields.get(1, 0) == 1:
        return _text(fields.get(3, b""))
    return _signed(fields.get(2, 0))


def _raw_json(fields: dict[int, Any]) -> Any:
    raw = fields.get(1, b"")
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ProtobufError("an embedded object is neither JSON nor protobuf") from exc


_SPECIAL = {
    "apis.meta.v1.Time": _time,
    "apis.meta.v1.MicroTime": _micro_time,
    "util.intstr.IntOrString": _int_or_string,
    "api.resource.Quantity": lambda fields: _text(fields.get(1, b"")),
    "runtime.RawExtension": _raw_json,
    "apis.meta.v1.FieldsV1": _raw_json,
}
"""Kubernetes' messages whose JSON form is not their fields (by name below ``k8s.io.apimachinery.pkg``)."""


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtobufError("a protobuf string is not UTF-8") from exc


def _bytes(raw: Any, wire_type: int, expected: int = 2) -> bytes:
    if wire_type != expected or not isinstance(raw, bytes):
        raise ProtobufError(f"a protobuf field has wire type {wire_type}, expected {expected}")
    return raw


def _int(raw: Any, wire_type: int, expected: int) -> int:
    if wire_type != expected or not isinstance(raw, int):
        raise ProtobufError(f"a protobuf field has wire type {wire_type}, expected {expected}")
    return raw


def _last(fields: Fields) -> dict[int, Any]:
    """The fields by number, the last occurrence winning (as for a non-repeated field)."""
    return {number: value for number, _, value in fields}


def _fields(data: bytes) -> Fields:
    """The fields of one message, in wire order."""
    fields: Fields = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, at = _varint(data, at)
            fields.append((number, 0, value))
            continue
        if wire_type == 2:
            length, at = _varint(data, at)
        elif wire_type in (1, 5):
            length = 8 if wire_type == 1 else 4
        else:
            raise ProtobufError(f"unsupported protobuf wire type {wire_type}")
        if at + length > len(data):
            raise ProtobufError("a protobuf field runs past the end of the body")
        fields.append((number, wire_type, data[at:at + length]))
        at += length
    return fields


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ProtobufError("a protobuf varint is cut off")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at
