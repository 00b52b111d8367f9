"""The OpenAPI documents the API server publishes, built from the release's schemas.

kubectl reads them for ``apply``, ``create`` and ``explain``: it looks up ``/openapi/v3`` (an index of
``paths``, one per group version, each with a ``serverRelativeURL`` carrying ``?hash=``), fetches the
document of the object's group version, finds the kind's schema by its
``x-kubernetes-group-version-kind``, computes client-side apply patches from the lists' patch
strategies and merge keys, and prints field documentation. Before it sends a write with its default
``--validate=strict`` it checks that the PATCH operation of the kind's path accepts the
``fieldValidation`` query parameter; finding it, it leaves validation to the server and sends
``fieldValidation=Strict`` (:mod:`drills.lab.kube.validation`).

``/openapi/v2`` is the whole API in one Swagger 2.0 document, in JSON, or in protobuf
(:mod:`drills.lab.kube.openapiproto`) to clients that ask for that first: client-go's ``OpenAPISchema``,
which kubectl uses to validate ``kind: List`` files on the client side. Another media type answers 406.

Paths exist for every resource of :data:`~drills.lab.kube.store.RESOURCES` and its subresources; the
schemas of a group version's document are those of all its kinds and what they reference.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from aiohttp import web

from drills.lab.kube import openapiproto, schemas
from drills.lab.kube.discovery import KUBERNETES_VERSION
from drills.lab.kube.patch import PATCH_TYPES
from drills.lab.kube.store import RESOURCES, ApiError, NotFound, Obj, Resource

JSON = "application/json"
_INFO = {"title": "Kubernetes", "version": KUBERNETES_VERSION}
_BEARER = {"description": "Bearer Token authentication", "type": "apiKey", "name": "authorization",
           "in": "header"}
_SUBRESOURCE_KINDS = {"scale": ("autoscaling", "v1", "Scale"), "eviction": ("policy", "v1", "Eviction")}
_WRITE_PARAMETERS = (
    ("dryRun", "When present, indicates that modifications should not be persisted."),
    ("fieldManager", "fieldManager is a name associated with the actor or entity that is making these "
                     "changes."),
    ("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request "
                        "(POST/PUT/PATCH) containing unknown or duplicate fields: Ignore, Warn (the default) "
                        "or Strict."),
)


class NotAcceptable(ApiError):
    """A representation the server cannot produce (406)."""

    code, reason = 406, "NotAcceptable"


async def serve_v2(request: web.Request) -> web.Response:
    """``GET /openapi/v2``: protobuf to clients that ask for it first (client-go), JSON to the others."""
    wanted = _media(request.headers.get("Accept", ""))
    for media in wanted or [JSON]:
        if media in openapiproto.MEDIA_TYPES:
            # The media type itself is no valid Content-Type (the "@"): the API server says octet-stream.
            return web.Response(body=openapiproto.document(), content_type="application/octet-stream")
        if media in _JSON_TYPES:
            return web.Response(body=v2(), content_type=JSON)
    raise NotAcceptable(f"only the following media types are accepted: {JSON}, {openapiproto.MEDIA_TYPES[0]}")


async def serve_v3_index(request: web.Request) -> web.Response:
    """``GET /openapi/v3``."""
    _require_json(request)
    return web.Response(body=_dump(v3_index()), content_type=JSON)


async def serve_v3(request: web.Request) -> web.StreamResponse:
    """``GET /openapi/v3/{api/v1|apis/GROUP/VERSION}[?hash=H]``: a stale hash redirects to the current one."""
    _require_json(request)
    found = v3_document(request.match_info["path"])
    if found is None:
        raise NotFound("the server could not find the requested resource")
    doc, digest = found
    asked = request.query.get("hash")
    if asked is not None and asked != digest:
        return web.Response(status=301, headers={"Location": f"{request.path}?hash={digest}"})
    cache = "public, immutable" if asked else "no-cache, private"
    return web.Response(body=doc, content_type=JSON, headers={"ETag": f'"{digest}"', "Cache-Control": cache})


def _require_json(request: web.Request) -> None:
    if not accepts_json(request.headers.get("Accept", "")):
        raise NotAcceptable(f"only the following media types are accepted: {JSON}")


def accepts_json(accept: str) -> bool:
    """Whether an ``Accept`` header admits JSON (an absent header does)."""
    wanted = _media(accept)
    return not wanted or bool(set(wanted) & _JSON_TYPES)


_JSON_TYPES = {JSON, "application/*", "*/*"}


def _media(accept: str) -> list[str]:
    """The media types an ``Accept`` header lists, in its order."""
    return [m for m in (part.split(";")[0].strip().lower() for part in accept.split(",")) if m]


@functools.cache
def v2() -> bytes:
    """The ``/openapi/v2`` document (Swagger 2.0), as JSON."""
    paths: dict[str, Obj] = {}
    for resource in RESOURCES:
        for path, operations in _paths(resource).items():
            paths[path] = {**{method: _v2_operation(op) for method, op in operations.items()},
                           "parameters": _path_parameters(path)}
    doc = {"swagger": "2.0", "info": _INFO, "paths": paths, "definitions": schemas.definitions(),
           "securityDefinitions": {"BearerToken": _BEARER},
           "security": [{"BearerToken": []}]}
    return _dump(doc)


@functools.cache
def v3_index() -> Obj:
    """The ``/openapi/v3`` index: each group version's document with its content hash."""
    return {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(doc)}"}
                      for gv, doc in _v3_documents().items()}}


def v3_document(group_version_path: str) -> tuple[bytes, str] | None:
    """The document of ``api/v1`` or ``apis/GROUP/VERSION`` and its hash, None for one not served."""
    doc = _v3_documents().get(group_version_path)
    return None if doc is None else (doc, _hash(doc))


def _hash(doc: bytes) -> str:
    return hashlib.sha512(doc).hexdigest().upper()


@functools.cache
def _v3_documents() -> dict[str, bytes]:
    served: dict[str, list[Resource]] = {}
    for resource in RESOURCES:
        key = f"apis/{resource.group}/{resource.version}" if resource.group else f"api/{resource.version}"
        served.setdefault(key, []).append(resource)
    return {key: _v3_document(resources) for key, resources in served.items()}


def _v3_document(resources: list[Resource]) -> bytes:
    group, version = resources[0].group, resources[0].version
    paths: dict[str, Obj] = {}
    for resource in resources:
        for path, operations in _paths(resource).items():
            item: Obj = {method: _v3_operation(op) for method, op in operations.items()}
            item["parameters"] = [_v3_parameter(p) for p in _path_parameters(path)]
            paths[path] = item
    kinds = {name for (g, v, _k), name in schemas.kinds().items() if (g, v) == (group, version)}
    referenced = schemas.closure(kinds | schemas.references(paths))
    defs = schemas.definitions()
    components = {name: _v3_schema(_v3_component(name, defs[name])) for name in sorted(referenced)}
    return _dump({"openapi": "3.0.0", "info": _INFO, "paths": _v3_refs(paths),
                  "components": {"schemas": components, "securitySchemes": {"BearerToken": _BEARER}}})


_V3_ONE_OF = {schemas.INT_OR_STRING: ("integer", "string"), schemas.QUANTITY: ("string", "number")}


def _v3_component(name: str, schema: Obj) -> Obj:
    """A definition as v3 has it: types whose values take either of two types say so with ``oneOf``
    (v2 cannot), which is also why ``kubectl explain`` names them (``<IntOrString>``)."""
    types = _V3_ONE_OF.get(name)
    if types is None:
        return schema
    return {**{k: v for k, v in schema.items() if k != "type"}, "oneOf": [{"type": t} for t in types]}


def _paths(resource: Resource) -> dict[str, dict[str, Obj]]:
    """The operations of ``resource``, by path then method, in a neutral form (see ``_v2_operation``)."""
    root = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    base = f"{root}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else \
        f"{root}/{resource.plural}"
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    kind_ref = schemas.kind_definition(resource.group, resource.version, resource.kind)
    list_ref = schemas.kind_definition(resource.group, resource.version, resource.list_kind)

    def op(action: str, ref: str | None, kind: Obj, *, body: bool = False, patch: bool = False) -> Obj:
        return {"action": action, "gvk": kind, "ref": ref, "body": body, "patch": patch,
                "id": f"{action}{resource.kind}"}

    paths: dict[str, dict[str, Obj]] = {
        base: {"get": op("list", list_ref, gvk), "post": op("post", kind_ref, gvk, body=True)},
        f"{base}/{{name}}": {"get": op("get", kind_ref, gvk), "put": op("put", kind_ref, gvk, body=True),
                             "patch": op("patch", kind_ref, gvk, body=True, patch=True),
                             "delete": op("delete", "io.k8s.apimachinery.pkg.apis.meta.v1.Status", gvk)},
    }
    for sub in resource.subresources:
        group, version, kind = _SUBRESOURCE_KINDS.get(sub, (resource.group, resource.version, resource.kind))
        sub_gvk = {"group": group, "version": version, "kind": kind}
        ref = schemas.kind_definition(group, version, kind)
        path = f"{base}/{{name}}/{sub}"
        if sub == "eviction":
            paths[path] = {"post": op("post", ref, sub_gvk, body=True)}
        else:
            paths[path] = {"get": op("get", ref, sub_gvk), "put": op("put", ref, sub_gvk, body=True),
                           "patch": op("patch", ref, sub_gvk, body=True, patch=True)}
    return paths


def _path_parameters(path: str) -> list[Obj]:
    params = []
    for name in ("name", "namespace"):
        if f"{{{name}}}" in path:
            params.append({"name": name, "in": "path", "required": True, "type": "string",
                           "description": f"{name} of the object" if name == "name" else
                           "object name and auth scope, such as for teams and projects"})
    return params


def _query_parameters(op: Obj) -> list[Obj]:
    if not op["body"]:
        return []
    return [{"name": name, "in": "query", "type": "string", "uniqueItems": True, "description": text}
            for name, text in _WRITE_PARAMETERS]


def _v2_operation(op: Obj) -> Obj:
    consumes = list(PATCH_TYPES) if op["patch"] else ["*/*"]
    params = _query_parameters(op)
    if op["body"]:
        body_ref = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch" if op["patch"] else op["ref"]
        params.insert(0, {"name": "body", "in": "body", "required": True,
                          "schema": {"$ref": f"#/definitions/{body_ref}"}})
    response: Obj = {"description": "OK"}
    if op["ref"]:
        response["schema"] = {"$ref": f"#/definitions/{op['ref']}"}
    return {"operationId": op["id"], "consumes": consumes,
            "produces": [JSON, "application/yaml", "application/vnd.kubernetes.protobuf"],
            "schemes": ["https"], "parameters": params, "responses": {"200": response, "401": {
                "description": "Unauthorized"}},
            "x-kubernetes-action": op["action"], "x-kubernetes-group-version-kind": op["gvk"]}


def _v3_operation(op: Obj) -> Obj:
    out: Obj = {"operationId": op["id"], "parameters": [_v3_parameter(p) for p in _query_parameters(op)],
                "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
                "x-kubernetes-action": op["action"], "x-kubernetes-group-version-kind": op["gvk"]}
    if op["ref"]:
        out["responses"]["200"]["content"] = {JSON: {"schema": {"$ref": f"#/definitions/{op['ref']}"}}}
    if op["body"]:
        body_ref = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch" if op["patch"] else op["ref"]
        types = PATCH_TYPES if op["patch"] else (JSON,)
        out["requestBody"] = {"required": True, "content": {
            t: {"schema": {"$ref": f"#/definitions/{body_ref}"}} for t in types}}
    return out


def _v3_parameter(param: Obj) -> Obj:
    out = {k: v for k, v in param.items() if k not in ("type", "uniqueItems")}
    out["schema"] = {"type": "string"}
    if param.get("uniqueItems"):
        out["schema"]["uniqueItems"] = True
    return out


def _v3_schema(schema: Any) -> Any:
    """A definition in OpenAPI v3 form: a reference with siblings becomes ``allOf``, as the API writes it."""
    if isinstance(schema, list):
        return [_v3_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema and len(schema) > 1:
        rest = {k: _v3_schema(v) for k, v in schema.items() if k != "$ref"}
        return {"allOf": [{"$ref": _v3_ref(schema["$ref"])}], **rest}
    return {k: (_v3_ref(v) if k == "$ref" else _v3_schema(v)) for k, v in schema.items()}


def _v3_refs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (_v3_ref(v) if k == "$ref" else _v3_refs(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_v3_refs(v) for v in value]
    return value


def _v3_ref(ref: str) -> str:
    return "#/components/schemas/" + schemas.ref_name(ref)


def _dump(doc: Obj) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
