"""Decoding an object into the API's Go types, as the API server does before anything else.

The API server turns a request's JSON into Go structs. What does not fit fails there, before any
validation, with the Go decoder's own message; fields the structs do not have are dropped (and
reported, or refused, as the request's ``fieldValidation`` says). The lab has no Go structs: it walks
the object along the release's schemas (:mod:`drills.lab.kube.schemas`) and produces the same outcome.

Two decoders exist and their messages differ, so :func:`decode` takes the ``style``:

- ``json`` (create, update, JSON and merge patches): Go's ``encoding/json``, whose first type error
  reads ``json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32``
  (a number that does not fit reads ``number 1.5``);
- ``unstructured`` (strategic merge patches, applied on maps and converted after): apimachinery's
  converter, whose errors read ``unrecognized type: int32``, ``cannot convert float64 to int32``,
  ``cannot restore slice from map`` or ``cannot restore struct from: string``.

A ``[]byte`` field (a Secret's ``data``) must hold padded standard base64; Go's decoder fails with
``illegal base64 data at input byte N`` and no field name. Unknown fields are named as the strict
decoder names them: the dotted path with list indices
(``spec.template.spec.containers[0].imagePullPolcy``). Go type names come from the definitions' names;
string types with a Go name of their own (``v1.Protocol``) are named ``string``, a known difference; so is
a strategic merge patch's integer out of its field's range, refused (``cannot convert float64 to int32``)
where Go's converter would wrap it around.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from drills.lab.kube import schemas
from drills.lab.kube.schemas import INT_OR_STRING, MICRO_TIME, QUANTITY, TIME, Schema

Style = Literal["json", "unstructured"]

_CUSTOM = frozenset({INT_OR_STRING, QUANTITY, TIME, MICRO_TIME})
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class Decoded:
    """The outcome of decoding: the object as the structs keep it, the first type error, unknown fields."""

    value: Any
    error: str | None = None
    unknown: list[str] = field(default_factory=list)


def decode(value: Any, definition: str, style: Style) -> Decoded:
    """Decode ``value`` as the definition named ``definition`` (``io.k8s.api.apps.v1.Deployment``)."""
    decoder = _Decoder(style)
    kept = decoder.value(value, {"$ref": "#/definitions/" + definition}, None, [], "")
    return Decoded(kept, decoder.error, decoder.unknown)


class _Decoder:
    def __init__(self, style: Style) -> None:
        self.style = style
        self.error: str | None = None
        self.unknown: list[str] = []
        self.defs = schemas.definitions()

    def value(self, value: Any, schema: Schema, struct: str | None, names: list[str], strict: str) -> Any:
        """``value`` decoded as ``schema``; ``struct`` is the enclosing Go struct, ``names`` the field
        names from the root (what Go's messages show), ``strict`` the strict decoder's path."""
        if value is None:
            return None
        name = schemas.ref_name(schema["$ref"]) if "$ref" in schema else None
        if name is not None:
            if name in _CUSTOM:
                return self._custom(value, name, struct, names)
            schema = self.defs.get(name, {})
        kind = schema.get("type")
        if "properties" in schema:
            if not isinstance(value, dict):
                return self._mismatch(value, schema, name, struct, names, "struct")
            go_struct = name.rsplit(".", 1)[-1] if name else struct
            kept: dict[str, Any] = {}
            for key, item in value.items():
                prop = schema["properties"].get(key)
                path = f"{strict}.{key}" if strict else key
                if prop is None:
                    self.unknown.append(path)
                    continue
                decoded = self.value(item, prop, go_struct, [*names, key], path)
                if decoded is not None:
                    kept[key] = decoded
            return kept
        if kind == "object":
            if not isinstance(value, dict):
                return self._mismatch(value, schema, name, struct, names, "map")
            elem = schema.get("additionalProperties")
            if not isinstance(elem, dict):
                return value
            return {k: self.value(v, elem, struct, names, f"{strict}.{k}") for k, v in value.items()}
        if kind == "array":
            if not isinstance(value, list):
                return self._mismatch(value, schema, name, struct, names, "slice")
            return [self.value(v, schema.get("items") or {}, struct, names, f"{strict}[{n}]")
                    for n, v in enumerate(value)]
        if kind in ("integer", "number", "string", "boolean"):
            return self._scalar(value, schema, struct, names)
        return value

    def _scalar(self, value: Any, schema: Schema, struct: str | None, names: list[str]) -> Any:
        kind, target = schema["type"], _go(schema)
        if kind == "boolean":
            fits = isinstance(value, bool)
        elif kind == "string":
            fits = isinstance(value, str)
            corrupt = _base64_error(value) if fits and schema.get("format") == "byte" else None
            if corrupt is not None:
                self._fail(f"illegal base64 data at input byte {corrupt}")  # Go's own words, no context
                return value
        elif isinstance(value, bool) or not isinstance(value, int | float):
            fits = False
        elif kind == "number":
            fits = True
        elif self.style == "unstructured":
            if isinstance(value, float) and value != math.trunc(value):
                self._fail(f"cannot convert float64 to {target}")
                return value
            low, high = _INT32 if schema.get("format") == "int32" else _INT64
            if not low <= value <= high:
                # Go's converter would wrap the number around silently; the lab refuses it rather than
                # store, say, 2**80 replicas.
                self._fail(f"cannot convert float64 to {target}")
                return value
            fits = True
        else:
            low, high = _INT32 if schema.get("format") == "int32" else _INT64
            fits = isinstance(value, int) and low <= value <= high
            if not fits:
                self._fail(_json_error(f"number {_literal(value)}", target, struct, names))
                return value
        if not fits:
            if self.style == "unstructured":
                convertible = isinstance(value, int) and not isinstance(value, bool) and kind == "string"
                self._fail(f"cannot convert int64 to {target}" if convertible
                           else f"unrecognized type: {target}")
            else:
                self._fail(_json_error(_json_kind(value), target, struct, names))
        return value

    def _custom(self, value: Any, name: str, struct: str | None, names: list[str]) -> Any:
        """Types that decode themselves: int-or-string, quantities, timestamps."""
        fits = {INT_OR_STRING: (str, int), QUANTITY: (str, int, float)}.get(name, (str,))
        if isinstance(value, bool) or not isinstance(value, fits):
            self._fail(_json_error(_json_kind(value), schemas.go_type(name), struct, names)
                       if self.style == "json" else f"unrecognized type: {_source_kind(value)}")
        return value

    def _mismatch(self, value: Any, schema: Schema, name: str | None, struct: str | None, names: list[str],
                  shape: str) -> Any:
        if self.style == "unstructured":
            self._fail(f"cannot restore struct from: {_source_kind(value)}" if shape == "struct"
                       else f"cannot restore {shape} from {_source_kind(value)}")
        else:
            target = schemas.go_type(name) if name else _go(schema)
            self._fail(_json_error(_json_kind(value), target, struct, names))
        return value

    def _fail(self, message: str) -> None:
        if self.error is None:  # Go's decoders report the first error they meet
            self.error = message


def _json_error(found: str, target: str, struct: str | None, names: list[str]) -> str:
    if struct is None or not names:
        return f"json: cannot unmarshal {found} into Go value of type {target}"
    return f"json: cannot unmarshal {found} into Go struct field {struct}.{'.'.join(names)} of type {target}"


def _go(schema: Schema) -> str:
    """The Go type of a schema, as Go's messages name it."""
    if "$ref" in schema:
        return schemas.go_type(schemas.ref_name(schema["$ref"]))
    kind = schema.get("type")
    if kind == "integer":
        return "int32" if schema.get("format") == "int32" else "int64"
    if kind == "number":
        return "float64"
    if kind == "boolean":
        return "bool"
    if kind == "string":
        return "[]uint8" if schema.get("format") == "byte" else "string"
    if kind == "array":
        return "[]" + _go(schema.get("items") or {})
    if kind == "object":
        elem = schema.get("additionalProperties")
        return "map[string]" + _go(elem) if isinstance(elem, dict) else "map[string]interface {}"
    return "interface {}"


def _json_kind(value: Any) -> str:
    """How Go's encoding/json names a JSON value it cannot store."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _source_kind(value: Any) -> str:
    """The Go kind of a value in an unstructured map (JSON numbers are int64 or float64)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "slice" if isinstance(value, list) else "map"


_BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_error(text: str) -> int | None:
    """Where Go's padded standard base64 decoder gives up on ``text`` (its error's offset), or None."""
    data, at = text.encode(), 0
    while at < len(data):
        count = 0  # characters of the current group of four
        while count < 4:
            if at == len(data):
                return at - count if count else None
            char = data[at]
            at += 1
            if char in _BASE64:
                count += 1
            elif char in b"\r\n":
                continue
            elif char != ord("=") or count < 2:
                return at - 1
            else:
                return _padding_error(data, at, count)
    return None


def _padding_error(data: bytes, at: int, count: int) -> int | None:
    """After the first ``=`` of a group holding ``count`` characters: what Go's decoder says of the rest."""
    if count == 2:  # "==" expected
        while at < len(data) and data[at] in b"\r\n":
            at += 1
        if at == len(data):
            return len(data)
        if data[at] != ord("="):
            return at - 1
        at += 1
    while at < len(data) and data[at] in b"\r\n":
        at += 1
    return at if at < len(data) else None


def _literal(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
