"""Patches as the Kubernetes API applies them: JSON Patch, JSON merge patch, strategic merge patch.

A PATCH request names its kind in ``Content-Type``:

- ``application/json-patch+json``: RFC 6902, a list of operations on JSON pointers;
- ``application/merge-patch+json``: RFC 7386, maps merge, ``null`` removes a key, lists are replaced;
- ``application/strategic-merge-patch+json``: merge patch, except that the lists Kubernetes declares
  mergeable are merged element by element on their merge key (containers and volumes by ``name``,
  conditions by ``type``, taints by ``key``...), lists of finalizers are merged as sets, and the
  directives ``$patch: replace|delete``, ``$retainKeys``, ``$deleteFromPrimitiveList/<list>`` and
  ``$setElementOrder/<list>`` are honoured. What kubectl and the Python client send is covered.

Kubernetes knows each list's merge key from the Go type; the lab knows it from the field name alone,
which is the same thing for every kind the lab serves. A list whose elements lack the merge key (the
``ports`` of a NetworkPolicy rule, say) is replaced whole, as an atomic list is.
"""

from __future__ import annotations

import copy
from typing import Any

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "conditions": "type",
    "taints": "key",
    "addresses": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
"""Lists merged element by element under strategic merge, and the key that identifies an element."""

SET_LISTS = frozenset({"finalizers"})
"""Lists of scalars that strategic merge unites instead of replacing."""


class PatchError(ValueError):
    """A patch that cannot be applied to the object (the API answers 422)."""


def apply_patch(obj: Any, patch: Any, content_type: str) -> Any:
    """The object with ``patch`` applied as ``content_type`` says; ``obj`` is left untouched."""
    if content_type == JSON_PATCH:
        return json_patch(obj, patch)
    if content_type == MERGE_PATCH:
        return merge_patch(obj, patch)
    if content_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(obj, patch)
    raise ValueError(f"unknown patch type {content_type!r}")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge patch of a JSON object."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    merged = _merge_map(target if isinstance(target, dict) else {}, patch)
    return {} if merged is _DELETE else merged


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: apply the operations in order; any failing operation fails the whole patch."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for number, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(f"operation {number}: needs an 'op' and a 'path'")
        doc = _apply_operation(doc, op)
    return doc


class _Delete:
    """Marks a map that a ``$patch: delete`` directive removes."""


_DELETE = _Delete()
_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"


def _merge_map(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | _Delete:
    directive = patch.get(_DIRECTIVE)
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != _DIRECTIVE})
    if directive is not None:
        raise PatchError(f"unknown $patch directive {directive!r}")
    result = dict(target)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key == _RETAIN_KEYS:
            continue
        if key.startswith(_ORDER_PREFIX):
            orders[key[len(_ORDER_PREFIX):]] = list(value or [])
        elif key.startswith(_DELETE_PREFIX):
            field = key[len(_DELETE_PREFIX):]
            doomed = value or []
            result[field] = [item for item in result.get(field) or [] if item not in doomed]
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            base = result.get(key)
            merged = _merge_map(base if isinstance(base, dict) else {}, value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _order(result[field], order, MERGE_KEYS.get(field))
    retain = patch.get(_RETAIN_KEYS)
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, target: Any, patch: list[Any]) -> list[Any]:
    replace = [i for i in patch if isinstance(i, dict) and i.get(_DIRECTIVE) == "replace"]
    if replace:
        return [_strip(i) for i in patch if i not in replace]
    base = target if isinstance(target, list) else []
    if field in SET_LISTS and all(not isinstance(i, dict | list) for i in patch):
        return [*base, *(i for i in patch if i not in base)]
    key = MERGE_KEYS.get(field)
    keyed = key is not None and all(isinstance(i, dict) and key in i for i in [*base, *patch])
    if not keyed:
        return [_strip(i) for i in patch if not (isinstance(i, dict) and i.get(_DIRECTIVE) == "delete")]
    result = [copy.deepcopy(i) for i in base]
    for item in patch:
        index = next((n for n, old in enumerate(result) if old[key] == item[key]), None)
        merged = _merge_map(result[index] if index is not None else {}, item)
        if merged is _DELETE:
            if index is not None:
                del result[index]
        elif index is None:
            result.append(merged)
        else:
            result[index] = merged
    return result


def _order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Put ``items`` in the order ``$setElementOrder`` gives; the rest keep their place at the end."""
    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    ranked = [i for w in wanted for i in items if ident(i) == w]
    return ranked + [i for i in items if ident(i) not in wanted]


def _strip(value: Any) -> Any:
    """A patch value with its directives removed and its nulls dropped, as a newly added element."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return node


def _apply_operation(doc: Any, op: dict[str, Any]) -> Any:
    kind, path = op.get("op"), op["path"]
    if kind not in ("add", "remove", "replace", "move", "copy", "test"):
        raise PatchError(f"unknown operation {kind!r}")
    tokens = _pointer(path)
    if kind == "test":
        if _resolve(doc, tokens, path) != op.get("value"):
            raise PatchError(f"test failed: {path!r} is not {op.get('value')!r}")
        return doc
    if kind in ("move", "copy"):
        source = op.get("from")
        if not isinstance(source, str):
            raise PatchError(f"{kind} needs 'from'")
        value = copy.deepcopy(_resolve(doc, _pointer(source), source))
        if kind == "move":
            doc = _remove(doc, _pointer(source), source)
        return _add(doc, tokens, value, path)
    if kind == "remove":
        return _remove(doc, tokens, path)
    if "value" not in op:
        raise PatchError(f"{kind} needs 'value'")
    if kind == "add":
        return _add(doc, tokens, copy.deepcopy(op["value"]), path)
    _resolve(doc, tokens, path)  # replace: the target must exist
    return _add(_remove(doc, tokens, path), tokens, copy.deepcopy(op["value"]), path)


def _add(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"index {last!r} out of range at {path!r}")
    else:
        raise PatchError(f"cannot add at {path!r}")
    return doc


def _remove(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc
