"""Server-side apply and ``metadata.managedFields``: who set which field, as Kubernetes tracks it.

Every write through the API records its field manager (the ``fieldManager`` parameter, else the
User-Agent up to its first ``/``, as Kubernetes derives it) in the object's ``managedFields``: one
entry per manager, operation (``Apply`` or ``Update``) and subresource, with the set of fields it owns
in Kubernetes' ``FieldsV1`` form (``{"f:spec":{"f:replicas":{}}}``). This module is a documented subset
of Kubernetes' field management (``k8s.io/apimachinery/pkg/util/managedfields`` and
``sigs.k8s.io/structured-merge-diff``), enough for ``kubectl apply --server-side``,
``--force-conflicts`` and ``kubectl diff``:

- **Update** (create, replace, patch): the writer gains the fields it added or changed; other managers
  lose them, and everyone loses the fields it removed. A manager left with no field is dropped.
- **Apply** (``PATCH`` as ``application/apply-patch+yaml``): the applied configuration is merged into
  the live object (created when absent) and the applier owns exactly the fields of its configuration.
  Applying a value different from the live one to a field another manager owns is a conflict: 409 with
  Kubernetes' message (``Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using
  apps/v1: .spec.replicas``) and a ``FieldManagerConflict`` cause per field, unless ``force=true``,
  which takes the fields over. A field the applier applied before and applies no more is removed from
  the object, unless another applier still applies it.
- The server's own metadata (name, uid, resourceVersion...) is never owned; on the main resource of a
  kind with a ``status`` subresource the status is not, on ``/status`` only the status is, and on
  ``/scale`` only ``spec.replicas``.
- A write that sends ``managedFields`` different from the live ones replaces them (``[{}]`` clears
  them), as kubectl's migration from client-side apply relies on; otherwise they are the live ones.

What Kubernetes learns from the OpenAPI schema the lab knows by field name, as
:mod:`drills.lab.kube.patch` does: which lists are associative and by which keys (:data:`LIST_KEYS`),
which are sets (:data:`SET_LISTS`), which maps are atomic (:data:`ATOMIC_MAPS`); every other list is
atomic (owned and replaced whole). Objects are never converted between versions: the lab serves one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from drills.lab.clock import rfc3339
from drills.lab.kube.patch import SET_LISTS
from drills.lab.kube.store import ApiError, Obj, Resource
from drills.lab.kube.wire import BadRequest

APPLY_PATCH = "application/apply-patch+yaml"
"""The content type of a server-side apply."""

LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "envFrom": (),
    "imagePullSecrets": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "protocol", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "resourceClaims": ("name",),
}
"""Associative lists and the fields that key their items (those an item has); ``()`` is atomic."""

ATOMIC_MAPS = frozenset({"selector", "podSelector", "namespaceSelector", "labelSelector",
                         "nodeAffinity", "podAffinityTerm"})
"""Maps owned and replaced whole (Kubernetes' ``structType=atomic``/``mapType=atomic``)."""

_SERVER_METADATA = frozenset({"name", "namespace", "uid", "resourceVersion", "generation",
                              "creationTimestamp", "managedFields", "selfLink", "deletionTimestamp",
                              "deletionGracePeriodSeconds"})

Path = tuple[str, ...]
"""A field path as ``FieldsV1`` spells its elements: ``f:name``, ``k:{"name":"app"}``, ``v:"x"``, ``i:0``."""


class _Item:
    """The value of a path that names a list item: present, compared through its fields."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Item)

    def __hash__(self) -> int:
        return 0


_ITEM = _Item()


class ApplyConflict(ApiError):
    """An apply that would change fields other managers own (409), with a cause per field."""

    code, reason = 409, "Conflict"

    def __init__(self, conflicts: list[tuple[str, Path]]) -> None:
        self.causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}",
                        "field": describe(path)} for who, path in conflicts]
        if len(conflicts) == 1:
            who, path = conflicts[0]
            message = f"Apply failed with 1 conflict: conflict with {who}: {describe(path)}"
        else:
            lines = []
            for who in sorted({w for w, _ in conflicts}):
                lines.append(f"conflicts with {who}:")
                lines += [f"- {describe(p)}" for w, p in conflicts if w == who]
            message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
        super().__init__(message)


@dataclass(frozen=True)
class Writer:
    """Who writes, and how: what a write records in ``managedFields``."""

    manager: str
    operation: str
    """``Apply`` or ``Update``."""
    api_version: str
    time: datetime
    subresource: str = ""
    force: bool = False
    applied: Obj | None = None
    """The applied configuration (an Apply)."""


def manager_of(field_manager: str | None, user_agent: str) -> str:
    """The manager a write names: its ``fieldManager``, else the User-Agent's prefix, as Kubernetes does."""
    return field_manager or user_agent.split("/")[0]


def parse_configuration(raw: bytes, resource: Resource, name: str | None) -> Obj:
    """An apply's body (YAML or JSON): an object of ``resource`` named ``name``.

    Raises :class:`BadRequest`.
    """
    try:
        body: Any = json.loads(raw)
    except ValueError:
        try:
            body = YAML(typ="safe", pure=True).load(raw.decode("utf-8"))
        except (YAMLError, UnicodeDecodeError) as exc:
            raise BadRequest(f"error decoding YAML: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
        raise BadRequest("the applied configuration must be an object")
    if body.get("apiVersion") != resource.api_version or body.get("kind") != resource.kind:
        raise BadRequest(f"the applied configuration is a {body.get('apiVersion')} {body.get('kind')}, "
                         f"expected {resource.api_version} {resource.kind}")
    meta = body.setdefault("metadata", {})
    if meta.get("managedFields") is not None:
        raise BadRequest("metadata.managedFields must be nil")
    if name is not None and meta.get("name") not in (None, name):
        raise BadRequest(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                         f"({name})")
    if name is not None:
        meta["name"] = name
    return body


def merged(live: Obj, writer: Writer) -> Obj:
    """The live object with ``writer``'s configuration merged in and the fields it no longer applies
    removed (those no other applier applies)."""
    assert writer.applied is not None
    result = _merge(live, writer.applied, "")
    entries = _entries(live)
    last = entries.get((writer.manager, "Apply", writer.subresource))
    if last is None:
        return result
    keep = set(_scoped(fields(writer.applied), writer.subresource or None))
    for key, (_, owned) in entries.items():
        if key[1] == "Apply" and key != (writer.manager, "Apply", writer.subresource):
            keep |= owned.keys()
    for path in sorted(last[1].keys() - keep, key=len):  # an item before its fields, which go with it
        _remove(result, path)
    return result


def track(old: Obj | None, new: Obj, writer: Writer, scope: str | None) -> list[Obj] | None:
    """The ``managedFields`` of ``new`` after ``writer`` turned ``old`` (None: nothing) into it.

    ``scope`` is the subresource written (None: the main resource of a kind with a status
    subresource, whose status is not owned; ``""`` the whole object). Raises :class:`ApplyConflict`.
    """
    entries = _entries(old) if old is not None else {}
    sent, base = _entries(new), old
    if sent and sent != entries:
        entries = {k: v for k, v in sent.items() if k[0]}  # the writer replaced them ([{}] clears)
        base = new
    before, after = fields(old or {}), fields(new)
    added = after.keys() - before.keys()
    removed = before.keys() - after.keys()
    changed = added | {p for p in after.keys() & before.keys() if after[p] != before[p]}
    me = (writer.manager, writer.operation, writer.subresource)
    if writer.operation == "Update" and not changed and not removed:
        return _encode(entries, old_entries=base) or None  # nothing written: nobody's fields change
    conflicts = []
    for key, (version, owned) in entries.items():
        if key != me:
            conflicts += [(_who(key, version), p) for p in sorted(owned.keys() & changed)]
    if conflicts and writer.operation == "Apply" and not writer.force:
        raise ApplyConflict(conflicts)
    kept: dict[tuple[str, str, str], tuple[str, dict[Path, Any]]] = {}
    for key, (version, owned) in entries.items():
        if key != me:
            left = {p: v for p, v in owned.items() if p not in changed and p not in removed}
            if left:
                kept[key] = (version, left)
    if writer.operation == "Apply":
        assert writer.applied is not None
        mine = _scoped(fields(writer.applied), scope)
    else:
        previous = entries.get(me, ("", {}))[1]
        mine = _scoped({p: after[p] for p in (previous.keys() | changed) - removed if p in after}, scope)
    if mine:
        kept[me] = (writer.api_version, mine)
    return _encode(kept, {me: rfc3339(writer.time)}, old_entries=base) or None


def fields(obj: Obj) -> dict[Path, Any]:
    """Every field path of ``obj`` that a manager can own, with its value (list items: a marker)."""
    found: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in _SERVER_METADATA:
                    _walk(meta_value, ("f:metadata", f"f:{meta_key}"), meta_key, found)
            continue
        _walk(value, (f"f:{key}",), key, found)
    return found


def describe(path: Path) -> str:
    """A path as Kubernetes prints it in conflicts: ``.spec.template.spec.containers[name="app"].image``."""
    text = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            text += f".{rest}"
        elif kind == "k":
            keys = json.loads(rest)
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            text += f"[={rest}]"
        else:
            text += f"[{rest}]"
    return text


def _walk(value: Any, path: Path, name: str, found: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value and name not in ATOMIC_MAPS:
        for key, child in value.items():
            _walk(child, (*path, f"f:{key}"), key, found)
    elif isinstance(value, list) and value and name in SET_LISTS and all(_scalar(i) for i in value):
        for item in value:
            found[(*path, f"v:{json.dumps(item)}")] = item
    elif isinstance(value, list) and value and _keys_of(name, value) is not None:
        keys = _keys_of(name, value)
        assert keys is not None
        for item in value:
            element = (*path, _item_key(item, keys))
            found[element] = _ITEM
            for key, child in item.items():
                _walk(child, (*element, f"f:{key}"), key, found)
    else:
        found[path] = copy.deepcopy(value)


def _keys_of(name: str, items: list[Any]) -> tuple[str, ...] | None:
    """The key fields of an associative list whose items all have one, else None (atomic)."""
    keys = LIST_KEYS.get(name)
    if not keys or not all(isinstance(i, dict) and any(k in i for k in keys) for i in items):
        return None
    return keys


_KEY_DEFAULTS = {"protocol": "TCP"}
"""Key fields the schema defaults: an applied port without ``protocol`` is the stored ``TCP`` one (as
structured-merge-diff keys items with the schema's defaults)."""


def _item_key(item: Obj, keys: tuple[str, ...]) -> str:
    key = {k: item.get(k, _KEY_DEFAULTS.get(k)) for k in sorted(keys) if k in item or k in _KEY_DEFAULTS}
    return "k:" + json.dumps(key, separators=(",", ":"))


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _scoped(found: dict[Path, Any], scope: str | None) -> dict[Path, Any]:
    if scope is None:
        return {p: v for p, v in found.items() if p[0] != "f:status"}
    if scope == "status":
        return {p: v for p, v in found.items() if p[0] == "f:status"}
    if scope == "scale":
        return {p: v for p, v in found.items() if p == ("f:spec", "f:replicas")}
    return found


def _merge(live: Any, config: Any, name: str) -> Any:
    """``config`` merged into ``live`` as apply merges: maps field by field (atomic ones replaced),
    associative lists item by item, sets as unions, everything else replaced."""
    if isinstance(config, dict) and isinstance(live, dict) and name not in ATOMIC_MAPS:
        result = copy.deepcopy(live)
        for key, value in config.items():
            result[key] = _merge(live.get(key), value, key)
        return result
    if isinstance(config, list) and isinstance(live, list):
        if name in SET_LISTS and all(_scalar(i) for i in [*config, *live]):
            return [*copy.deepcopy(live), *(i for i in config if i not in live)]
        keys = _keys_of(name, [*live, *config])
        if keys is not None:
            result = copy.deepcopy(live)
            for item in config:
                ident = _item_key(item, keys)
                index = next((n for n, old in enumerate(result) if _item_key(old, keys) == ident), None)
                if index is None:
                    result.append(copy.deepcopy(item))
                else:
                    result[index] = _merge(result[index], item, "")
            return result
    return copy.deepcopy(config)


def _remove(obj: Obj, path: Path) -> None:
    """Remove the field or list item ``path`` names, and the maps that removal leaves empty."""
    trail: list[tuple[Any, Any]] = []
    node: Any = obj
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f" and isinstance(node, dict) and rest in node:
            trail.append((node, rest))
            node = node[rest]
        elif kind in ("k", "v") and isinstance(node, list):
            index = next((n for n, item in enumerate(node) if _matches(item, kind, rest)), None)
            if index is None:
                return
            trail.append((node, index))
            node = node[index]
        else:
            return
    parent, key = trail[-1]
    del parent[key]
    for (outer, name), (inner, _) in zip(reversed(trail[:-1]), reversed(trail[1:]), strict=True):
        if inner or not isinstance(inner, dict) or outer is obj:
            break
        del outer[name]


def _matches(item: Any, kind: str, rest: str) -> bool:
    if kind == "v":
        return bool(item == json.loads(rest))
    keys = json.loads(rest)
    return isinstance(item, dict) and all(item.get(k) == v for k, v in keys.items())


def _who(key: tuple[str, str, str], api_version: str) -> str:
    manager, operation, subresource = key
    who = json.dumps(manager)
    if subresource:
        who += f" with subresource {json.dumps(subresource)}"
    return f"{who} using {api_version}" if operation == "Update" else who


def _entries(obj: Mapping[str, Any]) -> dict[tuple[str, str, str], tuple[str, dict[Path, Any]]]:
    """An object's ``managedFields`` by (manager, operation, subresource): (apiVersion, owned paths)."""
    found: dict[tuple[str, str, str], tuple[str, dict[Path, Any]]] = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(entry, dict):
            continue
        key = (str(entry.get("manager") or ""), str(entry.get("operation") or ""),
               str(entry.get("subresource") or ""))
        owned: dict[Path, Any] = {}
        _decode(entry.get("fieldsV1") or {}, (), owned)
        found[key] = (str(entry.get("apiVersion") or ""), owned)
    return found


def _decode(node: Any, path: Path, owned: dict[Path, Any]) -> None:
    if not isinstance(node, dict):
        return
    for element, child in node.items():
        if element == ".":
            owned[path] = _ITEM
        elif child == {}:
            owned[(*path, element)] = None
        else:
            _decode(child, (*path, element), owned)


def _encode(entries: Mapping[tuple[str, str, str], tuple[str, Mapping[Path, Any]]],
            times: Mapping[tuple[str, str, str], str] | None = None, *,
            old_entries: Obj | None = None) -> list[Obj]:
    """``managedFields`` as Kubernetes writes them: Apply entries first, then by time and manager."""
    previous_times = {(str(e.get("manager") or ""), str(e.get("operation") or ""),
                       str(e.get("subresource") or "")): e.get("time")
                      for e in ((old_entries or {}).get("metadata") or {}).get("managedFields") or []
                      if isinstance(e, dict)}
    result = []
    for key, (version, owned) in entries.items():
        manager, operation, subresource = key
        entry: Obj = {"manager": manager, "operation": operation, "apiVersion": version,
                      "time": (times or {}).get(key) or previous_times.get(key), "fieldsType": "FieldsV1",
                      "fieldsV1": _tree(owned)}
        if subresource:
            entry["subresource"] = subresource
        result.append(entry)
    result.sort(key=lambda e: (e["operation"], e["time"] or "", e["manager"]))
    return result


def _tree(owned: Mapping[Path, Any]) -> Obj:
    root: Obj = {}
    for path in sorted(owned):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in owned:
        node = root
        for element in path:
            node = node[element]
        if node:
            node["."] = {}
    return _sorted(root)


def _sorted(node: Obj) -> Obj:
    return {k: _sorted(node[k]) for k in sorted(node)}
