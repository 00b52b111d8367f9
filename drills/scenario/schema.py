"""The JSON Schema (draft 2020-12) of scenario format v1, for editors and other tools.

It describes the whole format, including the parameters of every installed fault (by ``fault:``)
and probe kind (by ``kind:``), taken from their ``Params`` and ``Spec`` models. The loader stays the
authority (it also checks names in expressions, step ids and regions, which a schema cannot); the
schema lets an editor complete and flag keys while a scenario is written.

``python -m drills.scenario.schema [PATH]`` writes it, sorted and deterministic, to PATH (default
``scenarios/schema.json``); a test fails when the committed file is stale.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from drills import plugins as _plugins
from drills.scenario.load import API_VERSION, DEFAULT_EVERY_S, default_every
from drills.scenario.model import MAX_NAME_LENGTH, MAX_PARALLEL_DEPTH, MAX_STEPS, MAX_TIMING_S
from drills.scenario.steps import DEFAULT_TIMEOUT_S, STEP_KINDS
from drills.yamlsource import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES

DEFAULT_PATH = Path("scenarios/schema.json")
REGENERATE = "python -m drills.scenario.schema"
"""The command that rewrites the committed schema."""

_DURATION = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$"
_PERCENT = r"^\s*\d+(\.\d+)?\s*%\s*$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_OPS = r"(==|!=|<=|>=|<|>)"
_SUBJECT = r"[a-z][a-z0-9_]*\.[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_COMPARISON = rf"^\s*{_SUBJECT}\s*{_OPS}\s*\S+\s*$"
_GUARD = rf"^\s*{_SUBJECT}\s*{_OPS}\s*\S+(\s+for\s+\d+(\.\d+)?\s*(ms|s|m|h))?\s*$"

JSONSchema = dict[str, Any]
"""A JSON Schema document (a JSON edge: plain data by nature)."""


def scenario_schema(plugins: _plugins.Plugins | None = None) -> JSONSchema:
    """The schema of the format with the faults and probes of ``plugins`` (None: the installed ones)."""
    registry = plugins if plugins is not None else _plugins.installed()
    longest = f"{MAX_TIMING_S / 3600:g}h"
    defs: JSONSchema = {
        "duration": {"type": "string", "pattern": _DURATION,
                     "description": "A duration with its unit: 500ms, 90s, 5m, 1h; at most 100 years."},
        "timing": {"type": "string", "pattern": _DURATION,
                   "description": f"A duration with its unit: 500ms, 90s, 5m, 1h; at most {longest}."},
        "percentage": {"type": "string", "pattern": _PERCENT, "description": "A percentage, 0% to 100%."},
        "expectation": {"type": "string", "pattern": _COMPARISON,
                        "description": "<probe>.<metric>[.<key>] <op> <value>, "
                                       "e.g. 'dns.failover_time < 3m'."},
        "condition": {"type": "string", "pattern": _COMPARISON,
                      "description": "<probe>.<signal>[.<key>] <op> <value>, e.g. 'dns.answer == eu'."},
        "guard": {"type": "string", "pattern": _GUARD,
                  "description": "A condition on a signal, optionally 'for <duration>' (at most "
                                 f"{longest}), e.g. 'users.error_rate > 80% for 2m'."},
        "stepId": {"type": "string", "pattern": _NAME, "maxLength": MAX_NAME_LENGTH,
                   "description": "A step's id (default step-1, step-2, ...; nested step-3.1)."},
        "step": {"oneOf": [{"$ref": f"#/$defs/{kind}Step"} for kind in STEP_KINDS],
                 "description": "One of fault, wait, parallel, undo."},
        "waitStep": _closed({
            "wait": {"anyOf": [{"$ref": "#/$defs/timing"}, {"$ref": "#/$defs/condition"}],
                     "description": "A duration, or a condition on a signal to wait for."},
            "timeout": {"$ref": "#/$defs/timing",
                        "description": "How long a condition wait may take (default "
                                       f"{DEFAULT_TIMEOUT_S:g}s); the run fails when it times out."},
            "id": {"$ref": "#/$defs/stepId"},
        }, required=["wait"]),
        "parallelStep": _closed({
            "parallel": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"},
                         "description": "Steps run concurrently; parallel steps nest at most "
                                        f"{MAX_PARALLEL_DEPTH} deep."},
            "id": {"$ref": "#/$defs/stepId"},
        }, required=["parallel"]),
        "undoStep": _closed({
            "undo": {"$ref": "#/$defs/stepId", "description": "The id of an earlier fault step to revert."},
            "id": {"$ref": "#/$defs/stepId"},
        }, required=["undo"]),
    }
    faults = {name: (cls, cls.Params) for name, cls in registry.faults.items()}
    defs["faultStep"] = _dispatch("fault", faults, defs, prefix="fault", extra={
        "id": {"$ref": "#/$defs/stepId"}}, description="Inject a registered fault; its parameters beside it.")
    own = ", ".join(f"{kind} {default_every(cls):g}s" for kind, cls in registry.probes.items()
                    if default_every(cls) != DEFAULT_EVERY_S)
    defaults = f"default {DEFAULT_EVERY_S:g}s" + (f"; {own}" if own else "")
    probes = {name: (cls, cls.Spec) for name, cls in registry.probes.items()}
    defs["probe"] = _dispatch("kind", probes, defs, prefix="probe", extra={
        "every": {"$ref": "#/$defs/timing", "description": f"The sampling period ({defaults})."}},
        description="A continuous measurement of a registered kind.")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"drill scenario ({API_VERSION})",
        "description": "Failures to inject, probes measuring what users experience, and the promises "
                       "(expectations) the design must keep. A file is at most "
                       f"{MAX_FILE_BYTES // 1024} KiB, its values nest at most {MAX_DEPTH} deep and it holds "
                       f"at most {MAX_VALUES:,} values (each alias counted as the values it repeats).",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "name", "steps"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "name": {"type": "string", "pattern": _NAME, "maxLength": MAX_NAME_LENGTH,
                     "description": "Letters, digits, '-', '_' and '.'; part of run ids."},
            "description": {"type": "string"},
            "probes": {"type": "object",
                       "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$", "maxLength": MAX_NAME_LENGTH},
                       "additionalProperties": {"$ref": "#/$defs/probe"}},
            "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS,
                      "items": {"$ref": "#/$defs/step"},
                      "description": f"At most {MAX_STEPS:,} steps in all, those inside parallel included."},
            "expect": {"type": "array", "items": {"$ref": "#/$defs/expectation"}},
            "guards": {"type": "array", "items": {"$ref": "#/$defs/guard"}},
            "rollback": {"enum": ["auto", "manual"], "default": "auto",
                         "description": "manual: leave the faults in place at the end (a loud warning)."},
            "inconclusive": {"enum": ["fail", "pass"], "default": "fail",
                             "description": "What an expectation counts as when its measurement error "
                                            "straddles the bound (e.g. 179.8s +/- 0.5s against < 3m)."},
            "regression": _closed({
                "threshold": {"$ref": "#/$defs/percentage", "default": "20%",
                              "description": "How much worse than the median of the last 5 passed runs "
                                            "(same scenario, same environment) a key metric may get before "
                                            "it is flagged as a regression; the verdict is not changed."},
                "metrics": {"type": "object", "additionalProperties": {"$ref": "#/$defs/percentage"},
                            "description": "Thresholds of single metrics (each one an expectation names)."},
            }, required=[]),
        },
        "$defs": defs,
    }


def render(plugins: _plugins.Plugins | None = None) -> str:
    """The schema as the committed file holds it: sorted keys, two-space indent, final newline."""
    return json.dumps(scenario_schema(plugins), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema of the installed plugins to a file."""
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH,
                        help=f"where to write it (default {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    registry = _plugins.installed()
    for group, names in sorted(registry.broken.items()):
        for name, why in sorted(names.items()):
            print(f"warning: {group} {name!r} left out: {why}", file=sys.stderr)
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(render(registry), encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


def _closed(properties: JSONSchema, *, required: list[str]) -> JSONSchema:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _dispatch(tag: str, classes: Mapping[str, tuple[object, type[BaseModel]]], defs: JSONSchema, *,
              prefix: str, extra: JSONSchema, description: str) -> JSONSchema:
    """An object whose ``tag`` names a class; the rest of its keys are that class's model's (``classes``:
    each class and its model by name)."""
    if not classes:
        return {"type": "object", "required": [tag], "properties": {tag: {"type": "string"}},
                "description": description}
    branches = []
    for name, (cls, model) in sorted(classes.items()):
        key = f"{prefix}.{name}"
        defs[key] = _embed(model, key, defs, tag=tag, name=name, extra=extra, description=_summary(cls))
        branches.append({"if": {"required": [tag], "properties": {tag: {"const": name}}},
                         "then": {"$ref": f"#/$defs/{key}"}})
    return {"type": "object", "required": [tag], "properties": {tag: {"enum": sorted(classes)}},
            "allOf": branches, "description": description}


def _embed(model: type[BaseModel], key: str, defs: JSONSchema, *, tag: str, name: str, extra: JSONSchema,
           description: str) -> JSONSchema:
    """``model``'s schema as a closed object beside ``tag: name``, its nested models moved into ``defs``."""
    schema = model.model_json_schema(ref_template=f"#/$defs/{key}.{{model}}")
    for nested, body in schema.pop("$defs", {}).items():
        defs[f"{key}.{nested}"] = body
    properties = {tag: {"const": name}, **extra, **schema.get("properties", {})}
    embedded: JSONSchema = {
        "type": "object",
        "title": name,
        "properties": properties,
        "required": [tag, *schema.get("required", [])],
        "additionalProperties": False,
    }
    if description:
        embedded["description"] = description
    return embedded


def _summary(cls: Any) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
