"""Label and field selectors, in their query-string form and their object form.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``, comma
separated (all must hold), and the ``matchLabels``/``matchExpressions`` objects of workloads,
PodDisruptionBudgets and NetworkPolicies. Field selectors: ``path=value`` / ``path!=value`` on
dotted paths (``spec.nodeName``, ``metadata.name``, ``spec.unschedulable``, ``status.phase``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_REQUIREMENT = re.compile(
    r"""\s*(?:
        (?P<neg>!)\s*(?P<nkey>[\w./-]+)                                  # !key
      | (?P<skey>[\w./-]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)  # key in (a,b)
      | (?P<key>[\w./-]+)\s*(?P<op>==|=|!=)\s*(?P<value>[\w./-]*)         # key=value
      | (?P<ekey>[\w./-]+)                                               # key
    )\s*(?:,|$)""",
    re.VERBOSE,
)


class SelectorError(ValueError):
    """A selector that cannot be parsed."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # NotIn


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold. The empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return not self.match_nothing and all(r.matches(labels) for r in self.requirements)

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """The query-string form (``app=web,tier in (a,b)``)."""
        text = (text or "").strip()
        reqs: list[Requirement] = []
        pos = 0
        while pos < len(text):
            m = _REQUIREMENT.match(text, pos)
            if not m or m.end() == pos:
                raise SelectorError(f"unable to parse requirement: {text[pos:]!r}")
            pos = m.end()
            if m["neg"]:
                reqs.append(Requirement(m["nkey"], "DoesNotExist"))
            elif m["setop"]:
                values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
                reqs.append(Requirement(m["skey"], "In" if m["setop"] == "in" else "NotIn", values))
            elif m["op"]:
                op = "NotIn" if m["op"] == "!=" else "In"
                reqs.append(Requirement(m["key"], op, frozenset([m["value"]])))
            else:
                reqs.append(Requirement(m["ekey"], "Exists"))
        return cls(tuple(reqs))

    @classmethod
    def from_object(cls, selector: Any) -> LabelSelector:
        """The object form of a workload or policy. A missing selector matches nothing, as the API
        treats a nil selector; an empty one (``{}``) matches everything. So does one of a shape the
        API would refuse (an object put straight into the store): matching nothing is the safe side."""
        if not isinstance(selector, Mapping):
            return cls(match_nothing=True)
        labels, expressions = selector.get("matchLabels") or {}, selector.get("matchExpressions") or []
        if not isinstance(labels, Mapping) or not isinstance(expressions, list) or not all(
                isinstance(e, Mapping) and isinstance(e.get("key"), str)
                and isinstance(e.get("operator"), str) and isinstance(e.get("values") or [], list)
                for e in expressions):
            return cls(match_nothing=True)
        reqs = [Requirement(str(k), "In", frozenset([str(v)])) for k, v in labels.items()]
        for expr in expressions:
            values = frozenset(map(str, expr.get("values") or []))
            reqs.append(Requirement(expr["key"], expr["operator"], values))
        return cls(tuple(reqs))


@dataclass(frozen=True)
class FieldSelector:
    """Equality (``=``, ``==``) and inequality (``!=``) on dotted object paths."""

    terms: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        terms: list[tuple[str, bool, str]] = []
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", part)
            if not m:
                raise SelectorError(f"invalid field selector: {part!r}")
            terms.append((m[1], m[2] != "!=", m[3].strip()))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, path) == value) == equal for path, equal, value in self.terms)


def _field(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        # The API compares absent fields as their zero value: "" for strings, "false" for booleans.
        return "false" if path == "spec.unschedulable" else ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)
