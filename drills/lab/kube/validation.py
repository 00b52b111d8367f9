"""What the API server checks before it stores a new version of an object, and how it refuses.

:func:`admit` is called with every object a client's write is about to store (create, replace, each
patch type, the ``status`` and ``scale`` subresources). In the API server's order:

1. Decoding into the kind's Go types (:mod:`drills.lab.kube.decoding`). A value of the wrong type fails:
   on create and replace with 400 ``BadRequest`` ``Deployment in version "v1" cannot be handled as a
   Deployment: json: cannot unmarshal ...``; on a JSON or merge patch with 422 ``Invalid`` and the
   single cause ``patch: Invalid value: "<the patched object as JSON>": json: cannot unmarshal ...``; on
   a strategic merge patch likewise, with the patch itself printed as a Go map and the converter's
   message (``unrecognized type: int32``). Fields the types lack are dropped; with
   ``fieldValidation=Strict`` (kubectl's default) they fail the same ways with ``strict decoding error:
   unknown field "spec.foo"``; with ``Warn`` (the default) the answer carries a ``Warning`` header
   ``299 - "unknown field \\"spec.foo\\""`` for each.
2. The kind's validation rules that drills depend on, each with Kubernetes' own field path and
   message: object names (RFC 1123 subdomain; RFC 1123 label for namespaces; RFC 1035 label for
   services), label keys and values, workload replicas (>= 0), selectors (required, not empty for a
   Deployment or DaemonSet, immutable, matching the pod template's labels), a Deployment's strategy
   (its type; a rolling update's ``maxSurge`` and ``maxUnavailable``, not both 0), pod templates and pods
   (containers, their names and images, restart policy), PodDisruptionBudgets (``minAvailable`` and
   ``maxUnavailable`` exclusive, each a count >= 0 or a percentage up to 100%), Services (ports present,
   named when several, numbers in range, protocol and type known), ConfigMap and Secret keys. They fail
   with 422 ``Invalid``: the message ``Deployment.apps "web" is invalid: <errors>`` and one
   ``details.causes`` entry per error (reason ``FieldValueInvalid``, ``FieldValueRequired``..., field
   path, message).

Everything else Kubernetes validates (resource limits, probes, volumes, Ingress rules...) is not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from drills.lab.kube import decoding, schemas
from drills.lab.kube.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from drills.lab.kube.selectors import LabelSelector
from drills.lab.kube.store import Invalid, Obj, Resource
from drills.lab.kube.wire import BadRequest

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
_WARNINGS = web.RequestKey("field_warnings", list[str])


@dataclass(frozen=True)
class Write:
    """What stores a new object version: the verb, its ``fieldValidation`` and, for a patch, the patch.

    ``warnings`` collects what the answer warns of (unknown fields dropped under ``Warn``).
    """

    verb: str  # create, update or patch
    field_validation: str = WARN  # the API server's default when the request names none
    patch_type: str | None = None
    patch: Any = None
    warnings: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def of(cls, request: web.Request, patch: Any = None) -> Write:
        """The write ``request`` makes (a POST, PUT or PATCH; ``patch``: a PATCH's parsed body).

        Its warnings become the answer's ``Warning`` headers (:func:`warning_headers`).
        """
        method, query = request.method, request.query
        verb = {"POST": "create", "PUT": "update"}.get(method, "patch")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        directive = query.get("fieldValidation") or WARN
        if directive not in (STRICT, WARN, IGNORE):
            # The API server validates the request's options like an object of kind CreateOptions...
            error = FieldError("Unsupported", "fieldValidation", _go_value(directive),
                               f'supported values: "", "{IGNORE}", "{STRICT}", "{WARN}"')
            options = f"{verb.capitalize()}Options"
            raise InvalidObject(f'{options}.meta.k8s.io "" is invalid: {error}',
                                {"group": "meta.k8s.io", "kind": options, "causes": [error.cause()]})
        write = cls(verb, directive, content_type if verb == "patch" else None, patch)
        request[_WARNINGS] = write.warnings
        return write


def warning_headers(request: web.Request) -> list[str]:
    """The ``Warning`` header values of the answer to ``request``, as the API server writes them."""
    return [f"299 - {json.dumps(text)}" for text in request.get(_WARNINGS, [])]


class InvalidObject(Invalid):
    """A write the validation rules refuse: 422 with Kubernetes' causes in the Status details."""

    def __init__(self, message: str, details: Obj) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class FieldError:
    """One failed rule, as Kubernetes' ``field.Error``: a type, a field path, a value, a detail."""

    type: str  # Invalid, Required, Duplicate, Unsupported, Forbidden
    field: str
    value: str = ""  # already formatted as Go prints it (see _go_value)
    detail: str = ""

    _REASONS = {"Invalid": "FieldValueInvalid", "Required": "FieldValueRequired",
                "Duplicate": "FieldValueDuplicate", "Unsupported": "FieldValueNotSupported",
                "Forbidden": "FieldValueForbidden"}

    @property
    def body(self) -> str:
        """The message without the field, as a Status cause carries it."""
        if self.type == "Required":
            text = "Required value"
        elif self.type == "Forbidden":
            text = "Forbidden"
        else:
            text = f"{self.type} value: {self.value}"
        return f"{text}: {self.detail}" if self.detail else text

    def cause(self) -> Obj:
        return {"reason": self._REASONS[self.type], "message": self.body, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def admit(write: Write, resource: Resource, new: Obj, old: Obj | None, name: str | None = None) -> Obj:
    """``new`` as the API server would store it, or the error it would answer.

    ``old`` is the stored version (None on create). Fields the kind does not have are dropped.
    Raises :class:`~drills.lab.kube.wire.BadRequest` or :class:`InvalidObject`.
    """
    definition = schemas.kind_definition(resource.group, resource.version, resource.kind)
    if definition is None:
        return new
    style: decoding.Style = "unstructured" if write.patch_type == STRATEGIC_MERGE_PATCH else "json"
    decoded = decoding.decode(new, definition, style)
    if decoded.error is not None:
        _refuse_decoding(write, resource, new, decoded.error)
    unknown = [f'unknown field "{path}"' for path in decoded.unknown]
    if unknown and write.field_validation == STRICT:
        _refuse_decoding(write, resource, new, f"strict decoding error: {', '.join(unknown)}")
    if write.field_validation == WARN:
        write.warnings.extend(unknown)
    obj: Obj = decoded.value
    errors = _check(resource, obj, old)
    if errors:
        meta = obj.get("metadata") or {}
        raise _invalid(resource, meta.get("name") or name or "", errors)
    return obj


def _invalid(resource: Resource, name: str, errors: list[FieldError]) -> InvalidObject:
    """The 422 Kubernetes answers for ``errors`` on the object ``name`` of ``resource``."""
    qualified = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    details: Obj = {"name": name, "kind": resource.kind, "causes": [e.cause() for e in errors]}
    if resource.group:
        details["group"] = resource.group
    return InvalidObject(f'{qualified} "{name}" is invalid: {_aggregate(errors)}', details)


def _check(resource: Resource, obj: Obj, old: Obj | None) -> list[FieldError]:
    """The validation rules of ``resource`` that ``obj`` breaks (``old``: the stored version, if any)."""
    errors = _object_meta(resource, obj.get("metadata") or {})
    rule = _RULES.get((resource.group, resource.kind))
    if rule is not None:
        errors += rule(obj, old)
    return errors


def _go_value(value: Any) -> str:
    """``value`` as Kubernetes prints a bad value: ``%q`` for strings, ``%v`` for numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "null"
    return str(value)


# Decoding failures ----------------------------------------------------------------------------------

def _refuse_decoding(write: Write, resource: Resource, obj: Obj, message: str) -> None:
    if write.verb != "patch":
        raise BadRequest(f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                         f'{resource.kind}: {message}')
    if write.patch_type in (JSON_PATCH, MERGE_PATCH):
        shown = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    else:
        shown = _go_map(write.patch)
    error = FieldError("Invalid", "patch", _quote(shown), message)
    # The API server builds this error with no kind and no name: its message starts ' "" is invalid'.
    raise InvalidObject(f' "" is invalid: {error}', {"causes": [error.cause()]})


def _go_map(value: Any) -> str:
    """A decoded JSON value as Go's ``%+v`` prints it (maps with sorted keys, lists with spaces)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_map(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_map(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _quote(text: str) -> str:
    """Go's ``%q`` of a string (JSON's escaping is the same for what objects hold)."""
    return json.dumps(text, ensure_ascii=False)


def _aggregate(errors: list[FieldError]) -> str:
    """An ``ErrorList``'s aggregate text: one error alone, several in brackets."""
    texts = list(dict.fromkeys(str(e) for e in errors))
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


# Names and labels -------------------------------------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
_DNS1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"

_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                  "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
                  f"used for validation is '{_SUBDOMAIN}')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
              "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
              f"for validation is '{_LABEL}')")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
                f"'abc-123', regex used for validation is '{_DNS1035}')")
_QUALIFIED_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                  "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                  f"used for validation is '{_QUALIFIED}')")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')")

# How each kind's names are checked: RFC 1123 subdomains unless listed here.
_NAME_RULES: dict[tuple[str, str], str] = {("", "Namespace"): "label", ("", "Service"): "dns1035"}


def _name_errors(name: str, rule: str) -> list[str]:
    """The messages a name fails with under ``rule`` (subdomain, label, dns1035)."""
    limit, pattern, message = {
        "subdomain": (253, _SUBDOMAIN, _SUBDOMAIN_MSG),
        "label": (63, _LABEL, _LABEL_MSG),
        "dns1035": (63, _DNS1035, _DNS1035_MSG),
    }[rule]
    found = []
    if len(name) > limit:
        found.append(f"must be no more than {limit} characters")
    if not re.fullmatch(pattern, name):
        found.append(message)
    return found


def _object_meta(resource: Resource, meta: Obj) -> list[FieldError]:
    errors: list[FieldError] = []
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            errors.append(FieldError("Required", "metadata.name", detail="name or generateName is required"))
    else:
        rule = _NAME_RULES.get((resource.group, resource.kind), "subdomain")
        errors += [FieldError("Invalid", "metadata.name", _go_value(name), m)
                   for m in _name_errors(name, rule)]
    errors += _labels(meta.get("labels") or {}, "metadata.labels")
    return errors


def _labels(labels: Mapping[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in labels.items():
        prefix, _, part = key.rpartition("/")
        if prefix:
            errors += [FieldError("Invalid", path, _go_value(key), "prefix part " + m)
                       for m in _name_errors(prefix, "subdomain")]
        if not part:
            errors.append(FieldError("Invalid", path, _go_value(key), "name part must be non-empty"))
        else:
            if len(part) > 63:
                errors.append(FieldError("Invalid", path, _go_value(key),
                                         "name part must be no more than 63 characters"))
            if not re.fullmatch(_QUALIFIED, part):
                errors.append(FieldError("Invalid", path, _go_value(key), _QUALIFIED_MSG))
        text = value if isinstance(value, str) else ""
        if len(text) > 63:
            errors.append(FieldError("Invalid", path, _go_value(text), "must be no more than 63 characters"))
        if not re.fullmatch(_LABEL_VALUE, text):
            errors.append(FieldError("Invalid", path, _go_value(text), _LABEL_VALUE_MSG))
    return errors


# Workloads --------------------------------------------------------------------------------------------

_NEGATIVE = "must be greater than or equal to 0"
_PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
                "'93%', regex used for validation is '[0-9]+%')")


def _nonnegative(spec: Obj, key: str, path: str) -> list[FieldError]:
    value = spec.get(key)
    if isinstance(value, int) and value < 0:
        return [FieldError("Invalid", f"{path}.{key}", _go_value(value), _NEGATIVE)]
    return []


def _go_map_literal(value: Mapping[str, Any] | None, elem: str = "string") -> str:
    """A ``map[string]string`` as ``%#v`` prints it."""
    if value is None:
        return f"map[string]{elem}(nil)"
    pairs = ", ".join(f"{_quote(k)}:{_quote(str(value[k]))}" for k in sorted(value))
    return f"map[string]{elem}{{{pairs}}}"


def _selector_literal(selector: Obj) -> str:
    """A ``v1.LabelSelector`` as ``%#v`` prints it."""
    expressions = selector.get("matchExpressions")
    if expressions is None:
        shown = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = []
        for e in expressions:
            values = e.get("values")
            listed = ("[]string{" + ", ".join(_quote(str(v)) for v in values) + "}" if values is not None
                      else "[]string(nil)")
            items.append(f'v1.LabelSelectorRequirement{{Key:{_quote(str(e.get("key", "")))}, '
                         f'Operator:{_quote(str(e.get("operator", "")))}, Values:{listed}}}')
        shown = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    return (f"v1.LabelSelector{{MatchLabels:{_go_map_literal(selector.get('matchLabels'))}, "
            f"MatchExpressions:{shown}}}")


def _selector_key(selector: Obj) -> tuple[Any, Any]:
    """What makes two selectors equal to the API (an empty list or map is as good as none)."""
    return (selector.get("matchLabels") or {}, selector.get("matchExpressions") or [])


def _workload(kind: str, *, replicas: bool) -> Callable[[Obj, Obj | None], list[FieldError]]:
    """The rules of a Deployment, ReplicaSet or DaemonSet spec."""
    def rule(obj: Obj, old: Obj | None) -> list[FieldError]:
        spec, old_spec = _spec(obj), (_spec(old) if old is not None else None)
        errors: list[FieldError] = []
        if replicas:
            errors += _nonnegative(spec, "replicas", "spec")
        selector = spec.get("selector")
        if selector is None:
            errors.append(FieldError("Required", "spec.selector"))
        elif kind != "ReplicaSet" and not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errors.append(FieldError("Invalid", "spec.selector", _selector_literal(selector),
                                     f"empty selector is invalid for {kind.lower()}"))
        template = spec.get("template")
        if template is None:
            errors.append(FieldError("Required", "spec.template"))
        else:
            template_meta = template.get("metadata") or {}
            labels = template_meta.get("labels") or {}
            chosen = LabelSelector.from_object(selector) if selector else LabelSelector()
            if chosen.requirements and not chosen.matches(labels):
                errors.append(FieldError("Invalid", "spec.template.metadata.labels",
                                         _go_map_literal(template_meta.get("labels")),
                                         "`selector` does not match template `labels`"))
            errors += _labels(labels, "spec.template.metadata.labels")
            pod = template.get("spec") or {}
            errors += _pod_spec(pod, "spec.template.spec", template=True)
            policy = pod.get("restartPolicy")
            if policy not in (None, "Always"):
                errors.append(FieldError("Unsupported", "spec.template.spec.restartPolicy", _go_value(policy),
                                         'supported values: "Always"'))
        if kind == "Deployment":
            errors += _strategy(spec.get("strategy") or {})
        errors += _nonnegative(spec, "minReadySeconds", "spec")
        errors += _nonnegative(spec, "revisionHistoryLimit", "spec")
        if old_spec is not None and selector is not None and old_spec.get("selector") is not None \
                and _selector_key(old_spec["selector"]) != _selector_key(selector):
            errors.append(FieldError("Invalid", "spec.selector", _selector_literal(selector),
                                     "field is immutable"))
        return errors

    return rule


def _strategy(strategy: Obj) -> list[FieldError]:
    """A Deployment's strategy: its type, and a rolling update's surge and unavailability."""
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if kind not in (None, "Recreate", "RollingUpdate"):
        return [FieldError("Unsupported", "spec.strategy.type", _go_value(kind),
                           'supported values: "Recreate", "RollingUpdate"')]
    if rolling is None:
        return []
    if kind == "Recreate":
        return [FieldError("Forbidden", "spec.strategy.rollingUpdate",
                           detail="may not be specified when strategy `type` is 'Recreate'")]
    errors: list[FieldError] = []
    for key in ("maxUnavailable", "maxSurge"):
        errors += _int_or_percent(rolling.get(key), f"spec.strategy.rollingUpdate.{key}")
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        errors.append(FieldError("Invalid", "spec.strategy.rollingUpdate.maxUnavailable",
                                 _int_or_string_literal(unavailable), "may not be 0 when `maxSurge` is 0"))
    return errors


def _int_or_percent(value: Any, path: str) -> list[FieldError]:
    """An int-or-string that must be a count >= 0 or a percentage up to 100%."""
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [FieldError("Invalid", path, _go_value(value), _NEGATIVE)]
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]+%", value):
            return [FieldError("Invalid", path, _go_value(value), _PERCENT_MSG)]
        if int(value[:-1]) > 100:
            return [FieldError("Invalid", path, _go_value(value), "must not be greater than 100%")]
    return []


def _int_or_percent_value(value: Any) -> int | None:
    """A count or percentage's number (None when unset; a rolling update's unset fields default to 25%)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]+%", value):
        return int(value[:-1])
    return value if isinstance(value, int) else None


def _int_or_string_literal(value: Any) -> str:
    """An ``intstr.IntOrString`` as a bad value prints (its ``String()``: the number or the unquoted text)."""
    return "0" if value is None else str(value)


def _pod_spec(spec: Obj, path: str, *, template: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    containers = spec.get("containers") or []
    if not containers:
        errors.append(FieldError("Required", f"{path}.containers"))
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for n, container in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{n}]"
            name = container.get("name")
            if not name:
                errors.append(FieldError("Required", f"{where}.name"))
            elif name in seen:
                errors.append(FieldError("Duplicate", f"{where}.name", _go_value(name)))
            else:
                seen.add(name)
                errors += [FieldError("Invalid", f"{where}.name", _go_value(name), m)
                           for m in _name_errors(name, "label")]
            # Pod templates may leave the image to be filled in later; pods may not.
            if not template and not container.get("image"):
                errors.append(FieldError("Required", f"{where}.image"))
    policy = spec.get("restartPolicy")
    if not template and policy not in (None, "Always", "OnFailure", "Never"):
        errors.append(FieldError("Unsupported", f"{path}.restartPolicy", _go_value(policy),
                                 'supported values: "Always", "OnFailure", "Never"'))
    return errors


def _pod(obj: Obj, _old: Obj | None) -> list[FieldError]:
    return _pod_spec(_spec(obj), "spec", template=False)


# PodDisruptionBudgets -----------------------------------------------------------------------------------

_EVICTION = "policy.UnhealthyPodEvictionPolicyType"


def _budget(obj: Obj, _old: Obj | None) -> list[FieldError]:
    spec = _spec(obj)
    errors: list[FieldError] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        # The API prints the Go struct of the spec, pointers as addresses; the lab shows stand-ins.
        def pointer(key: str, go: str, address: str) -> str:
            return f"(*{go})({address if spec.get(key) is not None else 'nil'})"

        shown = (f"policy.PodDisruptionBudgetSpec{{"
                 f"MinAvailable:{pointer('minAvailable', 'intstr.IntOrString', '0xc000100000')}, "
                 f"Selector:{pointer('selector', 'v1.LabelSelector', '0xc000100020')}, "
                 f"MaxUnavailable:{pointer('maxUnavailable', 'intstr.IntOrString', '0xc000100040')}, "
                 f"UnhealthyPodEvictionPolicy:"
                 f"{pointer('unhealthyPodEvictionPolicy', _EVICTION, '0xc000100060')}}}")
        errors.append(FieldError("Invalid", "spec", shown,
                                 "minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        errors += _int_or_percent(spec.get(key), f"spec.{key}")
    return errors


# Services ------------------------------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PORT_RANGE = "must be between 1 and 65535, inclusive"


def _service(obj: Obj, _old: Obj | None) -> list[FieldError]:
    spec = _spec(obj)
    errors: list[FieldError] = []
    ports = spec.get("ports") or []
    kind = spec.get("type")
    if not ports and spec.get("clusterIP") != "None" and kind != "ExternalName":
        errors.append(FieldError("Required", "spec.ports"))
    names: set[str] = set()
    for n, port in enumerate(ports):
        where = f"spec.ports[{n}]"
        name = port.get("name")
        if len(ports) > 1 and not name:
            errors.append(FieldError("Required", f"{where}.name"))
        elif name:
            errors += [FieldError("Invalid", f"{where}.name", _go_value(name), m)
                       for m in _name_errors(name, "label")]
            if name in names:
                errors.append(FieldError("Duplicate", f"{where}.name", _go_value(name)))
            names.add(name)
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(FieldError("Invalid", f"{where}.port", _go_value(number or 0), _PORT_RANGE))
        protocol = port.get("protocol")
        if protocol is not None and protocol not in _PROTOCOLS:
            errors.append(FieldError("Unsupported", f"{where}.protocol", _go_value(protocol),
                                     _supported(_PROTOCOLS)))
        target = port.get("targetPort")
        if isinstance(target, int) and not 1 <= target <= 65535:
            errors.append(FieldError("Invalid", f"{where}.targetPort", _go_value(target), _PORT_RANGE))
    errors += _labels(spec.get("selector") or {}, "spec.selector")
    if kind is not None and kind not in _SERVICE_TYPES:
        errors.append(FieldError("Unsupported", "spec.type", _go_value(kind), _supported(_SERVICE_TYPES)))
    return errors


def _supported(values: tuple[str, ...]) -> str:
    return "supported values: " + ", ".join(f'"{v}"' for v in values)


# ConfigMaps and Secrets ------------------------------------------------------------------------------------

_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', "
            " or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


def _data_keys(obj: Obj, _old: Obj | None) -> list[FieldError]:
    """The keys of a ConfigMap's or Secret's data: file names a volume can hold."""
    errors: list[FieldError] = []
    for section in ("data", "binaryData", "stringData"):
        for key in obj.get(section) or {}:
            where = f"{section}[{key}]"
            messages = []
            if len(key) > 253:
                messages.append("must be no more than 253 characters")
            if not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
                messages.append(_KEY_MSG)
            if key in (".", ".."):
                messages.append(f"must not be '{key}'")
            elif key.startswith(".."):
                messages.append("must not start with '..'")
            errors += [FieldError("Invalid", where, _go_value(key), m) for m in messages]
    return errors


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


_RULES: dict[tuple[str, str], Callable[[Obj, Obj | None], list[FieldError]]] = {
    ("apps", "Deployment"): _workload("Deployment", replicas=True),
    ("apps", "ReplicaSet"): _workload("ReplicaSet", replicas=True),
    ("apps", "DaemonSet"): _workload("DaemonSet", replicas=False),
    ("", "Pod"): _pod,
    ("policy", "PodDisruptionBudget"): _budget,
    ("", "Service"): _service,
    ("", "ConfigMap"): _data_keys,
    ("", "Secret"): _data_keys,
}
