"""The Kubernetes API's schemas for the release the lab claims, as OpenAPI definitions.

They come from the ``kubernetes-validate`` package, which ships the definitions of every Kubernetes
release's OpenAPI document (``_definitions.json``, one per release) rewritten as JSON Schema: nullable
types (``["integer", "null"]``), references under ``#/$defs/``, int-or-string and quantities as
``oneOf``. :func:`definitions` turns them back into the OpenAPI v2 shape the API server publishes
(``"type": "integer"``, ``#/definitions/`` references, ``format: int-or-string``), keeping each
definition's description, ``required`` fields, formats and ``x-kubernetes-*`` extensions (the group,
version and kind of a top-level type, the patch strategies and merge keys of lists).

Both the validation of writes (:mod:`drills.lab.kube.validation`) and the OpenAPI documents
(:mod:`drills.lab.kube.openapi`) read them from here.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

from drills.lab.kube.discovery import KUBERNETES_VERSION

Schema = dict[str, Any]
"""One OpenAPI schema object."""

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"

_REF_PREFIX = "#/$defs/"
_V2_PREFIX = "#/definitions/"

# The packaged definitions lose these types' descriptions (they become a bare oneOf): restate them.
_SCALARS: dict[str, Schema] = {
    INT_OR_STRING: {"description": "IntOrString is a type that can hold an int32 or a string. When used in "
                    "JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.",
                    "format": "int-or-string", "type": "string"},
    QUANTITY: {"description": "Quantity is a fixed-point representation of a number: a decimal with an "
               "optional binary (Ki, Mi, Gi...) or decimal (m, k, M, G...) suffix, as in 500m or 1Gi.",
               "type": "string"},
}


def ref_name(ref: str) -> str:
    """The definition name a ``$ref`` (``#/definitions/NAME``) points at."""
    return ref.rsplit("/", 1)[-1]


@functools.cache
def definitions() -> dict[str, Schema]:
    """Every definition of the claimed release, by name (``io.k8s.api.apps.v1.Deployment``), OpenAPI v2."""
    release = f"{KUBERNETES_VERSION}-local"
    path = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / release
    raw = json.loads((path / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
    return {name: _SCALARS.get(name) or _openapi(schema) for name, schema in raw.items()}


@functools.cache
def kinds() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> the name of the definition of that kind."""
    found: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            found.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]), name)
    return found


def kind_definition(group: str, version: str, kind: str) -> str | None:
    """The definition name of a kind, or None when the release has no such kind."""
    return kinds().get((group, version, kind))


def go_type(name: str) -> str:
    """The Go type a definition stands for, as Go names it in messages (``v1.DeploymentSpec``)."""
    parts = name.split(".")
    return f"{parts[-2]}.{parts[-1]}"


def references(schema: Any) -> set[str]:
    """The names of the definitions ``schema`` refers to directly."""
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                found.add(ref_name(value))
            else:
                found |= references(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= references(value)
    return found


def closure(names: set[str]) -> set[str]:
    """``names`` and every definition they reach through references."""
    defs, seen, todo = definitions(), set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo.extend(references(defs[name]))
    return seen


def _openapi(schema: Any) -> Any:
    """A packaged JSON Schema fragment back in OpenAPI v2 form."""
    if isinstance(schema, list):
        return [_openapi(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: Schema = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out[key] = types[0] if len(types) == 1 else types
        elif key == "$ref" and isinstance(value, str):
            out[key] = _V2_PREFIX + value.removeprefix(_REF_PREFIX).rsplit("/", 1)[-1]
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _property(name, prop) for name, prop in value.items()}
        else:
            out[key] = _openapi(value)
    return out


def _property(name: str, schema: Any) -> Any:
    converted = _openapi(schema)
    # The packager pins apiVersion and kind to one value (an enum): the API's own document does not.
    if name in ("apiVersion", "kind") and isinstance(converted, dict):
        converted.pop("enum", None)
    return converted
