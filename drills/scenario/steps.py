"""The ``steps:`` of a scenario: faults, waits, parallel groups and undos, with their ids.

Steps get default ids by position (``step-1``, nested ``step-3.1``) unless they carry ``id:``; ids
are unique. An ``undo`` names a fault step that runs before it (an earlier step, or one before the
enclosing ``parallel``: siblings run concurrently) and that no other undo has taken. A scenario has
at most :data:`~drills.scenario.model.MAX_STEPS` steps, ``parallel`` nests at most
:data:`~drills.scenario.model.MAX_PARALLEL_DEPTH` deep, and a wait lasts at most
:data:`~drills.scenario.model.MAX_TIMING_S`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from drills import plugins as _plugins
from drills.scenario.checking import FileChecker, quoted, type_name
from drills.scenario.expressions import is_condition
from drills.scenario.model import (
    MAX_NAME_LENGTH,
    MAX_PARALLEL_DEPTH,
    MAX_STEPS,
    MAX_TIMING_S,
    FaultStep,
    ParallelStep,
    Step,
    UndoStep,
    WaitStep,
    struck_region,
)
from drills.scenario.references import Where
from drills.units import DurationTooLong, parse_duration, shown
from drills.yamlsource import suggest

STEP_KINDS = ("fault", "wait", "parallel", "undo")
DEFAULT_TIMEOUT_S = 600.0
"""A condition wait's timeout when the file gives none: longer than any sane failover."""

_STEP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_STEP_KEYS = {"fault": ("fault", "id"), "wait": ("wait", "id", "timeout"), "parallel": ("parallel", "id"),
              "undo": ("undo", "id")}


def check_steps(checker: FileChecker, data: dict[str, Any]) -> tuple[Step, ...]:
    """The steps of the (substituted) document ``data``; problems go to ``checker``."""
    return _Steps(checker).top(data)


@dataclass
class _Steps:
    """The steps of one file, their ids and which faults are undone."""

    checker: FileChecker
    kinds: dict[str, str] = field(default_factory=dict)
    """Step id -> the kind of the step that has it."""
    places: dict[str, Where] = field(default_factory=dict)
    """Step id -> where the step that has it is."""
    undone: dict[str, str] = field(default_factory=dict)
    """Fault step id -> the id of the undo step that reverts it."""
    count: int = 0
    """Steps seen so far, nested ones included."""
    depth: int = 0
    """How many ``parallel`` steps enclose the step being checked."""

    def top(self, data: dict[str, Any]) -> tuple[Step, ...]:
        """The top-level ``steps:`` list."""
        if "steps" not in data:
            self.checker.error((), "missing required key 'steps'",
                               hint="for example 'steps: [{fault: kill-ingress, cluster: us}, {wait: 5m}]'")
            return ()
        items = data["steps"]
        if not isinstance(items, list) or not items:
            self.checker.error(("steps",), "steps must be a non-empty list of steps",
                               hint="each is one of fault, wait, parallel, undo")
            return ()
        steps, _ = self._sequence(items, ("steps",), parent=None, available=set())
        return tuple(steps)

    def _sequence(self, items: list[Any], path: Where, *, parent: str | None,
                  available: set[str]) -> tuple[list[Step], set[str]]:
        """Steps run one after another: each may undo the faults of the steps before it."""
        steps: list[Step] = []
        known = set(available)
        added: set[str] = set()
        for i, item in enumerate(items):
            if not self._counted((*path, i)):
                break
            step, faults = self._step(item, (*path, i), default_id=_default_id(parent, i), available=known)
            known |= faults
            added |= faults
            if step is not None:
                steps.append(step)
        return steps, added

    def _counted(self, path: Where) -> bool:
        """Count the step at ``path``; False (said once) when it is one too many."""
        self.count += 1
        if self.count == MAX_STEPS + 1:
            self.checker.error(path, f"a scenario has at most {MAX_STEPS:,} steps; this is one more",
                               hint="split the drill into several scenarios")
        return self.count <= MAX_STEPS

    def _step(self, item: Any, path: Where, *, default_id: str,
              available: set[str]) -> tuple[Step | None, set[str]]:
        """One step and the ids of the fault steps in it (which later steps may undo)."""
        if not isinstance(item, dict):
            self.checker.error(path,
                               f"a step is a mapping with one of {quoted(STEP_KINDS)}, not {type_name(item)}",
                               hint=f"for example '- wait: {item}'" if isinstance(item, str) else None)
            return None, set()
        kinds = [k for k in STEP_KINDS if k in item]
        if not kinds:
            self._unknown_step(item, path)
            return None, set()
        if len(kinds) > 1:
            self.checker.error((*path, kinds[1]), f"a step is exactly one of {quoted(STEP_KINDS)}; this one "
                               f"has both {kinds[0]!r} and {kinds[1]!r}", key=True,
                               hint="make them two steps")
            return None, set()
        kind = kinds[0]
        if kind != "fault":
            for key in item:
                if key not in _STEP_KEYS[kind]:
                    self.checker.error((*path, key), f"unknown key {key!r} in a {kind} step", key=True,
                                       hint=suggest(key, _STEP_KEYS[kind]) or f"a {kind} step has "
                                       f"{quoted(_STEP_KEYS[kind], word='and')}")
        step_id = self._step_id(item, path, default_id, kind)
        if kind == "fault":
            return self._fault(item, path, step_id), {step_id}
        if kind == "wait":
            return self._wait(item, path, step_id), set()
        if kind == "undo":
            return self._undo(item, path, step_id, available), set()
        return self._parallel(item, path, step_id, available)

    def _unknown_step(self, item: dict[str, Any], path: Where) -> None:
        others = [k for k in item if k != "id"]
        if not others:
            self.checker.error(path, f"a step needs one of {quoted(STEP_KINDS)}")
        for key in others:
            self.checker.error((*path, key), f"unknown step key {key!r}", key=True,
                               hint=suggest(key, STEP_KINDS) or f"a step is one of {quoted(STEP_KINDS)}")

    def _step_id(self, item: dict[str, Any], path: Where, default_id: str, kind: str) -> str:
        step_id = default_id
        if "id" in item:
            given = item["id"]
            if not isinstance(given, str) or not _STEP_ID.fullmatch(given):
                shown_id = shown(given) if isinstance(given, str) else repr(given)
                self.checker.error((*path, "id"),
                                   f"a step id is letters, digits, '-', '_' and '.', not {shown_id}")
            elif len(given) > MAX_NAME_LENGTH:
                self.checker.error((*path, "id"), f"a step id is at most {MAX_NAME_LENGTH} characters, not "
                                   f"{len(given)}")
            else:
                step_id = given
        if step_id in self.places:
            first = self.checker.place(self.places[step_id])
            if "id" in item:
                self.checker.error((*path, "id"), f"duplicate step id {step_id!r} (first used at {first})",
                                   hint="step ids are unique in a scenario")
            else:
                self.checker.error(path, f"this step's default id {step_id!r} is already used at {first}",
                                   hint="give one of them another 'id:'")
        else:
            self.places[step_id] = path
            self.kinds[step_id] = kind
        return step_id

    def _fault(self, item: dict[str, Any], path: Where, step_id: str) -> FaultStep | None:
        cls = self.checker.registered(_plugins.FAULTS, item["fault"], (*path, "fault"), "fault",
                                      self.checker.plugins.faults)
        if cls is None:
            return None
        params = self.checker.params(cls.Params, {k: v for k, v in item.items() if k not in ("fault", "id")},
                                     path, what=item["fault"], extra_keys=("fault", "id"))
        if params is None:
            return None
        return FaultStep(id=step_id, fault=item["fault"], region=struck_region(params), params=params)

    def _wait(self, item: dict[str, Any], path: Where, step_id: str) -> WaitStep | None:
        value = item["wait"]
        wait_path = (*path, "wait")
        if isinstance(value, str) and is_condition(value):
            condition = self.checker.comparison(wait_path, value, what="signal")
            timeout: float | None = DEFAULT_TIMEOUT_S
            if "timeout" in item:
                timeout = self.checker.duration((*path, "timeout"), item["timeout"], what="timeout",
                                                positive=True)
            if condition is None or timeout is None:
                return None
            return WaitStep(id=step_id, duration=None, condition=condition, timeout=timeout)
        if "timeout" in item:
            self.checker.error((*path, "timeout"), "'timeout' applies only to a condition wait", key=True,
                               hint="a duration wait always lasts its duration")
        try:
            duration = parse_duration(value)
        except DurationTooLong as exc:
            self.checker.error(wait_path, str(exc))
            return None
        except ValueError:
            written = shown(value) if isinstance(value, str) else repr(value)
            self.checker.error(wait_path, "expected a duration like 500ms, 90s, 5m or 1h, or a condition "
                               f"like 'dns.answer == eu', not {written}")
            return None
        if duration > MAX_TIMING_S:
            self.checker.error(wait_path, f"a wait lasts at most {MAX_TIMING_S / 3600:g}h, "
                               f"not {shown(value)}", hint="a drill's steps last minutes to hours")
            return None
        return WaitStep(id=step_id, duration=duration, condition=None, timeout=duration)

    def _undo(self, item: dict[str, Any], path: Where, step_id: str, available: set[str]) -> UndoStep | None:
        target = item["undo"]
        where = (*path, "undo")
        if not isinstance(target, str):
            self.checker.error(where, f"undo names the id of an earlier fault step, not {type_name(target)}")
            return None
        if target in available and target not in self.undone:
            self.undone[target] = step_id
            return UndoStep(id=step_id, target=target)
        if target in self.undone:
            self.checker.error(where,
                               f"fault step {target!r} is already undone by step {self.undone[target]!r}",
                               hint="a fault is undone once")
        elif self.kinds.get(target, "fault") != "fault":
            self.checker.error(where, f"step {target!r} is a {self.kinds[target]} step, not a fault",
                               hint="undo names a fault step")
        elif target in self.kinds:
            self.checker.error(where, f"fault step {target!r} runs alongside this undo, not before it",
                               hint="undo it in a later step")
        else:
            faults = sorted(available)
            listing = (f"earlier fault steps: {', '.join(faults)}" if faults
                       else "undo names a fault step that comes before it")
            self.checker.error(where, f"no earlier fault step with id {target!r}",
                               hint=suggest(target, faults) or listing)
        return None

    def _parallel(self, item: dict[str, Any], path: Where, step_id: str,
                  available: set[str]) -> tuple[ParallelStep | None, set[str]]:
        items = item["parallel"]
        if not isinstance(items, list) or not items:
            self.checker.error((*path, "parallel"), "parallel takes a non-empty list of steps")
            return None, set()
        if self.depth >= MAX_PARALLEL_DEPTH:
            self.checker.error((*path, "parallel"), f"parallel steps nest at most {MAX_PARALLEL_DEPTH} deep",
                               key=True, hint="steps inside one parallel already run concurrently")
            return None, set()
        steps: list[Step] = []
        faults: set[str] = set()
        self.depth += 1
        for i, child in enumerate(items):
            if not self._counted((*path, "parallel", i)):
                break
            # Branches run concurrently: each sees only the faults applied before the parallel step.
            step, added = self._step(child, (*path, "parallel", i), default_id=f"{step_id}.{i + 1}",
                                     available=available)
            faults |= added
            if step is not None:
                steps.append(step)
        self.depth -= 1
        return ParallelStep(id=step_id, steps=tuple(steps)), faults


def _default_id(parent: str | None, index: int) -> str:
    return f"step-{index + 1}" if parent is None else f"{parent}.{index + 1}"
