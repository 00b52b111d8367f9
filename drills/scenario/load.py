"""Reading a scenario file into a :class:`~drills.scenario.model.Scenario`, or every problem in it.

The file is parsed as YAML 1.2 with the place of every node kept; ``{{ env.NAME }}`` references are
then substituted from the environment's variables, and every part is checked against the format,
the installed faults and probes (their ``Params`` and ``Spec`` models, their ``SIGNALS`` and
``METRICS``) and the environment's regions. Checking never stops at the first problem: the caller
gets one :class:`~drills.errors.SourceError` per problem, each at ``file:line:col`` (inside an
expression, at the column of the part that is wrong) with a close match for a misspelt name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from drills import plugins as _plugins
from drills.errors import SourceError, SourceErrors
from drills.scenario.checking import FileChecker, quoted, type_name
from drills.scenario.model import (
    DEFAULT_REGRESSION_THRESHOLD,
    MAX_NAME_LENGTH,
    Comparison,
    Guard,
    Inconclusive,
    ProbeSpec,
    RegressionPolicy,
    Scenario,
)
from drills.scenario.references import Where
from drills.scenario.steps import check_steps
from drills.units import parse_percent, shown
from drills.yamlsource import load, suggest

if TYPE_CHECKING:
    from probes.base import ProbeFactory

API_VERSION = "drill/v1"
TOP_LEVEL_KEYS = ("apiVersion", "name", "description", "probes", "steps", "expect", "guards", "rollback",
                  "inconclusive", "regression")
REGRESSION_KEYS = ("threshold", "metrics")
DEFAULT_EVERY_S = 1.0
"""A probe's period when the file gives none: fine enough for minute-scale RTOs, cheap enough to run."""

_PROBE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SCENARIO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def default_every(cls: ProbeFactory) -> float:
    """A probe kind's sampling period when a scenario gives none: its ``DEFAULT_EVERY`` if it sets one
    (a probe that polls a throttled API), else :data:`DEFAULT_EVERY_S`."""
    every = cls.DEFAULT_EVERY
    return float(every) if isinstance(every, int | float) and every > 0 else DEFAULT_EVERY_S


def load_scenario(path: str | Path, *, regions: Collection[str] | None = None,
                  variables: Mapping[str, str] | None = None,
                  plugins: _plugins.Plugins | None = None) -> Scenario:
    """Read and validate the scenario at ``path``.

    ``regions``: the environment's region names, which every ``cluster:`` must be one of (None: not
    checked). ``variables``: the values of ``{{ env.NAME }}`` (None: none defined, so any reference
    is an error). ``plugins``: the faults and probes to check against (None: the installed ones).
    Raises :class:`~drills.errors.SourceErrors` with every problem found.
    """
    registry = plugins if plugins is not None else _plugins.installed()
    try:
        doc = load(path)
    except SourceError as exc:
        raise SourceErrors([_with_tab_hint(exc)]) from exc
    checker = FileChecker(doc=doc, plugins=registry, regions=regions, variables=dict(variables or {}))
    scenario = _ScenarioChecker(checker).scenario()
    errors = checker.problems()
    if errors or scenario is None:
        raise SourceErrors(errors)
    return scenario


@dataclass
class _ScenarioChecker:
    """The top level of one file, its probes and its expectations and guards."""

    checker: FileChecker

    def scenario(self) -> Scenario | None:
        """The scenario, or None when the file is not even a mapping."""
        doc = self.checker.doc
        if doc.data is None:
            self.checker.error((), "the file is empty",
                               hint=f"a scenario starts with 'apiVersion: {API_VERSION}'")
            return None
        if not isinstance(doc.data, dict):
            self.checker.error((), "a scenario file is a mapping of apiVersion, name, probes, steps, "
                               "expect, ...")
            return None
        data: dict[str, Any] = self.checker.substituted()

        for key in data:
            if key not in TOP_LEVEL_KEYS:
                known = quoted(TOP_LEVEL_KEYS, word="and")
                self.checker.error((key,), f"unknown key {key!r}", key=True,
                                   hint=suggest(key, TOP_LEVEL_KEYS) or f"a scenario has {known}")
        self._api_version(data)
        name = self._name(data)
        description = self._string(data, "description", default="")
        rollback = self._rollback(data)
        inconclusive = self._inconclusive(data)
        probes = self._probes(data.get("probes", {}))
        steps = check_steps(self.checker, data)
        expect = tuple(self._expressions(data, "expect", self.checker.comparison))
        guards = tuple(self._expressions(data, "guards", self.checker.guard))
        regression = self._regression(data, expect)
        return Scenario(name=name, description=description, file=doc.file, probes=probes,
                        steps=steps, expect=expect, guards=guards, rollback=rollback,
                        inconclusive=inconclusive, regression=regression)

    # top-level keys

    def _api_version(self, data: dict[str, Any]) -> None:
        if "apiVersion" not in data:
            self.checker.error((), "missing required key 'apiVersion'",
                               hint=f"add 'apiVersion: {API_VERSION}'")
        elif data["apiVersion"] != API_VERSION:
            self.checker.error(("apiVersion",),
                               f"apiVersion must be {API_VERSION!r}, not {data['apiVersion']!r}",
                               hint="this drill reads version 1 of the scenario format")

    def _name(self, data: dict[str, Any]) -> str:
        if "name" not in data:
            self.checker.error((), "missing required key 'name'", hint="for example 'name: us-outage'")
            return ""
        name = data["name"]
        if not isinstance(name, str) or not _SCENARIO_NAME.fullmatch(name):
            self.checker.error(("name",), "a scenario name is letters, digits, '-', '_' and '.', not "
                               f"{shown(name) if isinstance(name, str) else repr(name)}",
                               hint="it becomes part of run ids and file names")
            return str(name)[:MAX_NAME_LENGTH]
        if len(name) > MAX_NAME_LENGTH:
            self.checker.error(("name",), f"a scenario name is at most {MAX_NAME_LENGTH} characters, not "
                               f"{len(name)}", hint="it becomes part of run ids and file names")
            return name[:MAX_NAME_LENGTH]
        return name

    def _string(self, data: dict[str, Any], key: str, *, default: str) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            self.checker.error((key,), f"{key} must be text, not {type_name(value)}")
            return default
        return value

    def _rollback(self, data: dict[str, Any]) -> Literal["auto", "manual"]:
        value = data.get("rollback", "auto")
        if value == "manual":
            return "manual"
        if value != "auto":
            self.checker.error(("rollback",), f"rollback must be 'auto' or 'manual', not {value!r}",
                               hint=suggest(str(value), ("auto", "manual")))
        return "auto"

    def _inconclusive(self, data: dict[str, Any]) -> Inconclusive:
        value = data.get("inconclusive", "fail")
        if value == "pass":
            return "pass"
        if value != "fail":
            self.checker.error(("inconclusive",), f"inconclusive must be 'fail' or 'pass', not {value!r}",
                               hint=suggest(str(value), ("fail", "pass"))
                               or "what an expectation whose error straddles its bound counts as")
        return "fail"

    def _regression(self, data: dict[str, Any], expect: tuple[Comparison, ...]) -> RegressionPolicy:
        section = data.get("regression", {})
        example = "for example 'regression: {threshold: 30%, metrics: {dns.failover_time: 10%}}'"
        if not isinstance(section, dict):
            self.checker.error(("regression",), f"regression must be a mapping, not {type_name(section)}",
                               hint=example)
            return RegressionPolicy()
        for key in section:
            if key not in REGRESSION_KEYS:
                self.checker.error(("regression", key), f"unknown key {key!r} in regression", key=True,
                                   hint=suggest(str(key), REGRESSION_KEYS)
                                   or f"regression has {quoted(REGRESSION_KEYS, word='and')}")
        written = self._threshold(("regression", "threshold"), section["threshold"]) \
            if "threshold" in section else None
        threshold = DEFAULT_REGRESSION_THRESHOLD if written is None else written
        metrics = section.get("metrics", {})
        if not isinstance(metrics, dict):
            self.checker.error(("regression", "metrics"), f"regression.metrics must be a mapping of "
                               f"metric names to thresholds, not {type_name(metrics)}", hint=example)
            return RegressionPolicy(threshold=threshold)
        named = list(dict.fromkeys(c.subject for c in expect))
        overrides: dict[str, float] = {}
        for metric, value in metrics.items():
            where: Where = ("regression", "metrics", metric)
            if metric not in named:
                self.checker.error(where, f"{metric!r} is not a metric an expectation names", key=True,
                                   hint=suggest(str(metric), named) or "a regression is tracked only for "
                                   f"the metrics of 'expect': {', '.join(named) or 'none'}")
                continue
            found = self._threshold(where, value)
            if found is not None:
                overrides[metric] = found
        return RegressionPolicy(threshold=threshold, metrics=overrides)

    def _threshold(self, path: Where, value: Any) -> float | None:
        """A threshold as a fraction (``30%`` is 0.3), or None after saying what is wrong."""
        try:
            return parse_percent(value) / 100
        except ValueError as exc:
            self.checker.error(path, f"a regression threshold: {exc}",
                               hint="how much worse than the median of recent passed runs, e.g. 30%")
            return None

    # probes

    def _probes(self, section: Any) -> dict[str, ProbeSpec]:
        if not isinstance(section, dict):
            self.checker.error(("probes",),
                               f"probes must be a mapping of probe names, not {type_name(section)}",
                               hint="for example 'probes: {dns: {kind: dns, every: 1s}}'")
            return {}
        probes: dict[str, ProbeSpec] = {}
        for name, body in section.items():
            spec = self._probe(name, body)
            if spec is not None:
                probes[name] = spec
        return probes

    def _probe(self, name: str, body: Any) -> ProbeSpec | None:
        path: Where = ("probes", name)
        self.checker.signals[name] = self.checker.metrics[name] = None
        if not _PROBE_NAME.fullmatch(name):
            self.checker.error(path, f"probe name {shown(name)} must be lower-case letters, digits and '_', "
                               "starting with a letter", key=True,
                               hint="it is used in expressions as name.metric")
        elif len(name) > MAX_NAME_LENGTH:
            self.checker.error(path, f"a probe name is at most {MAX_NAME_LENGTH} characters, not {len(name)}",
                               key=True, hint="it is used in expressions as name.metric")
        if not isinstance(body, dict):
            self.checker.error(path, f"a probe is a mapping, not {type_name(body)}",
                               hint="for example '{kind: dns, every: 1s}'")
            return None
        if "kind" not in body:
            self.checker.error(path, "missing required key 'kind'",
                               hint=self.checker.known("probe kinds", self.checker.plugins.probes))
            return None
        kind = body["kind"]
        cls = self.checker.registered(_plugins.PROBES, kind, (*path, "kind"), "probe kind",
                                      self.checker.plugins.probes)
        if cls is None:
            return None
        self.checker.signals[name], self.checker.metrics[name] = tuple(cls.SIGNALS), tuple(cls.METRICS)
        every = default_every(cls)
        if "every" in body:
            every = self.checker.duration((*path, "every"), body["every"], what="every",
                                          positive=True) or every
        params = self.checker.params(cls.Spec, {k: v for k, v in body.items() if k not in ("kind", "every")},
                                     path, what=f"a {kind} probe", extra_keys=("kind", "every"))
        if params is None:
            return None
        return ProbeSpec(name=name, kind=kind, every=every, params=params)

    # expectations and guards

    def _expressions(self, data: dict[str, Any], key: str,
                     parse: Callable[..., Comparison | Guard | None]) -> list[Any]:
        items = data.get(key, [])
        if not isinstance(items, list):
            self.checker.error((key,), f"{key} must be a list of expressions, not {type_name(items)}",
                               hint="for example '- dns.failover_time < 3m'")
            return []
        parsed = []
        for i, text in enumerate(items):
            result = parse((key, i), text, what="metric" if key == "expect" else "signal")
            if result is not None:
                parsed.append(result)
        return parsed


def _with_tab_hint(exc: SourceError) -> SourceError:
    if "'\\t'" in exc.message:
        return SourceError(exc.location, exc.message, hint="indent with spaces: YAML does not allow tabs")
    return exc
