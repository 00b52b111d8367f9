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
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from drills import plugins as _plugins
from drills.errors import SourceError, SourceErrors, SourceLocation
from drills.scenario.expressions import ExpressionError, is_condition, parse_comparison, parse_guard, resolve
from drills.scenario.model import (
    Comparison,
    FaultStep,
    Guard,
    ParallelStep,
    ProbeSpec,
    Scenario,
    Step,
    UndoStep,
    WaitStep,
)
from drills.units import parse_duration
from drills.yamlsource import Document, PathPart, field_names, load, suggest, validation_errors

API_VERSION = "drill/v1"
TOP_LEVEL_KEYS = ("apiVersion", "name", "description", "probes", "steps", "expect", "guards", "rollback")
STEP_KINDS = ("fault", "wait", "parallel", "undo")
DEFAULT_EVERY_S = 1.0
"""A probe's period when the file gives none: fine enough for minute-scale RTOs, cheap enough to run."""
DEFAULT_TIMEOUT_S = 600.0
"""A condition wait's timeout when the file gives none (design.md): longer than any sane failover."""

_PROBE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SCENARIO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_STEP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_REFERENCE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_ENV_REFERENCE = re.compile(r"env\.([A-Za-z_][A-Za-z0-9_]*)")
_STEP_KEYS = {"fault": ("fault", "id"), "wait": ("wait", "id", "timeout"), "parallel": ("parallel", "id"),
              "undo": ("undo", "id")}

_Where = tuple[PathPart, ...]
"""A node's path from the document root: keys and list indexes."""


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
    checker = _Checker(doc=doc, plugins=registry, regions=regions, variables=dict(variables or {}))
    scenario = checker.scenario()
    errors = checker.problems()
    if errors or scenario is None:
        raise SourceErrors(errors)
    return scenario


@dataclass(frozen=True)
class _Substitution:
    """How a string with references was rewritten: ``(new_start, new_end, raw_start, raw_end)`` spans."""

    raw: str
    spans: tuple[tuple[int, int, int, int], ...]

    def raw_offset(self, offset: int) -> int:
        delta = 0
        for new_start, new_end, raw_start, raw_end in self.spans:
            if offset < new_start:
                break
            if offset < new_end:
                return raw_start
            delta = raw_end - new_end
        return offset + delta


@dataclass
class _Checker:
    """One pass over one file, collecting every problem in :attr:`errors`."""

    doc: Document
    plugins: _plugins.Plugins
    regions: Collection[str] | None
    variables: dict[str, str]
    errors: list[SourceError] = field(default_factory=list)
    _lines: list[str] = field(default_factory=list)
    _substituted: dict[_Where, _Substitution] = field(default_factory=dict)
    _signals: dict[str, Sequence[str] | None] = field(default_factory=dict)
    _metrics: dict[str, Sequence[str] | None] = field(default_factory=dict)
    _step_kinds: dict[str, str] = field(default_factory=dict)
    _step_places: dict[str, _Where] = field(default_factory=dict)
    _undone: dict[str, str] = field(default_factory=dict)
    _unresolved: set[SourceLocation] = field(default_factory=set)
    _reference_errors: list[SourceError] = field(default_factory=list)

    def problems(self) -> list[SourceError]:
        """Every problem found, less those that only repeat an unresolved ``{{ env.NAME }}``: a value
        that still holds its reference is wrong for every later check, and saying so again is noise."""
        return [e for e in self.errors
                if e.location not in self._unresolved or any(e is r for r in self._reference_errors)]

    def scenario(self) -> Scenario | None:
        """The scenario, or None when the file is not even a mapping."""
        try:
            self._lines = Path(self.doc.file).read_text(encoding="utf-8").splitlines()
        except OSError:
            self._lines = []
        if self.doc.data is None:
            self._error((), "the file is empty", hint=f"a scenario starts with 'apiVersion: {API_VERSION}'")
            return None
        if not isinstance(self.doc.data, dict):
            self._error((), "a scenario file is a mapping of apiVersion, name, probes, steps, expect, ...")
            return None
        data: dict[str, Any] = self._substitute(self.doc.data, ())

        for key in data:
            if key not in TOP_LEVEL_KEYS:
                known = _or(TOP_LEVEL_KEYS, word="and")
                self._error((key,), f"unknown key {key!r}", key=True,
                            hint=suggest(key, TOP_LEVEL_KEYS) or f"a scenario has {known}")
        self._api_version(data)
        name = self._name(data)
        description = self._string(data, "description", default="")
        rollback = self._rollback(data)
        probes = self._probes(data.get("probes", {}))
        steps = self._top_steps(data)
        expect = tuple(self._expressions(data, "expect", self._comparison))
        guards = tuple(self._expressions(data, "guards", self._guard))
        return Scenario(name=name, description=description, file=self.doc.file, probes=probes,
                        steps=steps, expect=expect, guards=guards, rollback=rollback)

    # top-level keys

    def _api_version(self, data: dict[str, Any]) -> None:
        if "apiVersion" not in data:
            self._error((), "missing required key 'apiVersion'", hint=f"add 'apiVersion: {API_VERSION}'")
        elif data["apiVersion"] != API_VERSION:
            self._error(("apiVersion",), f"apiVersion must be {API_VERSION!r}, not {data['apiVersion']!r}",
                        hint="this drill reads version 1 of the scenario format")

    def _name(self, data: dict[str, Any]) -> str:
        if "name" not in data:
            self._error((), "missing required key 'name'", hint="for example 'name: us-outage'")
            return ""
        name = data["name"]
        if not isinstance(name, str) or not _SCENARIO_NAME.fullmatch(name):
            self._error(("name",), f"a scenario name is letters, digits, '-', '_' and '.', not {name!r}",
                        hint="it becomes part of run ids and file names")
            return str(name)
        return name

    def _string(self, data: dict[str, Any], key: str, *, default: str) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            self._error((key,), f"{key} must be text, not {_type_name(value)}")
            return default
        return value

    def _rollback(self, data: dict[str, Any]) -> Literal["auto", "manual"]:
        value = data.get("rollback", "auto")
        if value == "manual":
            return "manual"
        if value != "auto":
            self._error(("rollback",), f"rollback must be 'auto' or 'manual', not {value!r}",
                        hint=suggest(str(value), ("auto", "manual")))
        return "auto"

    # probes

    def _probes(self, section: Any) -> dict[str, ProbeSpec]:
        if not isinstance(section, dict):
            self._error(("probes",), f"probes must be a mapping of probe names, not {_type_name(section)}",
                        hint="for example 'probes: {dns: {kind: dns, every: 1s}}'")
            return {}
        probes: dict[str, ProbeSpec] = {}
        for name, body in section.items():
            spec = self._probe(name, body)
            if spec is not None:
                probes[name] = spec
        return probes

    def _probe(self, name: str, body: Any) -> ProbeSpec | None:
        path: _Where = ("probes", name)
        self._signals[name] = self._metrics[name] = None
        if not _PROBE_NAME.fullmatch(name):
            self._error(path, f"probe name {name!r} must be lower-case letters, digits and '_', "
                        "starting with a letter", key=True, hint="it is used in expressions as name.metric")
        if not isinstance(body, dict):
            self._error(path, f"a probe is a mapping, not {_type_name(body)}",
                        hint="for example '{kind: dns, every: 1s}'")
            return None
        if "kind" not in body:
            self._error(path, "missing required key 'kind'",
                        hint=self._known("probe kinds", self.plugins.probes))
            return None
        kind = body["kind"]
        cls = self._registered(_plugins.PROBES, kind, (*path, "kind"), "probe kind", self.plugins.probes)
        if cls is None:
            return None
        self._signals[name], self._metrics[name] = tuple(cls.SIGNALS), tuple(cls.METRICS)
        every = DEFAULT_EVERY_S
        if "every" in body:
            every = self._duration((*path, "every"), body["every"], what="every", positive=True) or every
        params = self._params(cls.Spec, {k: v for k, v in body.items() if k not in ("kind", "every")},
                              path, what=f"a {kind} probe", extra_keys=("kind", "every"))
        if params is None:
            return None
        return ProbeSpec(name=name, kind=kind, every=every, params=params)

    # steps

    def _top_steps(self, data: dict[str, Any]) -> tuple[Step, ...]:
        if "steps" not in data:
            self._error((), "missing required key 'steps'", hint="for example 'steps: [{fault: kill-ingress, "
                        "cluster: us}, {wait: 5m}]'")
            return ()
        items = data["steps"]
        if not isinstance(items, list) or not items:
            self._error(("steps",), "steps must be a non-empty list of steps",
                        hint="each is one of fault, wait, parallel, undo")
            return ()
        steps, _ = self._sequence(items, ("steps",), parent=None, available=set())
        return tuple(steps)

    def _sequence(self, items: list[Any], path: _Where, *, parent: str | None,
                  available: set[str]) -> tuple[list[Step], set[str]]:
        """Steps run one after another: each may undo the faults of the steps before it."""
        steps: list[Step] = []
        known = set(available)
        added: set[str] = set()
        for i, item in enumerate(items):
            step, faults = self._step(item, (*path, i), default_id=_default_id(parent, i), available=known)
            known |= faults
            added |= faults
            if step is not None:
                steps.append(step)
        return steps, added

    def _step(self, item: Any, path: _Where, *, default_id: str,
              available: set[str]) -> tuple[Step | None, set[str]]:
        """One step and the ids of the fault steps in it (which later steps may undo)."""
        if not isinstance(item, dict):
            self._error(path, f"a step is a mapping with one of {_or(STEP_KINDS)}, not {_type_name(item)}",
                        hint=f"for example '- wait: {item}'" if isinstance(item, str) else None)
            return None, set()
        kinds = [k for k in STEP_KINDS if k in item]
        if not kinds:
            self._unknown_step(item, path)
            return None, set()
        if len(kinds) > 1:
            self._error((*path, kinds[1]), f"a step is exactly one of {_or(STEP_KINDS)}; this one has both "
                        f"{kinds[0]!r} and {kinds[1]!r}", key=True, hint="make them two steps")
            return None, set()
        kind = kinds[0]
        if kind != "fault":
            for key in item:
                if key not in _STEP_KEYS[kind]:
                    self._error((*path, key), f"unknown key {key!r} in a {kind} step", key=True,
                                hint=suggest(key, _STEP_KEYS[kind]) or f"a {kind} step has "
                                f"{_or(_STEP_KEYS[kind], word='and')}")
        step_id = self._step_id(item, path, default_id, kind)
        if kind == "fault":
            return self._fault(item, path, step_id), {step_id}
        if kind == "wait":
            return self._wait(item, path, step_id), set()
        if kind == "undo":
            return self._undo(item, path, step_id, available), set()
        return self._parallel(item, path, step_id, available)

    def _unknown_step(self, item: dict[str, Any], path: _Where) -> None:
        others = [k for k in item if k != "id"]
        if not others:
            self._error(path, f"a step needs one of {_or(STEP_KINDS)}")
        for key in others:
            self._error((*path, key), f"unknown step key {key!r}", key=True,
                        hint=suggest(key, STEP_KINDS) or f"a step is one of {_or(STEP_KINDS)}")

    def _step_id(self, item: dict[str, Any], path: _Where, default_id: str, kind: str) -> str:
        step_id = default_id
        if "id" in item:
            given = item["id"]
            if not isinstance(given, str) or not _STEP_ID.fullmatch(given):
                self._error((*path, "id"), f"a step id is letters, digits, '-', '_' and '.', not {given!r}")
            else:
                step_id = given
        if step_id in self._step_places:
            first = self._place(self._step_places[step_id])
            if "id" in item:
                self._error((*path, "id"), f"duplicate step id {step_id!r} (first used at {first})",
                            hint="step ids are unique in a scenario")
            else:
                self._error(path, f"this step's default id {step_id!r} is already used at {first}",
                            hint="give one of them another 'id:'")
        else:
            self._step_places[step_id] = path
            self._step_kinds[step_id] = kind
        return step_id

    def _fault(self, item: dict[str, Any], path: _Where, step_id: str) -> FaultStep | None:
        cls = self._registered(_plugins.FAULTS, item["fault"], (*path, "fault"), "fault", self.plugins.faults)
        if cls is None:
            return None
        params = self._params(cls.Params, {k: v for k, v in item.items() if k not in ("fault", "id")},
                              path, what=item["fault"], extra_keys=("fault", "id"))
        if params is None:
            return None
        cluster = getattr(params, "cluster", "")
        return FaultStep(id=step_id, fault=item["fault"], region=cluster if isinstance(cluster, str) else "",
                         params=params)

    def _wait(self, item: dict[str, Any], path: _Where, step_id: str) -> WaitStep | None:
        value = item["wait"]
        wait_path = (*path, "wait")
        if isinstance(value, str) and is_condition(value):
            condition = self._comparison(wait_path, value, what="signal")
            timeout: float | None = DEFAULT_TIMEOUT_S
            if "timeout" in item:
                timeout = self._duration((*path, "timeout"), item["timeout"], what="timeout", positive=True)
            if condition is None or timeout is None:
                return None
            return WaitStep(id=step_id, duration=None, condition=condition, timeout=timeout)
        if "timeout" in item:
            self._error((*path, "timeout"), "'timeout' applies only to a condition wait", key=True,
                        hint="a duration wait always lasts its duration")
        try:
            duration = parse_duration(value)
        except ValueError:
            self._error(wait_path, f"expected a duration like 500ms, 90s, 5m or 1h, or a condition like "
                        f"'dns.answer == eu', not {value!r}")
            return None
        return WaitStep(id=step_id, duration=duration, condition=None, timeout=duration)

    def _undo(self, item: dict[str, Any], path: _Where, step_id: str, available: set[str]) -> UndoStep | None:
        target = item["undo"]
        where = (*path, "undo")
        if not isinstance(target, str):
            self._error(where, f"undo names the id of an earlier fault step, not {_type_name(target)}")
            return None
        if target in available and target not in self._undone:
            self._undone[target] = step_id
            return UndoStep(id=step_id, target=target)
        if target in self._undone:
            self._error(where, f"fault step {target!r} is already undone by step {self._undone[target]!r}",
                        hint="a fault is undone once")
        elif self._step_kinds.get(target, "fault") != "fault":
            self._error(where, f"step {target!r} is a {self._step_kinds[target]} step, not a fault",
                        hint="undo names a fault step")
        elif target in self._step_kinds:
            self._error(where, f"fault step {target!r} runs alongside this undo, not before it",
                        hint="undo it in a later step")
        else:
            faults = sorted(available)
            self._error(where, f"no earlier fault step with id {target!r}",
                        hint=suggest(target, faults) or (f"earlier fault steps: {', '.join(faults)}" if faults
                                                         else "undo names a fault step that comes before it"))
        return None

    def _parallel(self, item: dict[str, Any], path: _Where, step_id: str,
                  available: set[str]) -> tuple[ParallelStep | None, set[str]]:
        items = item["parallel"]
        if not isinstance(items, list) or not items:
            self._error((*path, "parallel"), "parallel takes a non-empty list of steps")
            return None, set()
        steps: list[Step] = []
        faults: set[str] = set()
        for i, child in enumerate(items):
            # Branches run concurrently: each sees only the faults applied before the parallel step.
            step, added = self._step(child, (*path, "parallel", i), default_id=f"{step_id}.{i + 1}",
                                     available=available)
            faults |= added
            if step is not None:
                steps.append(step)
        return ParallelStep(id=step_id, steps=tuple(steps)), faults

    # expressions

    def _expressions(self, data: dict[str, Any], key: str,
                     parse: Callable[..., Comparison | Guard | None]) -> list[Any]:
        items = data.get(key, [])
        if not isinstance(items, list):
            self._error((key,), f"{key} must be a list of expressions, not {_type_name(items)}",
                        hint="for example '- dns.failover_time < 3m'")
            return []
        parsed = []
        for i, text in enumerate(items):
            result = parse((key, i), text, what="metric" if key == "expect" else "signal")
            if result is not None:
                parsed.append(result)
        return parsed

    def _comparison(self, path: _Where, text: Any, *, what: str) -> Comparison | None:
        if not isinstance(text, str):
            self._error(path, f"expected an expression like 'dns.failover_time < 3m', not {_type_name(text)}")
            return None
        try:
            comparison = parse_comparison(text)
            resolve(comparison, self._metrics if what == "metric" else self._signals, what=what)
        except ExpressionError as exc:
            self._error_in(path, exc)
            return None
        return comparison

    def _guard(self, path: _Where, text: Any, *, what: str) -> Guard | None:
        if not isinstance(text, str):
            self._error(path, "expected a guard like 'users.error_rate > 80% for 2m', "
                        f"not {_type_name(text)}")
            return None
        try:
            guard = parse_guard(text)
            resolve(guard.condition, self._signals, what=what)
        except ExpressionError as exc:
            self._error_in(path, exc)
            return None
        return guard

    # shared checks

    def _registered(self, group: str, name: Any, path: _Where, what: str, known: Mapping[str, Any]) -> Any:
        if not isinstance(name, str):
            self._error(path, f"{what} must be a name, not {_type_name(name)}", hint=self._known(what, known))
            return None
        if name in known:
            return known[name]
        why = self.plugins.why_unavailable(group, name)
        if why is not None:
            self._error(path, f"{what} {name!r} is installed but cannot be used: {why}")
        else:
            self._error(path, f"unknown {what} {name!r}",
                        hint=suggest(name, known) or self._known(f"{what}s", known))
        return None

    def _params(self, model: type[BaseModel], values: dict[str, Any], path: _Where, *, what: str,
                extra_keys: Sequence[str]) -> BaseModel | None:
        try:
            params = model.model_validate(values)
        except ValidationError as exc:
            vocabulary = {*field_names(model), *extra_keys}
            keys = [field.alias or name for name, field in model.model_fields.items()] + list(extra_keys)
            takes = f"{what} takes {_or(keys, word='and')}"
            for error in validation_errors(self.doc, exc, prefix=path, vocabulary=vocabulary).errors:
                if error.hint is None and error.message.startswith("unknown key"):
                    error = SourceError(error.location, error.message, hint=takes)
                self.errors.append(error)
            return None
        cluster = getattr(params, "cluster", None)
        if self.regions is not None and isinstance(cluster, str) and cluster not in self.regions:
            regions = sorted(self.regions)
            self._error((*path, "cluster"), f"cluster {cluster!r} is not a region of this environment",
                        hint=suggest(cluster, regions) or f"its regions: {', '.join(regions)}")
            return None
        return params

    def _duration(self, path: _Where, value: Any, *, what: str, positive: bool) -> float | None:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self._error(path, f"{what}: {exc}")
            return None
        if positive and seconds <= 0:
            self._error(path, f"{what} must be longer than 0s, not {value!r}")
            return None
        return seconds

    def _known(self, what: str, known: Mapping[str, Any]) -> str:
        return f"installed {what}: {', '.join(sorted(known))}" if known else f"no {what} are installed"

    # substitution

    def _substitute(self, value: Any, path: _Where) -> Any:
        if isinstance(value, dict):
            return {k: self._substitute(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "{{" not in value:
            return value
        out: list[str] = []
        spans: list[tuple[int, int, int, int]] = []
        pos = 0
        for match in _REFERENCE.finditer(value):
            out.append(value[pos:match.start()])
            new_start = sum(len(part) for part in out)
            replacement = self._reference(match, value, path)
            out.append(replacement)
            spans.append((new_start, new_start + len(replacement), match.start(), match.end()))
            pos = match.end()
        out.append(value[pos:])
        self._substituted[path] = _Substitution(raw=value, spans=tuple(spans))
        return "".join(out)

    def _reference(self, match: re.Match[str], raw: str, path: _Where) -> str:
        replacement = self._resolve(match, raw, path)
        if replacement is None:
            self._unresolved.add(self.doc.locate(path))
            self._reference_errors.append(self.errors[-1])
            return match[0]
        return replacement

    def _resolve(self, match: re.Match[str], raw: str, path: _Where) -> str | None:
        env = _ENV_REFERENCE.fullmatch(match[1])
        known = sorted(self.variables)
        listing = f"known: {', '.join('env.' + k for k in known)}" if known else "no variables are defined"
        if env is None:
            self._error_in(path, ExpressionError(f"unknown reference {match[0]!r}", offset=match.start(),
                                                 hint="references are {{ env.NAME }}; " + listing), raw=raw)
            return None
        name = env[1]
        if name not in self.variables:
            self._error_in(path, ExpressionError(f"the environment has no variable {name!r}",
                                                 offset=match.start(),
                                                 hint=suggest(name, known) or listing), raw=raw)
            return None
        return self.variables[name]

    # reporting

    def _error(self, path: _Where, message: str, *, hint: str | None = None, key: bool = False) -> None:
        self.errors.append(self.doc.error(path, message, hint=hint, key=key))

    def _error_in(self, path: _Where, exc: ExpressionError, *, raw: str | None = None) -> None:
        """An error ``exc.offset`` characters into the string at ``path``, at its column in the file.

        ``raw`` is the string as written when ``exc.offset`` counts in it; otherwise the offset counts
        in the substituted string and is mapped back through the substitution.
        """
        location = self.doc.locate(path)
        offset = exc.offset
        if raw is None:
            substitution = self._substituted.get(path)
            if substitution is not None:
                raw, offset = substitution.raw, substitution.raw_offset(offset)
            else:
                raw = str(self._written(path))
        column = location.column
        if 0 < location.line <= len(self._lines):
            line = self._lines[location.line - 1]
            start = location.column - 1
            if line[start:start + 1] in ("'", '"'):
                start += 1
            # Only a scalar written on one line, unescaped, maps offsets to columns one to one;
            # anything else is reported at the start of the scalar.
            if line[start:start + offset] == raw[:offset]:
                column = start + offset + 1
        self.errors.append(SourceError(SourceLocation(location.file, location.line, column),
                                       exc.message, hint=exc.hint))

    def _written(self, path: _Where) -> Any:
        value = self.doc.data
        for part in path:
            value = value[part]
        return value

    def _place(self, path: _Where) -> str:
        location = self.doc.locate(path)
        return f"{location.line}:{location.column}"


def _default_id(parent: str | None, index: int) -> str:
    return f"step-{index + 1}" if parent is None else f"{parent}.{index + 1}"


def _or(words: Sequence[str], *, word: str = "or") -> str:
    quoted = [repr(w) for w in words]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {word} {quoted[-1]}"


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: f"the text {value!r}", bool: f"the truth {value}",
            int: f"the number {value}", float: f"the number {value}"}.get(type(value), type(value).__name__)


def _with_tab_hint(exc: SourceError) -> SourceError:
    if "'\\t'" in exc.message:
        return SourceError(exc.location, exc.message, hint="indent with spaces: YAML does not allow tabs")
    return exc
