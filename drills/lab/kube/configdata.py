"""ConfigMaps and Secrets as the API server stores them: ``stringData``, the default type, immutability.

A Secret's ``stringData`` is a write-only convenience: its values, encoded, are merged into ``data``
(overriding keys that are in both) and ``stringData`` itself is never stored. A Secret without ``type``
is ``Opaque``. Once ``immutable: true`` is stored, the data (and ``immutable`` itself) cannot change,
nor can a Secret's type ever: 422 ``Invalid``, in Kubernetes' words. The base64 of ``data`` and
``binaryData`` and the form of the keys are checked before, with every other field
(:mod:`drills.lab.kube.decoding`, :mod:`drills.lab.kube.validation`).
"""

from __future__ import annotations

import base64

from drills.lab.kube.store import CONFIGMAPS, SECRETS, Invalid, Obj, Resource

_IMMUTABLE = "field is immutable when `immutable` is set"
DEFAULT_SECRET_TYPE = "Opaque"


def normalize(resource: Resource, obj: Obj) -> None:
    """Rewrite ``obj`` (a body being written, already validated) as the API server stores it."""
    if resource == SECRETS:
        strings = obj.pop("stringData", None)
        if isinstance(strings, dict) and strings:
            data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
            obj["data"] = {**data, **{k: base64.b64encode(str(v).encode()).decode()
                                      for k, v in strings.items()}}
        if not obj.get("type"):
            obj["type"] = DEFAULT_SECRET_TYPE


def check(resource: Resource, obj: Obj, old: Obj) -> None:
    """Refuse (422) a change of the stored ``old`` that an immutable ConfigMap or Secret, or a Secret's
    type, does not allow."""
    if resource not in (CONFIGMAPS, SECRETS):
        return
    errors = []
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
