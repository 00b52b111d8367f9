"""ConfigMaps and Secrets as the API server takes them: base64 data, ``stringData``, the default type.

A Secret's ``data`` and a ConfigMap's ``binaryData`` are bytes, sent as base64: a value that is not
valid base64 is refused as Kubernetes refuses it when decoding the body (400, ``Secret in version "v1"
cannot be handled as a Secret: illegal base64 data at input byte N``). A Secret's ``stringData`` is a
write-only convenience: its values, encoded, are merged into ``data`` (overriding keys that are in
both) and ``stringData`` itself is never stored. A Secret without ``type`` is ``Opaque``. Keys are
config keys (``[-._a-zA-Z0-9]+``). Once ``immutable: true`` is stored, the data (and ``immutable``
itself) cannot change, nor can a Secret's type ever: 422 ``Invalid``, in Kubernetes' words.
"""

from __future__ import annotations

import base64
import binascii
import re

from drills.lab.kube.store import CONFIGMAPS, SECRETS, Invalid, Obj, Resource
from drills.lab.kube.wire import BadRequest

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_IMMUTABLE = "field is immutable when `immutable` is set"
DEFAULT_SECRET_TYPE = "Opaque"


def normalize(resource: Resource, obj: Obj) -> None:
    """Check and rewrite ``obj`` (a body being written) as the API server stores it."""
    if resource == SECRETS:
        _check_base64(obj.get("data"), resource)
        strings = obj.pop("stringData", None)
        if isinstance(strings, dict) and strings:
            data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
            obj["data"] = {**data, **{k: base64.b64encode(str(v).encode()).decode()
                                      for k, v in strings.items()}}
        if not obj.get("type"):
            obj["type"] = DEFAULT_SECRET_TYPE
    elif resource == CONFIGMAPS:
        _check_base64(obj.get("binaryData"), resource)


def check(resource: Resource, obj: Obj, old: Obj | None) -> None:
    """Refuse (422) bad keys, and a change that an immutable ConfigMap or Secret, or a Secret's type,
    does not allow; ``old`` is the stored object (None on create)."""
    if resource not in (CONFIGMAPS, SECRETS):
        return
    errors = []
    for field in ("data", "binaryData"):
        for key in obj.get(field) or {}:
            if not _CONFIG_KEY.fullmatch(key):
                errors.append(f'{field}[{key}]: Invalid value: "{key}": a valid config key must consist of '
                              f"alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                              f"or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    if old is not None:
        if old.get("immutable"):
            if not obj.get("immutable"):
                errors.append(f"immutable: Forbidden: {_IMMUTABLE}")
            for field in ("data", "binaryData") if resource == CONFIGMAPS else ("data",):
                if (obj.get(field) or {}) != (old.get(field) or {}):
                    errors.append(f"{field}: Forbidden: {_IMMUTABLE}")
        if resource == SECRETS and obj.get("type") != old.get("type"):
            errors.append(f'type: Invalid value: "{obj.get("type")}": field is immutable')
    if errors:
        listed = errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"
        raise Invalid(f'{resource.kind} "{obj["metadata"].get("name", "")}" is invalid: {listed}')


def _check_base64(data: object, resource: Resource) -> None:
    if not isinstance(data, dict):
        return
    for value in data.values():
        text = value if isinstance(value, str) else ""
        position = _illegal_byte(text)
        if position is not None:
            raise BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                             f'{resource.kind}: illegal base64 data at input byte {position}')


def _illegal_byte(text: str) -> int | None:
    """Where Go's standard base64 decoder gives up on ``text``, or None when it decodes."""
    text = text.replace("\r", "").replace("\n", "")
    match = _BASE64.match(text)
    end = match.end() if match else 0
    if end < len(text):
        return end
    try:
        base64.b64decode(text, validate=True)
    except binascii.Error:
        return len(text) - len(text) % 4 if len(text) % 4 else max(len(text) - 1, 0)
    return None
