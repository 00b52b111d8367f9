"""The registry of faults, probes and reporters, found by name through entry points.

drill's own kinds and a third party's register the same way, in their distribution's metadata::

    [project.entry-points."drill.faults"]
    kill-ingress = "drills.faults.workloads:KillIngress"

The registered name is what a scenario names (``fault: kill-ingress``, ``kind: dns``) and what
``drill report --format`` takes. Each loaded class is checked, structurally, against its group's
Protocols (:class:`~drills.faults.base.Fault` and ``FaultFactory``, :class:`~probes.base.Probe` and
``ProbeFactory``, :class:`~reports.base.Reporter` and ``ReporterFactory``): every class member they
declare must be there, and a method declared ``async`` must be a coroutine function. A plugin that
cannot be imported, or fails that check, does not take the others down with it: it is left out of
the registry and listed in :attr:`Plugins.broken` with the reason, so that a scenario naming it is
told why the name is unavailable rather than that it does not exist.

A run journals a :class:`PluginRef` with each fault's undo record (the entry point's group and name,
the class's import path, the distribution and its version), so that ``drill recover`` finds the
fault's code again through :meth:`Plugins.fault_for` whatever the fault calls itself.

Code that validates scenarios takes a :class:`Plugins` value (tests pass their own); everything else
asks :func:`installed`, or one group at a time through :func:`fault_types`, :func:`probe_types` and
:func:`reporter_types`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from drills.faults.base import Fault, FaultFactory
from probes.base import Probe, ProbeFactory
from reports.base import Reporter, ReporterFactory

FAULTS = "drill.faults"
PROBES = "drill.probes"
REPORTERS = "drill.reporters"


@dataclass(frozen=True)
class Plugins:
    """One view of the registry: every usable plugin by group and name, and the unusable ones.

    ``broken`` maps a registered name to why it cannot be used, per group (``{"drill.probes":
    {"dns": "cannot import probes.dns: No module named 'dnspython'"}}``).
    """

    faults: Mapping[str, FaultFactory] = field(default_factory=dict)
    probes: Mapping[str, ProbeFactory] = field(default_factory=dict)
    reporters: Mapping[str, ReporterFactory] = field(default_factory=dict)
    broken: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def why_unavailable(self, group: str, name: str) -> str | None:
        """Why a registered ``name`` of ``group`` cannot be used, or None if it is fine or unknown."""
        return self.broken.get(group, {}).get(name)

    def fault_for(self, recorded: PluginRef | None, fault: str) -> FaultFactory | None:
        """The fault class that journaled an undo, found again; None when it is not installed.

        ``recorded`` is the journaled reference: the entry point of the same name and class, else the
        class wherever it is registered now (the entry point was renamed), else the entry point of the
        same name (the class moved) provided it is the same fault: its class calls itself ``fault``, the
        undo record's name, and the distribution that registered it then registers it now. Anything
        else under that name is another fault, whose revert must not run on this record: None. A journal
        written before references were recorded has only ``fault``: the entry point of that name, else
        the class calling itself so.
        """
        if recorded is not None:
            by_name = self.faults.get(recorded.name)
            if by_name is not None and target_of(by_name) == recorded.target:
                return by_name
            by_target = next((f for f in self.faults.values() if target_of(f) == recorded.target), None)
            if by_target is not None:
                return by_target
            if by_name is None or by_name.name != fault:
                return None
            registered_by = _origins(FAULTS).get(recorded.name, (None, None))[0]
            same_origin = recorded.distribution is None or registered_by == recorded.distribution
            return by_name if same_origin else None
        return self.faults.get(fault) or next((f for f in self.faults.values() if f.name == fault), None)


@dataclass(frozen=True)
class PluginRef:
    """Where a plugin's code was found, as a run journals it: enough to find it again in another
    process, whatever the plugin calls itself."""

    group: str
    name: str
    """The entry point's name: what the scenario named."""
    target: str
    """The class's import path, ``module:QualName``."""
    distribution: str | None = None
    """The installed distribution that registered it, and its version (None: not known)."""
    version: str | None = None

    def describe(self) -> str:
        """``'scale-down' (shopchaos.faults:Shrink from shop-chaos 1.2)``, for messages."""
        origin = f" from {self.distribution} {self.version or ''}".rstrip() if self.distribution else ""
        return f"{self.name!r} ({self.target}{origin})"

    @classmethod
    def from_json(cls, data: object) -> PluginRef:
        """The reference a journal line holds; ValueError saying what is wrong with it."""
        if not isinstance(data, dict):
            raise ValueError("its plugin reference is not a JSON object")
        strings = ("group", "name", "target")
        if any(not isinstance(data.get(k), str) for k in strings):
            raise ValueError(f"its plugin reference lacks one of {', '.join(strings)}")
        optional = {k: data.get(k) for k in ("distribution", "version")}
        if any(v is not None and not isinstance(v, str) for v in optional.values()):
            raise ValueError("its plugin reference's distribution or version is not a string")
        return cls(group=data["group"], name=data["name"], target=data["target"], **optional)


def reference(group: str, name: str, plugin: object) -> PluginRef:
    """The reference of the class ``plugin``, registered as ``name`` in ``group``."""
    distribution, version = _origins(group).get(name, (None, None))
    return PluginRef(group=group, name=name, target=target_of(plugin), distribution=distribution,
                     version=version)


def target_of(plugin: object) -> str:
    """A class's import path, ``module:QualName``, as an entry point names it."""
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return f"{cls.__module__}:{cls.__qualname__}"


def installed() -> Plugins:
    """Every plugin installed in this Python environment (loaded once per process)."""
    faults, broken_faults = _load(FAULTS)
    probes, broken_probes = _load(PROBES)
    reporters, broken_reporters = _load(REPORTERS)
    return Plugins(faults=faults, probes=probes, reporters=reporters,
                   broken={FAULTS: broken_faults, PROBES: broken_probes, REPORTERS: broken_reporters})


def fault_types() -> dict[str, FaultFactory]:
    """Installed fault classes by registered name (what ``fault:`` names)."""
    return dict(installed().faults)


def probe_types() -> dict[str, ProbeFactory]:
    """Installed probe classes by registered name (what a probe's ``kind:`` names)."""
    return dict(installed().probes)


def reporter_types() -> dict[str, ReporterFactory]:
    """Installed reporter classes by registered name."""
    return dict(installed().reporters)


_PROTOCOLS: dict[str, tuple[type, ...]] = {
    FAULTS: (Fault, FaultFactory),
    PROBES: (Probe, ProbeFactory),
    REPORTERS: (Reporter, ReporterFactory),
}
_MODELS = {FAULTS: "Params", PROBES: "Spec"}
"""The member of each group that must be a pydantic model."""
_DEFAULTS = {FAULTS: "drills.faults.base.FaultBase", PROBES: "probes.base.ProbeBase"}
"""Where each group's optional members have their defaults, for the reason a class is refused."""


@functools.cache
def _load(group: str) -> tuple[dict[str, Any], dict[str, str]]:
    # Cached: importing every plugin module is the slow part, and the set cannot change while a
    # process runs. Sorted by name so that listings and the generated schema are deterministic.
    usable: dict[str, Any] = {}
    broken: dict[str, str] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:  # a third party's import-time error of any kind
            broken[ep.name] = f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
            continue
        problem = _problem(group, cls)
        if problem:
            broken[ep.name] = f"{ep.value} {problem}"
        else:
            usable[ep.name] = cls
    return usable, broken


@functools.cache
def _origins(group: str) -> dict[str, tuple[str | None, str | None]]:
    """Each entry point's distribution name and version (None when its metadata says neither)."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for ep in entry_points(group=group):
        dist = ep.dist
        found.setdefault(ep.name, (dist.name, dist.version) if dist is not None else (None, None))
    return found


def _problem(group: str, cls: object) -> str | None:
    """What keeps ``cls`` from being a plugin of ``group``, in words; None when nothing does."""
    if not isinstance(cls, type):
        return "is not a class"
    lacking, not_async, not_callable = [], [], []
    for member, kind in _members(group).items():
        value = inspect.getattr_static(cls, member, _ABSENT)
        if value is _ABSENT:
            lacking.append(member)
        elif kind == "async" and not inspect.iscoroutinefunction(getattr(cls, member)):
            not_async.append(member)
        elif kind == "method" and not callable(getattr(cls, member)):
            not_callable.append(member)
    if lacking:
        hint = f" (inherit {_DEFAULTS[group]} for the optional ones)" if group in _DEFAULTS else ""
        return f"lacks {', '.join(lacking)}{hint}"
    if not_async:
        return f"has {', '.join(not_async)} not defined with `async def`"
    if not_callable:
        return f"has {', '.join(not_callable)} not a method"
    model = _MODELS.get(group)
    declared = getattr(cls, model) if model else None
    if model and not (isinstance(declared, type) and issubclass(declared, BaseModel)):
        return f"has {model} not a pydantic model"
    return None


_ABSENT = object()


@functools.cache
def _members(group: str) -> dict[str, str]:
    """The class members the group's Protocols declare, each ``"async"``, ``"method"`` or ``"value"``.
    Instance attributes (a probe's ``name`` and ``period``) are left out: a class cannot show them."""
    members: dict[str, str] = {}
    for protocol in _PROTOCOLS[group]:
        for member, annotation in inspect.get_annotations(protocol).items():
            if "ClassVar[" in str(annotation):
                members.setdefault(member, "value")
        for member, value in vars(protocol).items():
            if member.startswith("_"):
                continue
            function = value.__func__ if isinstance(value, staticmethod | classmethod) else value
            if inspect.isfunction(function):
                members.setdefault(member, "async" if inspect.iscoroutinefunction(function) else "method")
    return members
